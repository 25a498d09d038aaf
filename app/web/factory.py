"""The application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api
from marshmallow import Schema, fields

from keyledger.adapters.idempotency import IdempotencyStore
from keyledger.adapters.ratelimit import RateLimiter
from keyledger.bootstrap import Container, build, verify_partitions
from keyledger.config import FORWARD_AUTH_HEADERS, Settings
from keyledger.observability import logs as observability_logs
from keyledger.observability import web as observability
from keyledger.web import auth, console, durability, errors, idempotency, scanning
from keyledger.web.audit import audit_blp
from keyledger.web.blueprint import Blueprint
from keyledger.web.forward import ForwardAuthFastPath, forward_blp
from keyledger.web.jsonbody import StrictJSONProvider
from keyledger.web.proxies import TrustedProxyFix
from keyledger.web.scanning import scanning_blp
from keyledger.web.schemas import ErrorSchema
from keyledger.web.views import account_blp, keys_blp, users_blp
from keyledger.web.whoami import WhoAmICache, WhoAmIFastPath

MAX_BODY_BYTES = 64 * 1024

health_blp = Blueprint("health", __name__, description="Liveness")


class HealthSchema(Schema):
    status = fields.String(required=True)


@health_blp.route("/healthz")
@health_blp.response(200, HealthSchema)
@health_blp.doc(security=[])
def healthz() -> dict[str, str]:
    """Liveness of this web process (no Redis call)."""
    return {"status": "ok"}


class KeyledgerApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: Any) -> Any:
        return errors.handle_http_exception(error)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the web app. ``config`` may hold ``settings`` (a ``Settings``) or a ``container``."""
    config = dict(config or {})
    container: Container | None = config.pop("container", None)
    if container is None:
        settings = config.pop("settings", None) or Settings.from_env()
        container = build(settings)
        verify_partitions(container)
        container.auth_cache.sync()  # starts subscribing to invalidations (in the background)
    settings = container.settings
    observability_logs.configure(settings.log_level, settings.log_format)

    # No static folder: Flask's default one would be a public route serving whatever
    # files sit beside the package. Public files get their own blueprint, deliberately.
    app = Flask("keyledger", static_folder=None)
    app.json = StrictJSONProvider(app)  # a duplicate key in a body is a 400 (jsonbody)
    app.config.update(
        API_TITLE="keyledger",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/v1",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="swagger-ui",
        OPENAPI_SWAGGER_UI_URL=console.SWAGGER_UI_ASSETS,  # served here: no CDN
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        **config,
    )
    app.extensions["keyledger"] = container

    api = KeyledgerApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Event-sourced API-key authentication (account key + secret key)"
            },
        },
    )
    for name, header in (("accountKey", "x-api-key"), ("secretKey", "x-api-secret-key")):
        api.spec.components.security_scheme(
            name, {"type": "apiKey", "in": "header", "name": header}
        )
    api.spec.options["security"] = [{"accountKey": [], "secretKey": []}]
    for blueprint in (health_blp, account_blp, users_blp, keys_blp, audit_blp, forward_blp):
        api.register_blueprint(blueprint)
    console.install(app)
    api.register_blueprint(scanning_blp)
    scanning.install(app, settings.secret_scanning_keys)
    errors.register(app)
    gate = auth.Gate(
        container.authenticator,
        RateLimiter(
            container.redis,
            container.keyspace,
            settings.rate_limit_per_minute,
            capacity=settings.auth_cache_size,
        ),
        container.last_use,
        revocations=RateLimiter(
            container.redis,
            container.keyspace,
            settings.rate_limit_per_minute,
            capacity=settings.auth_cache_size,
            lane="revocations",
        ),
    )
    app.extensions["keyledger.gate"] = gate
    bodies = WhoAmICache(settings.auth_cache_size)
    container.auth_cache.subscribe(bodies.forget)
    container.last_use.subscribe(bodies.forget)
    app.extensions["keyledger.whoami"] = bodies
    auth.install(app, gate)
    # Innermost first: the fast path sees the client address the proxy fix established.
    family = FORWARD_AUTH_HEADERS[settings.forward_auth_headers]
    app.wsgi_app = ForwardAuthFastPath(app.wsgi_app, gate, family)  # type: ignore[method-assign]
    app.wsgi_app = WhoAmIFastPath(app.wsgi_app, gate, container.ledger, bodies)  # type: ignore[method-assign]
    observability.install(app, container, gate)  # metrics, request log, /metrics, /readyz
    if settings.trusted_proxies:
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxies, settings.trusted_proxy_addresses
        )
    durability.install(app)  # before idempotency: its after_request runs after that one's
    idempotency.install(
        app,
        IdempotencyStore(container.redis, container.keyspace),
        container.store,
        container.ledger,
    )
    return app
