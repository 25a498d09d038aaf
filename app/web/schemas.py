"""marshmallow schemas: they validate requests, shape responses and write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from keyledger.domain.account import HOLDS_KEY, KEY_NAME, MAX_USER_NAME
from keyledger.domain.lifecycle import MAX_DESCRIPTION, MAX_GRACE_SECONDS
from keyledger.domain.network import MAX_CIDR_LENGTH
from keyledger.domain.roles import ROLE_NAMES
from keyledger.domain.tokens import holds_key
from keyledger.history import parse_entry_id

ID = validate.Length(min=1, max=64)
#: The longest ``resourceId`` filter (resource ids are at most 64 characters).
MAX_QUERY_VALUE = 100


def _no_key(value: str) -> None:
    """A query value that could hold a key is refused: it would come back in the page's
    links (a resource's name never holds one: ``account.check_no_key``). A value too long
    for its field is refused for its length alone (marshmallow runs every validator), not
    read ``DECODINGS`` times over."""
    if len(value) <= MAX_QUERY_VALUE and holds_key(value):
        raise ValidationError(HOLDS_KEY)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
KEY_NAME_RULE = validate.Regexp(
    KEY_NAME, error="10-50 characters: letters, digits, '-' and '_' only"
)


class StrictSchema(Schema):
    """Unknown fields are errors (marshmallow's default, stated for the reader)."""


class StrictBoolean(fields.Boolean):
    """JSON ``true`` or ``false`` only (marshmallow's Boolean also takes 1, "yes", "on")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


#: An expiry as clients send it: ISO 8601 with its zone (Z for UTC).
EXPIRES: dict[str, Any] = {
    "data_key": "expiresTimestamp",
    "validate": validate.Range(min=EPOCH, max=LATEST),
    "metadata": {
        "description": "ISO 8601 with its zone, e.g. 2026-12-01T10:00:00Z: in the future and "
        "at most KEYLEDGER_MAX_KEY_LIFETIME_DAYS (default 366) ahead"
    },
}


class ErrorBodySchema(StrictSchema):
    status = fields.Integer(required=True)
    code = fields.String(required=True)
    description = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "validation errors, by field"},
    )


class ErrorSchema(StrictSchema):
    error = fields.Nested(ErrorBodySchema, required=True)


class NoticeMixin(Schema):
    notice = fields.String(
        metadata={"description": "present when the change is recorded but not yet in effect"}
    )


class OwnerSchema(Schema):
    name = fields.String()
    email = fields.String()


class KeyInfoSchema(Schema):
    name = fields.String()
    user_id = fields.String(data_key="userId")
    description = fields.String()
    status = fields.String()
    enabled = fields.Boolean()
    expires_timestamp = fields.String(data_key="expiresTimestamp", allow_none=True)
    previous_secret_expires_timestamp = fields.String(
        data_key="previousSecretExpiresTimestamp", allow_none=True
    )
    last_used_timestamp = fields.String(data_key="lastUsedTimestamp", allow_none=True)
    last_used_source_ip = fields.String(data_key="lastUsedSourceIp", allow_none=True)
    account_id = fields.String(data_key="accountId")
    account_name = fields.String(data_key="accountName")
    allowed_source_ips = fields.List(fields.String(), data_key="allowedSourceIps")
    created_timestamp = fields.String(data_key="createdTimestamp")
    owner = fields.Nested(OwnerSchema)
    http_source_ip = fields.String(data_key="httpSourceIp", allow_none=True)


class AccountKeyInfoSchema(Schema):
    """The account key the caller presented."""

    last_used_timestamp = fields.String(data_key="lastUsedTimestamp", allow_none=True)
    last_used_source_ip = fields.String(data_key="lastUsedSourceIp", allow_none=True)
    expires_timestamp = fields.String(
        data_key="expiresTimestamp",
        allow_none=True,
        metadata={"description": "when this key stops: set while it is in a rotation's grace"},
    )
    previous_key_expires_timestamp = fields.String(
        data_key="previousKeyExpiresTimestamp",
        allow_none=True,
        metadata={"description": "end of the grace period of the account's previous key"},
    )


class AccountInfoSchema(Schema):
    id = fields.String()
    name = fields.String()
    key = fields.Nested(KeyInfoSchema)
    account_key = fields.Nested(AccountKeyInfoSchema, data_key="accountKey")


class WhoAmISchema(Schema):
    account = fields.Nested(AccountInfoSchema)


class UserSchema(NoticeMixin):
    id = fields.String()
    name = fields.String()
    email = fields.String()
    role = fields.String()
    has_api_key = fields.Boolean(data_key="hasApiKey")


class UsersSchema(Schema):
    users = fields.List(fields.Nested(UserSchema))


class UserCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_USER_NAME))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    role = fields.String(required=True, validate=validate.OneOf(ROLE_NAMES))


class UserUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=MAX_USER_NAME))
    role = fields.String(validate=validate.OneOf(ROLE_NAMES))


class LifecycleFieldsMixin(Schema):
    """What every key shows of its lifecycle (docs/lifecycle.md)."""

    description = fields.String()
    status = fields.String(
        validate=validate.OneOf(["active", "disabled", "expired"]),
        metadata={"description": "active, disabled or expired (from the instant of expiry)"},
    )
    enabled = fields.Boolean()
    expires_timestamp = fields.String(data_key="expiresTimestamp", allow_none=True)
    previous_secret_expires_timestamp = fields.String(
        data_key="previousSecretExpiresTimestamp",
        allow_none=True,
        metadata={
            "description": "while a rotation's grace period runs: when the previous "
            "secret stops working"
        },
    )
    last_used_timestamp = fields.String(
        data_key="lastUsedTimestamp",
        allow_none=True,
        metadata={
            "description": "null until first use; written in batches "
            "(KEYLEDGER_LAST_USED_FLUSH_SECONDS)"
        },
    )
    last_used_source_ip = fields.String(data_key="lastUsedSourceIp", allow_none=True)


class ApiKeySchema(LifecycleFieldsMixin, NoticeMixin):
    name = fields.String()
    user_id = fields.String(data_key="userId")
    account_id = fields.String(data_key="accountId")
    allowed_source_ips = fields.List(fields.String(), data_key="allowedSourceIps")
    created_timestamp = fields.String(data_key="createdTimestamp")


DESCRIPTION = {"description": "at most 200 printable characters (no control or bidi)"}


class ApiKeyCreatedSchema(ApiKeySchema):
    secret_key = fields.String(
        data_key="secretKey", metadata={"description": "shown only in this response"}
    )


class ApiKeysSchema(Schema):
    api_keys = fields.List(fields.Nested(ApiKeySchema), data_key="apiKeys")


class ApiKeyCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=KEY_NAME_RULE)
    user_id = fields.String(data_key="userId", required=True, validate=ID)
    allowed_source_ips = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_CIDR_LENGTH)),
        data_key="allowedSourceIps",
        load_default=list,
        validate=validate.Length(max=256),
    )
    description = fields.String(
        load_default="", validate=validate.Length(max=MAX_DESCRIPTION), metadata=DESCRIPTION
    )
    expires_timestamp = fields.AwareDateTime(**EXPIRES)


class ApiKeyUpdateSchema(StrictSchema):
    """Give at least one field; ``expiresTimestamp: null`` removes the expiry."""

    enabled = StrictBoolean(metadata={"description": "false: every request with it gets 401"})
    description = fields.String(validate=validate.Length(max=MAX_DESCRIPTION), metadata=DESCRIPTION)
    expires_timestamp = fields.AwareDateTime(allow_none=True, **EXPIRES)


class RotateSchema(StrictSchema):
    grace_period_seconds = fields.Integer(
        data_key="gracePeriodSeconds",
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=MAX_GRACE_SECONDS),
        metadata={"description": "how long the previous secret keeps working (default 0)"},
    )


class ApiKeysQuerySchema(Schema):
    unused_for_days = fields.Integer(
        data_key="unusedForDays",
        validate=validate.Range(min=1, max=36500),
        metadata={
            "description": "only keys unused for this many days (never used: since their creation)"
        },
    )


class ScanVerdictSchema(Schema):
    token_hash = fields.String(metadata={"description": "SHA-256 (hex) of the reported token"})
    token_type = fields.String(
        validate=validate.OneOf(["keyledger_secret_key", "keyledger_account_key", "unknown"])
    )
    label = fields.String(validate=validate.OneOf(["true_positive", "false_positive"]))


class CidrSchema(StrictSchema):
    cidr = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CIDR_LENGTH))


class LinkSchema(Schema):
    rel = fields.String()
    href = fields.String()
    type = fields.String()


class LogsQuerySchema(Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    start_time = fields.AwareDateTime(
        data_key="startTime", default_timezone=UTC, validate=validate.Range(min=EPOCH, max=LATEST)
    )
    end_time = fields.AwareDateTime(
        data_key="endTime", default_timezone=UTC, validate=validate.Range(min=EPOCH, max=LATEST)
    )
    resource_id = fields.String(
        data_key="resourceId", validate=[validate.Length(min=1, max=MAX_QUERY_VALUE), _no_key]
    )


class LogEntrySchema(Schema):
    """Dumped from the stored entries, which are already in API (camelCase) form."""

    id = fields.Integer()
    time = fields.String()
    originator = fields.String()
    apiKeyName = fields.String(metadata={"description": "the key that made the change"})
    resource = fields.String()
    resourceId = fields.String()
    type = fields.String()
    description = fields.String()


class LogsSchema(Schema):
    entries = fields.List(fields.Nested(LogEntrySchema))
    links = fields.List(fields.Nested(LinkSchema))


class EventsQuerySchema(Schema):
    after = fields.Integer(
        load_default=0,
        validate=validate.Range(min=0, max=2**53),
        metadata={"description": "return events with a version greater than this"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class StoredEventSchema(Schema):
    id = fields.String(metadata={"description": "stream entry id"})
    version = fields.Integer()
    type = fields.String()
    schema_version = fields.Integer(data_key="schemaVersion")
    time = fields.String()
    actor = fields.Dict()
    data = fields.Dict()


class EventsSchema(Schema):
    events = fields.List(fields.Nested(StoredEventSchema))
    links = fields.List(fields.Nested(LinkSchema))


class BrokenLinkSchema(Schema):
    """``BrokenLink.as_dict()``: already in API (camelCase) form."""

    accountId = fields.String()
    version = fields.Integer(allow_none=True, metadata={"description": "1-based place in history"})
    entryId = fields.String(allow_none=True, metadata={"description": "stream entry id"})
    stream = fields.String(metadata={"description": "account, log, head or expected"})
    key = fields.String(metadata={"description": "the Redis key where it was found"})
    reason = fields.String()


class AuditReportSchema(Schema):
    """``AuditReport.as_dict()``: already in API (camelCase) form."""

    ok = fields.Boolean(required=True, metadata={"description": "every link verifies"})
    accounts = fields.Integer()
    events = fields.Integer(metadata={"description": "events of the account checked"})
    logEntries = fields.Integer(metadata={"description": "partition log entries matched"})
    partitions = fields.Integer()
    brokenLink = fields.Nested(BrokenLinkSchema, metadata={"description": "the first broken link"})
    brokenAccounts = fields.Integer()


def _entry_id(value: str) -> None:
    if parse_entry_id(value) is None:
        raise ValidationError("a stream entry id, e.g. 1795846140133-0")


class EventsPageQuerySchema(EventsQuerySchema):
    """``EventsQuerySchema`` with the cursor that ``links.next`` carries."""

    after_id = fields.String(
        data_key="afterId",
        validate=[validate.Length(max=41), _entry_id],
        metadata={
            "description": "stream entry id of version `after` (from `links.next`): the page "
            "is read from there; ignored when it is not that version's entry"
        },
    )


LOGS_CSV_COLUMNS = "id,time,originator,apiKeyName,resource,resourceId,type,description"
LOGS_CSV = {
    "type": "string",
    "example": f"{LOGS_CSV_COLUMNS}\r\n"
    "7,2026-11-28T06:09:06Z,Ann Owner,owner-key-0001,user,4f1c2a9b0d3e5f67,create,"
    '"User ""Vic"" with email ""v@example.com"" added with role Viewer"\r\n',
}
LOGS_CSV_DESCRIPTION = (
    "A page of the system log: JSON by default; CSV (a download) when the Accept header "
    f"prefers `text/csv`, with the header row `{LOGS_CSV_COLUMNS}` and the same filters and "
    "paging. In CSV, a text cell starting with `=`, `+`, `-`, `@`, tab or carriage return "
    "gets a leading `'` so that spreadsheets do not run it as a formula."
)
LOGS_CSV_HEADERS = {
    "Content-Disposition": {
        "description": 'CSV only: attachment; filename="keyledger-system-log-<account id>.csv"',
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'CSV only: the paging links (RFC 8288), rel="previous" and rel="next"',
        "schema": {"type": "string"},
    },
}
