"""marshmallow schemas: they validate requests, shape responses and write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import Schema, fields, validate

from app.domain.account import KEY_NAME, MAX_USER_NAME
from app.domain.network import MAX_CIDR_LENGTH
from app.domain.roles import ROLE_NAMES

ID = validate.Length(min=1, max=64)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
KEY_NAME_RULE = validate.Regexp(
    KEY_NAME, error="10-50 characters: letters, digits, '-' and '_' only"
)


class StrictSchema(Schema):
    """Unknown fields are errors (marshmallow's default, stated for the reader)."""


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
    account_id = fields.String(data_key="accountId")
    account_name = fields.String(data_key="accountName")
    allowed_source_ips = fields.List(fields.String(), data_key="allowedSourceIps")
    created_timestamp = fields.String(data_key="createdTimestamp")
    owner = fields.Nested(OwnerSchema)
    http_source_ip = fields.String(data_key="httpSourceIp", allow_none=True)


class AccountInfoSchema(Schema):
    id = fields.String()
    name = fields.String()
    key = fields.Nested(KeyInfoSchema)


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


class ApiKeySchema(NoticeMixin):
    name = fields.String()
    user_id = fields.String(data_key="userId")
    account_id = fields.String(data_key="accountId")
    allowed_source_ips = fields.List(fields.String(), data_key="allowedSourceIps")
    created_timestamp = fields.String(data_key="createdTimestamp")


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
    resource_id = fields.String(data_key="resourceId", validate=validate.Length(min=1, max=100))


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
