"""For auditors: the system log (``/v1/logs``) and the raw event history (``/v1/events``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from flask import Response, request
from flask.views import MethodView

from keyledger.adapters.audit import ChainAuditor
from keyledger.history import csv_row, events_after, history_item
from keyledger.web import schemas as s
from keyledger.web.auth import current_principal
from keyledger.web.blueprint import Blueprint, container

audit_blp = Blueprint("audit", __name__, url_prefix="/v1", description="System log and history")

JSON, CSV = "application/json", "text/csv"
#: Columns of the CSV system log, as the model's console exports it.
LOG_COLUMNS = (
    "id",
    "time",
    "originator",
    "apiKeyName",
    "resource",
    "resourceId",
    "type",
    "description",
)


def link(rel: str, **params: Any) -> dict[str, str]:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return {"rel": rel, "href": f"{request.path}?{query}", "type": "GET"}


def wants_csv() -> bool:
    """CSV only when the Accept header ranks it above JSON; JSON on a tie or no header."""
    return request.accept_mimetypes.best_match((JSON, CSV)) == CSV


def csv_log(
    account_id: str, entries: Iterable[dict[str, Any]], links: list[dict[str, str]]
) -> Response:
    """The system log page as a CSV download; paging links move to the ``Link`` header."""
    body = csv_row(LOG_COLUMNS) + "".join(
        csv_row(entry.get(column) for column in LOG_COLUMNS) for entry in entries
    )
    response = Response(body, mimetype=CSV)
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", account_id)[:64]
    response.headers["Content-Disposition"] = (
        f'attachment; filename="keyledger-system-log-{safe_id}.csv"'
    )
    if links:
        response.headers["Link"] = ", ".join(f'<{x["href"]}>; rel="{x["rel"]}"' for x in links)
    response.vary.add("Accept")
    return response


@audit_blp.route("/logs")
class Logs(MethodView):
    @audit_blp.arguments(s.LogsQuerySchema, location="query")
    @audit_blp.response(200, s.LogsSchema)
    @audit_blp.alt_response(
        200,
        schema=s.LOGS_CSV,
        content_type=CSV,
        description=s.LOGS_CSV_DESCRIPTION,
        headers=s.LOGS_CSV_HEADERS,
        success=True,
    )
    def get(self, query: dict[str, Any]) -> Any:
        """The account's system log, newest first: every change and which key made it.

        JSON by default; CSV (a download) when the Accept header prefers ``text/csv``.
        """
        offset, limit = query["offset"], query["limit"]
        account_id = current_principal().account_id
        page = container().system_log.page(
            account_id,
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
        if wants_csv():
            return csv_log(account_id, page.entries, links)
        return {"entries": page.entries, "links": links}, 200, {"Vary": "Accept"}


@audit_blp.route("/events")
class Events(MethodView):
    @audit_blp.arguments(s.EventsPageQuerySchema, location="query")
    @audit_blp.response(200, s.EventsSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The account's event history in order (the source of truth), for auditors.

        Follow ``links.next``: besides ``after`` (a version) it carries ``afterId``, the
        stream entry id of that version, so each page is one read from where the last
        one ended instead of a scan from the start.
        """
        after, limit = query["after"], query["limit"]
        stored = events_after(
            container().store,
            current_principal().account_id,
            after,
            limit + 1,
            query.get("after_id"),
        )
        items = [history_item(event) for event in stored[:limit]]
        links = []
        if len(stored) > limit:
            last = items[-1]
            links.append(link("next", after=last.version, afterId=last.id, limit=limit))
        return {"events": items, "links": links}


@audit_blp.route("/audit/verify")
class Verify(MethodView):
    @audit_blp.response(200, s.AuditReportSchema)
    def get(self) -> dict[str, Any]:
        """Recompute the hash chain of the caller's account: what
        ``keyledger audit verify --account`` reports (Owners and Logs Viewers).

        The account's stream is walked from genesis, its end compared with the head Redis
        keeps, and its entries matched one by one with the partition log. ``ok`` is false
        when any link is broken; ``brokenLink`` then names the first one and why.
        """
        report = ChainAuditor(container().store).verify(current_principal().account_id)
        return report.as_dict()
