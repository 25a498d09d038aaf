"""Debian's headless Chromium driven by Playwright, and what the console tests watch in it.

Playwright (pinned in pyproject.toml) launches ``/usr/bin/chromium`` through
``executable_path``; ``playwright install`` is never run (it cannot download
here). ``make test`` installs Chromium (Debian package) and axe-core (npm, into
``build/npm``). A ``Watch`` records, for one browser context, every request,
every console message and uncaught error, every Content-Security-Policy
violation, and the API's responses, which join the session's record for the
secret scan of ``test_zz_no_secret_anywhere``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response

from tests.e2e.harness import MINTED, ROOT

CHROMIUM = "/usr/bin/chromium"
#: Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
AXE = ROOT / "build" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
#: Screenshots of each view of a failed test land here (also printed in the report).
FAILURE_SHOTS = ROOT / "build" / "test-output" / "console"
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""


def axe_source() -> str:
    if not AXE.is_file():
        raise AssertionError(f"{AXE} is missing: run `make browser-deps` (or `make test`)")
    return AXE.read_text()


@dataclass
class Watch:
    """What one browser context did: requests, console errors, API responses."""

    origin: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    #: (method, path, status) of every API response
    api_statuses: list[tuple[str, str, int]] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.add_init_script(CSP_RECORDER)
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("page", self._page)

    def _page(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def _response(self, response: Response) -> None:
        url = urlsplit(response.url)
        if not url.path.startswith("/v1/") or url.path == "/v1/openapi.json":
            return
        method = response.request.method
        self.api_statuses.append((method, url.path, response.status))
        with contextlib.suppress(Exception):  # a body the browser did not keep
            if "json" in (response.headers.get("content-type") or ""):
                MINTED.responses.append(
                    (f"{method} {response.url}", response.status, response.text())
                )

    # -- what the tests assert ---------------------------------------------------------------
    def foreign_requests(self) -> list[str]:
        """Requests to anything but the keyledger under test (data: URLs are in the page)."""
        ours = urlsplit(self.origin).netloc
        return [
            url
            for url in self.requests
            if not url.startswith(("data:", "blob:")) and urlsplit(url).netloc != ours
        ]

    def unexplained_console_errors(self) -> list[str]:
        """Console errors other than Chromium's note of an API refusal the page showed.

        Chromium logs "Failed to load resource" for every 4xx a fetch receives; an API
        refusal is part of the console's journey (it is shown as a message), so those
        are expected only for API paths that did answer with that 4xx.
        """
        refused = {path for _method, path, status in self.api_statuses if 400 <= status < 500}
        unexplained = []
        for text, url in self.console_errors:
            path = urlsplit(url).path
            if text.startswith("Failed to load resource") and path in refused:
                continue
            unexplained.append(f"{text} ({url})")
        return unexplained + [f"uncaught: {error}" for error in self.page_errors]


def csp_violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__cspViolations || []"))


def axe_serious(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of WCAG 2 A and AA on the page as it is."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
          });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
          }));
        }"""
    )
    return [v for v in violations if v["impact"] in {"serious", "critical"}]


def shoot_views(page: Page, where: Path) -> list[Path]:
    """A screenshot of the page as it is, then of each tab it offers (after a failure)."""
    where.mkdir(parents=True, exist_ok=True)
    shots = []
    with contextlib.suppress(Exception):
        path = where / "00-as-failed.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)
    with contextlib.suppress(Exception):
        page.evaluate("document.querySelectorAll('dialog[open]').forEach((d) => d.close())")
    tabs = page.get_by_role("tab")
    with contextlib.suppress(Exception):
        for index in range(tabs.count()):
            tab = tabs.nth(index)
            if not tab.is_visible():
                continue
            name = tab.inner_text().strip().replace(" ", "-").lower()
            tab.click(timeout=2000)
            page.wait_for_timeout(300)
            path = where / f"{index + 1:02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            shots.append(path)
    return shots
