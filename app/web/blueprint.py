"""flask-smorest pieces shared by the views."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, json, jsonify
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest import abort
from marshmallow import missing
from webargs.flaskparser import FlaskParser, is_json_request

from keyledger.bootstrap import Container
from keyledger.service import NOT_IN_EFFECT, Ledger, Outcome
from keyledger.web.jsonbody import DuplicateKey, strict_loads

NOT_IN_EFFECT_HEADERS = {"Keyledger-Change": "recorded; not yet in effect"}


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: Any, schema: Any) -> Any:
        # json.loads raises plain ValueError (integers over 4300 digits) and
        # RecursionError (deep nesting), which webargs lets through as a 500.
        try:
            return super().load_json(req, schema)
        except DuplicateKey as exc:
            abort(400, messages={"json": [str(exc)]})
        except (ValueError, RecursionError):
            abort(400, messages={"json": ["Invalid JSON body."]})

    def _raw_load_json(self, req: Any) -> Any:
        """webargs' own parse, with duplicate keys refused (``jsonbody``)."""
        if not is_json_request(req):
            return missing
        return strict_loads(req.get_data(cache=True))


class Blueprint(SmorestBlueprint):
    """Validation errors are 400 Bad Request, with every bad field named."""

    ARGUMENTS_PARSER = Parser()


def container() -> Container:
    return current_app.extensions["keyledger"]  # type: ignore[no-any-return]


def ledger() -> Ledger:
    return container().ledger


def changed(outcome: Outcome, body: dict[str, Any] | None, status: int) -> Any:
    """The response to a change: its normal status once in effect, else 202 and a notice."""
    if outcome.in_effect:
        if body is None:
            return Response(status=status)
        return body, status
    headers = dict(NOT_IN_EFFECT_HEADERS)
    if body is None:
        response = jsonify({"notice": NOT_IN_EFFECT})
        response.status_code = 202
        response.headers.update(headers)
        return response
    return {**body, "notice": NOT_IN_EFFECT}, 202, headers


def not_yet_in_effect(response: Response) -> Response:
    """What ``changed`` answers when not in effect, made from the response it answered
    when in effect (a deferred change, ``keyledger.web.idempotency``, is rendered first
    and applied after)."""
    headers = dict(NOT_IN_EFFECT_HEADERS)
    body = response.get_json(silent=True) if response.get_data() else None
    payload = (
        {**body, "notice": NOT_IN_EFFECT} if isinstance(body, dict) else {"notice": NOT_IN_EFFECT}
    )
    noticed = Response(json.dumps(payload), status=202, mimetype="application/json")
    noticed.headers.update(headers)
    return noticed
