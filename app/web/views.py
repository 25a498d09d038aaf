"""Account, users and API keys: ``/v1/``, ``/v1/users``, ``/v1/api-keys``."""

from __future__ import annotations

from typing import Any, cast

from flask import Response, current_app, request
from flask.views import MethodView

from keyledger.domain import commands as cmd
from keyledger.domain.account import AccountState, SecretKey, User
from keyledger.keyinfo import KeyInfo, key_body, optional_time, use_fields
from keyledger.web import schemas as s
from keyledger.web.auth import current_actor, current_principal
from keyledger.web.blueprint import Blueprint, changed, container, ledger
from keyledger.web.whoami import Rendered, WhoAmICache, next_change

account_blp = Blueprint("account", __name__, url_prefix="/v1", description="The calling key")
users_blp = Blueprint("users", __name__, url_prefix="/v1/users", description="Account users")
#: Documents the ``Idempotency-Key`` header (``app.web.idempotency``) on every change.
IDEMPOTENT = {
    "parameters": [
        {
            "in": "header",
            "name": "Idempotency-Key",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "retrying with the same key returns the first result (24 h)",
        }
    ]
}

keys_blp = Blueprint("api_keys", __name__, url_prefix="/v1/api-keys", description="Secret keys")


def user_body(state: AccountState, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role.value,
        "has_api_key": bool(state.keys_of(user.id)),
    }


def key_info() -> KeyInfo:
    built = container()
    return KeyInfo(built.keyspace, built.last_uses)


def keys_body(state: AccountState, keys: list[SecretKey]) -> list[dict[str, Any]]:
    """The keys as the API shows them, with their last uses (one read for all)."""
    return key_info().bodies(state, keys, ledger().clock())


def one_key(state: AccountState, name: str) -> dict[str, Any]:
    return keys_body(state, [state.key(name)])[0]


@account_blp.route("/")
class WhoAmI(MethodView):
    @account_blp.response(200, s.WhoAmISchema)
    def get(self) -> Any:
        """The account and the key making this call."""
        principal = current_principal()
        state = ledger().state(principal.account_id)
        now = ledger().clock()
        bodies: WhoAmICache = current_app.extensions["keyledger.whoami"]
        pair = (principal.account_key_id, principal.secret_key_id)
        rendered = bodies.get(pair, state, now)
        if rendered is None:
            rendered = render_whoami(bodies, pair, state, principal, now)
        return rendered.response(request.remote_addr)


def render_whoami(
    bodies: WhoAmICache, pair: tuple[str, str], state: AccountState, principal: Any, now: Any
) -> Rendered:
    """Render ``GET /v1/`` as the schema dumps it, with the address slot (``web.whoami``)."""
    key = state.key(principal.key_name)
    owner = state.user(key.user_id)
    used = key_info().uses(state, (key.key_id, principal.account_key_id))
    previous_ends = state.previous_account_key_expires
    calling_previous = principal.account_key_id == state.previous_account_key_id
    body = {
        "account": {
            "id": state.id,
            "name": state.name,
            "key": {
                **key_body(state, key, now, used.get(key.key_id)),
                "account_name": state.name,
                "owner": {"name": owner.name, "email": owner.email},
                "http_source_ip": bodies.slot,
            },
            "account_key": {
                **use_fields(used.get(principal.account_key_id)),
                "expires_timestamp": optional_time(previous_ends) if calling_previous else None,
                "previous_key_expires_timestamp": optional_time(previous_ends),
            },
        }
    }
    response = cast(Response, current_app.json.response(s.WhoAmISchema().dump(body)))
    valid_until = next_change(now, key.expires, key.previous_expires, previous_ends)
    return bodies.put(
        pair, state, valid_until, response.get_data(), response.mimetype or "application/json"
    )


@users_blp.route("")
class Users(MethodView):
    @users_blp.response(200, s.UsersSchema)
    def get(self) -> dict[str, Any]:
        """All users of the account."""
        state = ledger().state(current_principal().account_id)
        users = sorted(state.users.values(), key=lambda u: (u.name.lower(), u.id))
        return {"users": [user_body(state, u) for u in users]}

    @users_blp.arguments(s.UserCreateSchema)
    @users_blp.response(201, s.UserSchema)
    @users_blp.doc(**IDEMPOTENT)
    def post(self, body: dict[str, Any]) -> Any:
        """Add a user."""
        account_id = current_principal().account_id
        user_id, outcome = ledger().add_user(
            account_id, body["name"], body["email"], body["role"], current_actor()
        )
        return changed(outcome, user_body(outcome.state, outcome.state.user(user_id)), 201)


@users_blp.route("/<string:user_id>")
class UserItem(MethodView):
    @users_blp.response(200, s.UserSchema)
    def get(self, user_id: str) -> dict[str, Any]:
        """One user."""
        state = ledger().state(current_principal().account_id)
        return user_body(state, state.user(user_id))

    @users_blp.arguments(s.UserUpdateSchema)
    @users_blp.response(200, s.UserSchema)
    @users_blp.doc(**IDEMPOTENT)
    def put(self, body: dict[str, Any], user_id: str) -> Any:
        """Change a user's name and/or role."""
        account_id = current_principal().account_id
        outcome = ledger().update_user(
            account_id, user_id, body.get("name"), body.get("role"), current_actor()
        )
        return changed(outcome, user_body(outcome.state, outcome.state.user(user_id)), 200)

    @users_blp.response(204)
    @users_blp.doc(**IDEMPOTENT)
    def delete(self, user_id: str) -> Any:
        """Remove a user and every key they hold."""
        outcome = ledger().remove_user(current_principal().account_id, user_id, current_actor())
        return changed(outcome, None, 204)


@keys_blp.route("")
class ApiKeys(MethodView):
    @keys_blp.arguments(s.ApiKeysQuerySchema, location="query")
    @keys_blp.response(200, s.ApiKeysSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """All secret keys of the account (never their secrets).

        With ``unusedForDays``, only those unused for that many days (a key never used
        counts from its creation): candidates for deletion.
        """
        state = ledger().state(current_principal().account_id)
        keys = sorted(state.keys.values(), key=lambda k: k.name)
        if "unused_for_days" in query:
            keys = key_info().unused(state, keys, ledger().clock(), query["unused_for_days"])
        return {"api_keys": keys_body(state, keys)}

    @keys_blp.arguments(s.ApiKeyCreateSchema)
    @keys_blp.response(201, s.ApiKeyCreatedSchema)
    @keys_blp.doc(**IDEMPOTENT)
    def post(self, body: dict[str, Any]) -> Any:
        """Create a secret key; its secret is in this response and nowhere else, ever."""
        account_id = current_principal().account_id
        secret, outcome = ledger().create_secret_key(
            account_id,
            body["name"],
            body["user_id"],
            tuple(body["allowed_source_ips"]),
            current_actor(),
            description=body["description"],
            expires=body.get("expires_timestamp"),
        )
        return changed(outcome, {**one_key(outcome.state, body["name"]), "secret_key": secret}, 201)


@keys_blp.route("/<string:name>")
class ApiKeyItem(MethodView):
    @keys_blp.response(200, s.ApiKeySchema)
    def get(self, name: str) -> dict[str, Any]:
        """One secret key."""
        state = ledger().state(current_principal().account_id)
        return one_key(state, name)

    @keys_blp.arguments(s.ApiKeyUpdateSchema)
    @keys_blp.response(200, s.ApiKeySchema)
    @keys_blp.doc(**IDEMPOTENT)
    def put(self, body: dict[str, Any], name: str) -> Any:
        """Disable or enable the key, or change its description or expiry.

        ``{"enabled": false}``: the next request with the key gets 401, in every web
        process; ``true`` restores it. ``"expiresTimestamp": null`` removes the expiry.
        """
        outcome = ledger().update_secret_key(
            cmd.UpdateSecretKey(
                account_id=current_principal().account_id,
                name=name,
                enabled=body.get("enabled"),
                description=body.get("description"),
                change_expiry="expires_timestamp" in body,
                expires=body.get("expires_timestamp"),
            ),
            current_actor(),
        )
        return changed(outcome, one_key(outcome.state, name), 200)

    @keys_blp.response(204)
    @keys_blp.doc(**IDEMPOTENT)
    def delete(self, name: str) -> Any:
        """Delete a secret key: the next request with it fails."""
        outcome = ledger().delete_secret_key(current_principal().account_id, name, current_actor())
        return changed(outcome, None, 204)


@keys_blp.route("/<string:name>/rotate")
class RotateKey(MethodView):
    @keys_blp.arguments(s.RotateSchema)
    @keys_blp.response(200, s.ApiKeyCreatedSchema)
    @keys_blp.doc(**IDEMPOTENT)
    def post(self, body: dict[str, Any], name: str) -> Any:
        """A new secret for the key, shown in this response only; everything else stays.

        The previous secret keeps working for ``gracePeriodSeconds`` (0 to 604800,
        default 0: it stops at once), then gets the same 401 as any bad key. Rotating
        again during a grace period ends the older grace at once.
        """
        secret, outcome = ledger().rotate_secret_key(
            current_principal().account_id, name, body["grace_period_seconds"], current_actor()
        )
        return changed(outcome, {**one_key(outcome.state, name), "secret_key": secret}, 200)


@keys_blp.route("/<string:name>/allowed-source-ips")
class AllowedSourceIps(MethodView):
    @keys_blp.arguments(s.CidrSchema)
    @keys_blp.response(200, s.ApiKeySchema)
    @keys_blp.doc(**IDEMPOTENT)
    def post(self, body: dict[str, Any], name: str) -> Any:
        """Allow one more source subnet (IPv4 or IPv6 CIDR) for the key."""
        outcome = ledger().allow_subnet(
            current_principal().account_id, name, body["cidr"], current_actor()
        )
        return changed(outcome, one_key(outcome.state, name), 200)

    @keys_blp.arguments(s.CidrSchema, location="query")
    @keys_blp.response(200, s.ApiKeySchema)
    @keys_blp.doc(**IDEMPOTENT)
    def delete(self, query: dict[str, Any], name: str) -> Any:
        """Remove one source subnet from the key."""
        outcome = ledger().remove_subnet(
            current_principal().account_id, name, query["cidr"], current_actor()
        )
        return changed(outcome, one_key(outcome.state, name), 200)
