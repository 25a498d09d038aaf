"""The console's page and files, Swagger UI's page and files and their security headers,
in process against a real Redis.

The browser itself is driven in ``tests/e2e/test_console.py``; these check what any
browser is sent.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from keyledger.web.auth import PUBLIC_ENDPOINTS
from keyledger.web.console import BROWSER_HEADERS, CONTENT_SECURITY_POLICY, HERE
from tests.integration.helpers import Bootstrapped

STATIC = HERE / "static"
CONSOLE_FILES = sorted(p.relative_to(STATIC) for p in STATIC.rglob("*") if p.is_file())
PAGES = ["/console/", "/v1/swagger-ui"]


def keys(b: Bootstrapped, secret: str | None = None) -> dict[str, str]:
    return {"x-api-key": b.account_key, "x-api-secret-key": secret or b.secret_key}


class Markup(HTMLParser):
    """What a page's HTML asks the browser to run, load or style."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_elements = 0
        self.inline_attributes: list[str] = []
        self.references: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in named
        if tag == "style":
            self.style_elements += 1
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline_attributes.append(f"<{tag} {name}>")
            if name in {"src", "href", "action", "formaction"} and value is not None:
                self.references.append(value)

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def markup_of(html: str) -> Markup:
    parser = Markup()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_public_and_sent_with_the_strict_policy(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_the_policy_is_exactly_the_one_the_issue_states() -> None:
    assert CONTENT_SECURITY_POLICY == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


@pytest.mark.parametrize("path", PAGES)
def test_no_page_has_inline_script_or_style(client: FlaskClient, path: str) -> None:
    markup = markup_of(client.get(path).get_data(as_text=True))
    assert markup.inline_scripts == 0
    assert markup.style_elements == 0
    assert markup.inline_attributes == []


@pytest.mark.parametrize("path", PAGES)
def test_every_file_a_page_references_is_served_here(client: FlaskClient, path: str) -> None:
    markup = markup_of(client.get(path).get_data(as_text=True))
    assert markup.references
    for reference in markup.references:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", reference), reference  # no other host
        url = reference if reference.startswith("/") else f"/console/{reference}"
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name", [str(p) for p in CONSOLE_FILES])
def test_every_console_file_is_served_with_its_type(client: FlaskClient, name: str) -> None:
    response = client.get(f"/console/static/{name}")
    assert response.status_code == 200
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assert response.mimetype == expected[Path(name).suffix]
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def without_comments(script: str) -> str:
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.S)
    return re.sub(r"^\s*//.*$", "", script, flags=re.M)


@pytest.mark.parametrize("name", [str(p) for p in CONSOLE_FILES if p.suffix == ".js"])
def test_no_script_loads_or_calls_another_host(name: str) -> None:
    text = without_comments((STATIC / name).read_text())
    assert not re.search(r"https?://", text), name
    assert not re.search(r"\b(eval|innerHTML|outerHTML|insertAdjacentHTML)\b", text), name
    assert not re.search(r"\b(localStorage|sessionStorage|document\.cookie)\b", text), name


def test_the_key_fields_have_no_name_so_no_form_can_send_them() -> None:
    page = (HERE / "index.html").read_text()
    for field in ("account-key", "secret-key"):
        tag = re.search(rf'<input id="{field}"[^>]*>', page, re.S)
        assert tag is not None and " name=" not in tag.group(0)
        assert 'type="password"' in tag.group(0) and 'autocomplete="off"' in tag.group(0)


def test_the_console_roots_redirect_and_a_missing_file_is_404(client: FlaskClient) -> None:
    response = client.get("/console")
    assert response.status_code == 308 and response.headers["Location"].endswith("/console/")
    assert client.get("/console/static/js/nothing.js").status_code == 404


def test_only_the_console_and_swagger_files_are_public(client: FlaskClient) -> None:
    assert {"console.page", "console.to_page", "console.static"} <= PUBLIC_ENDPOINTS
    assert client.get("/console/anything-else").status_code == 401
    assert client.get("/v1/users").status_code == 401


def test_api_responses_carry_the_same_headers(client: FlaskClient, owner: Bootstrapped) -> None:
    for response in (client.get("/v1/", headers=keys(owner)), client.get("/v1/users")):
        for name, value in BROWSER_HEADERS.items():
            assert response.headers[name] == value
        assert "Access-Control-Allow-Origin" not in response.headers


def test_no_cors_preflight_is_answered_with_permission(client: FlaskClient) -> None:
    response = client.options(
        "/v1/users",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code in {401, 405}
    assert not any(name.startswith("Access-Control-") for name, _ in response.headers)


def test_swagger_ui_is_set_up_from_a_file_with_the_base_layout(client: FlaskClient) -> None:
    page = client.get("/v1/swagger-ui").get_data(as_text=True)
    assert 'data-spec-url="/v1/openapi.json"' in page
    start = client.get("/console/static/swagger-ui-start.js").get_data(as_text=True)
    assert 'layout: "BaseLayout"' in start and "validatorUrl: null" in start
