"""The pages a browser opens: the console at ``/console/`` and Swagger UI, with their files.

The console is static: one HTML page and plain ES modules (no build step) that
call the same API a client calls, with the two keys the user types in, so the
same policies, rate limits and audit apply to everything it does. Nothing here
authenticates: the page and its files are public, like ``/healthz``, and hold
no data.

Swagger UI's files come from the ``flask-swagger-ui`` wheel (its ``dist``
folder), served from here, so no page loads anything from another host. The
app's own ``templates/swagger_ui.html`` replaces flask-smorest's template,
whose inline script a strict Content-Security-Policy would block.

Every response of the app carries ``BROWSER_HEADERS``: the pages need them, and
for the API's JSON they cost nothing and keep a browser from running or
framing anything it is sent.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Flask, Response, redirect, send_from_directory, url_for
from werkzeug.wrappers import Response as BaseResponse

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
BROWSER_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HERE = Path(__file__).resolve().parent
#: Where Swagger UI's assets are served (flask-smorest's ``OPENAPI_SWAGGER_UI_URL``).
SWAGGER_UI_ASSETS = "/v1/swagger-ui-assets/"
#: Endpoints a browser may fetch without keys (``keyledger.web.auth.PUBLIC_ENDPOINTS``).
PUBLIC_ENDPOINTS = frozenset(
    {"console.page", "console.to_page", "console.static", "swagger_ui_assets.static"}
)

console_bp = Blueprint("console", __name__, url_prefix="/console", static_folder="static")
swagger_assets_bp = Blueprint(
    "swagger_ui_assets",
    __name__,
    static_folder=str(files("flask_swagger_ui") / "dist"),
    static_url_path=SWAGGER_UI_ASSETS.rstrip("/"),
)


@console_bp.get("/")
def page() -> Response:
    """The console's one page; everything else it shows comes from the API."""
    return send_from_directory(HERE, "index.html", max_age=0)


@console_bp.get("")
def to_page() -> BaseResponse:
    return redirect(url_for("console.page"), code=308)


def harden(response: Response) -> Response:
    for name, value in BROWSER_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install(app: Flask) -> None:
    app.register_blueprint(console_bp)
    app.register_blueprint(swagger_assets_bp)
    app.after_request(harden)
