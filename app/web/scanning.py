"""``POST /v1/secret-scanning/github``: the partner endpoint of GitHub's secret scanning.

It takes no API keys (GitHub has none): a report is accepted only with GitHub's
signature over the raw body (``app.authn.github``), and all it can do is revoke a
key whose secret it presents, which is what anyone holding that secret could do
anyway. Without ``KEYLEDGER_SECRET_SCANNING_KEYS`` the endpoint answers 404.

Checks, in order, each refusing with nothing changed: 404 (not configured), 413
(body over 1 MiB), 401 (missing or bad signature), 400 (not GitHub's JSON array of
``{"token", "type", "url", "source"}``), 413 (over 1,000 tokens). Then every token
is handled (``app.leaks``) and the answer is GitHub's optional response format,
one entry per reported token, never echoing a token. The same signed body again
within an hour gets the stored answer without any hashing (``adapters.scanreplay``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from keyledger.adapters.scanreplay import ReportAnswers, body_digest
from keyledger.authn.github import GitHubSignatures, KeysFileError
from keyledger.config import ConfigError
from keyledger.domain.text import printable
from keyledger.leaks import Finding, LeakReports
from keyledger.web import schemas as s
from keyledger.web.blueprint import Blueprint, container
from keyledger.web.errors import error_response
from keyledger.web.jsonbody import DuplicateKey, strict_loads

scanning_blp = Blueprint(
    "secret_scanning",
    __name__,
    url_prefix="/v1/secret-scanning",
    description="GitHub secret scanning partner endpoint",
)

MAX_BODY = 1024 * 1024
MAX_TOKENS = 1000
MAX_TOKEN = 4096
MAX_TEXT = 2048
SIGNATURES = "keyledger.github_signatures"


def install(app: Any, keys_path: str | None) -> None:
    """Load GitHub's public keys at start-up (a bad file stops the start, loudly)."""
    try:
        app.extensions[SIGNATURES] = GitHubSignatures(keys_path) if keys_path else None
    except KeysFileError as exc:
        raise ConfigError(f"KEYLEDGER_SECRET_SCANNING_KEYS={keys_path}: {exc}") from None


def problem_in(report: Any) -> str | None:
    """What makes ``report`` other than GitHub's array of matches, or None."""
    if not isinstance(report, list):
        return "the body must be a JSON array of {token, type, url, source}"
    for number, item in enumerate(report):
        if not isinstance(item, dict):
            return f"[{number}] must be an object"
        token = item.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
            return f"[{number}].token must be a string of 1-{MAX_TOKEN} characters"
        for name in ("type", "url", "source"):
            value = item.get(name)
            if value is not None and not isinstance(value, str):
                return f"[{number}].{name} must be a string"
    return None


def where_found(url: str | None) -> str:
    """A report's URL as it is kept: what a text field may not hold percent-encoded
    (``text.printable``), at most ``MAX_TEXT`` characters. A signed report is never
    refused for its URL, which only says where the leak was: refused, its keys would
    stay live (GitHub's URLs are plain, but a path may hold anything)."""
    return printable(url or "")[:MAX_TEXT]


@scanning_blp.route("/github", methods=["POST"])
@scanning_blp.doc(
    security=[],
    parameters=[
        {
            "in": "header",
            "name": "Github-Public-Key-Identifier",
            "schema": {"type": "string", "maxLength": 512},
        },
        {
            "in": "header",
            "name": "Github-Public-Key-Signature",
            "schema": {"type": "string", "maxLength": 512},
        },
    ],
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": MAX_TOKENS,
                    "items": {
                        "type": "object",
                        "required": ["token"],
                        "properties": {
                            "token": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN},
                            "type": {"type": "string"},
                            "url": {"type": "string"},
                            "source": {"type": "string"},
                        },
                    },
                }
            }
        },
    },
)
@scanning_blp.response(200, s.ScanVerdictSchema(many=True))
@scanning_blp.alt_response(400, schema=s.ErrorSchema, description="not a report")
@scanning_blp.alt_response(401, schema=s.ErrorSchema, description="missing or bad signature")
@scanning_blp.alt_response(404, schema=s.ErrorSchema, description="not configured")
@scanning_blp.alt_response(413, schema=s.ErrorSchema, description="over 1 MiB or 1,000 tokens")
def github() -> Any:
    """Revoke the leaked keys a signed GitHub secret scanning report names.

    A live secret key is revoked at once (reason ``leaked``); an account key is only
    recorded as reported leaked (see ``keyledger status``). A repeated report of the
    same token is answered alike and records nothing new.
    """
    signatures: GitHubSignatures | None = current_app.extensions.get(SIGNATURES)
    if signatures is None:
        return error_response(404, "secret scanning is not configured here")
    request.max_content_length = MAX_BODY
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return error_response(413, "the report is over 1 MiB")
    wrong = signatures.verify(
        request.headers.get("Github-Public-Key-Identifier"),
        request.headers.get("Github-Public-Key-Signature"),
        body,
    )
    if wrong is not None:
        return error_response(401, wrong, "invalid_signature")
    try:
        report = strict_loads(body)
    except DuplicateKey as exc:
        return error_response(400, f"the body is not a report: {exc}")
    except (ValueError, RecursionError):
        return error_response(400, "the body is not JSON")
    if isinstance(report, list) and len(report) > MAX_TOKENS:
        return error_response(413, f"the report holds over {MAX_TOKENS} tokens")
    problem = problem_in(report)
    if problem is not None:
        return error_response(400, f"invalid report: {problem}")
    built = container()
    answers, digest = ReportAnswers(built.redis, built.keyspace), body_digest(body)
    replayed = answers.answered(digest)
    if replayed is not None:  # the same signed body again: no hashing (app.adapters.scanreplay)
        return jsonify(replayed)
    reports = LeakReports(built.ledger, built.authenticator.lookup, built.hasher)
    verdicts = reports.handle(
        [Finding(item["token"], where_found(item.get("url"))) for item in report]
    )
    answer = [verdict.as_json() for verdict in verdicts]
    answers.remember(digest, answer)
    return jsonify(answer)
