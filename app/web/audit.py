"""For auditors: the system log (``/v1/logs``) and the raw event history (``/v1/events``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import request
from flask.views import MethodView

from app.web import schemas as s
from app.web.auth import current_principal
from app.web.blueprint import Blueprint, container

audit_blp = Blueprint("audit", __name__, url_prefix="/v1", description="System log and history")

#: Event fields that are not secrets but have no business leaving the server.
REDACTED_FIELDS = frozenset({"key_hash", "key_id"})


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def link(rel: str, **params: Any) -> dict[str, str]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return {"rel": rel, "href": f"{request.path}?{query}", "type": "GET"}


@audit_blp.route("/logs")
class Logs(MethodView):
    @audit_blp.arguments(s.LogsQuerySchema, location="query")
    @audit_blp.response(200, s.LogsSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The account's system log, newest first: every change and which key made it."""
        offset, limit = query["offset"], query["limit"]
        page = container().system_log.page(
            current_principal().account_id,
            offset=offset,
            limit=limit,
            start=query.get("start_time"),
            end=query.get("end_time"),
            resource_id=query.get("resource_id"),
        )
        keep = {
            "startTime": request.args.get("startTime"),
            "endTime": request.args.get("endTime"),
            "resourceId": request.args.get("resourceId"),
        }
        links = []
        if offset > 0:
            links.append(link("previous", offset=max(offset - limit, 0), limit=limit, **keep))
        if page.has_more:
            links.append(link("next", offset=offset + limit, limit=limit, **keep))
        return {"entries": page.entries, "links": links}


@audit_blp.route("/events")
class Events(MethodView):
    @audit_blp.arguments(s.EventsQuerySchema, location="query")
    @audit_blp.response(200, s.EventsSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The account's event history in order (the source of truth), for auditors."""
        after, limit = query["after"], query["limit"]
        store = container().store
        events: list[dict[str, Any]] = []
        for stored in store.iter_account(current_principal().account_id):
            version = int(stored.record["version"])
            if version <= after:
                continue
            if len(events) == limit + 1:
                break
            data = json.loads(stored.record["data"])
            events.append(
                {
                    "id": stored.entry_id,
                    "version": version,
                    "type": stored.record["type"],
                    "schema_version": int(stored.record["schema"]),
                    "time": stored.record["time"],
                    "actor": {camel(k): v for k, v in json.loads(stored.record["actor"]).items()},
                    "data": {camel(k): v for k, v in data.items() if k not in REDACTED_FIELDS},
                }
            )
        links = []
        if len(events) > limit:
            events = events[:limit]
            links.append(link("next", after=events[-1]["version"], limit=limit))
        return {"events": events, "links": links}
