"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against
this module's gunicorn and projector.

The owner's journey runs in order in one signed-in page (each test one step of it): sign
in, add a user, refusals shown as messages, add a key and copy its secret once, use it
against the API, restrict it to a subnet (the API then answers 403), delete it, read the
system log (each change under the signing-in key's name), page it, download it as CSV, and
verify the history. Other tests sign in afresh: a Viewer, a Logs Viewer, a wrong key, a 403
and a 429 from the API. Every page must load nothing from another host, log no console
error, violate no Content-Security-Policy directive, and pass axe-core (no serious or
critical WCAG 2 A/AA violation) on every view. A failing test saves a screenshot of each
view under build/test-output/console/.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from playwright.sync_api import Browser, expect, sync_playwright

from keyledger.web.console import CONTENT_SECURITY_POLICY
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAILURE_SHOTS,
    Watch,
    axe_serious,
    csp_violations,
    shoot_views,
)
from tests.e2e.console_page import Console
from tests.e2e.harness import MINTED, Stack, Tenant, WebServer, forge, unique_key_name

pytestmark = pytest.mark.e2e

#: Generous: the machine is shared with other test runs; nothing here measures speed.
expect.set_options(timeout=20_000)

OPEN: list[Console] = []


@dataclass
class Journey:
    """What the owner's journey made, for its later steps to check."""

    user_name: str = "Vera Viewer"
    user_email: str = field(default_factory=lambda: f"vera-{uuid.uuid4().hex[:8]}@example.com")
    user_id: str = ""
    key_name: str = field(default_factory=lambda: unique_key_name("vera"))
    secret: str = ""
    cidr: str = "10.9.8.0/24"


JOURNEY = Journey()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module; each console gets its own context (a fresh profile)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_console(browser: Browser, url: str) -> Console:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    watch = Watch(url)
    watch.attach(context)
    return Console(context.new_page(), watch, url)


def screenshots_if_failed(console: Console, request: pytest.FixtureRequest) -> None:
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or console.page.is_closed():
        return
    shots = shoot_views(console.page, FAILURE_SHOTS / request.node.name)
    print("screenshots of each view:", *shots, sep="\n  ")


@pytest.fixture(scope="module")
def owner(browser: Browser, web: WebServer) -> Iterator[Console]:
    """The page the owner's journey runs in, one step per test."""
    console = new_console(browser, web.url)
    OPEN.append(console)
    yield console
    console.page.context.close()


@pytest.fixture(autouse=True)
def journey_screenshots(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "owner" in request.fixturenames:
        for console in OPEN:
            screenshots_if_failed(console, request)


@pytest.fixture
def fresh(browser: Browser, web: WebServer, request: pytest.FixtureRequest) -> Iterator[Console]:
    """A console in a new browser context, for one test."""
    console = new_console(browser, web.url)
    yield console
    screenshots_if_failed(console, request)
    console.page.context.close()


def assert_clean(console: Console) -> None:
    """Nothing from another host, no console error, no CSP violation in any page so far."""
    assert console.watch.foreign_requests() == []
    assert console.watch.unexplained_console_errors() == []
    assert csp_violations(console.page) == []


def assert_accessible(console: Console, where: str) -> None:
    assert axe_serious(console.page) == [], where


def option_for(user: dict[str, str]) -> str:
    return f"{user['name']} ({user['role']}, {user['email']})"


# -- the owner's journey ---------------------------------------------------------------------
def test_the_owner_signs_in_with_the_two_keys(owner: Console, tenant: Tenant) -> None:
    response = owner.page.goto(f"{owner.url}/console/")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert_accessible(owner, "sign-in form")

    owner.submit_keys(tenant.account_key, tenant.secret_key)

    expect(owner.page.locator("#whoami")).to_contain_text(
        f"{tenant.owner_name} (Owner) with key {tenant.key_name}"
    )
    expect(owner.key_row(tenant.key_name)).to_be_visible()
    assert owner.visible_tabs() == ["API keys", "Users", "System log", "History"]
    assert tenant.secret_key not in owner.page.url and tenant.account_key not in owner.page.url
    assert owner.stored_anywhere() == {"local": 0, "session": 0, "cookie": "", "cookies": []}
    assert not owner.holds(tenant.secret_key) and not owner.holds(tenant.account_key)


def test_every_request_carries_the_two_key_headers_and_nothing_else_identifies_it(
    owner: Console, tenant: Tenant
) -> None:
    with owner.page.expect_request(lambda r: r.url.endswith("/v1/users")) as seen:
        owner.tab("Users")
    headers = seen.value.all_headers()
    assert headers["x-api-key"] == tenant.account_key
    assert headers["x-api-secret-key"] == tenant.secret_key
    assert "cookie" not in headers and "referer" not in headers


def test_the_console_works_from_the_keyboard(owner: Console) -> None:
    page = owner.page
    page.get_by_role("tab", name="Users").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="API keys")).to_be_focused()
    expect(page.get_by_role("tab", name="API keys")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="History")).to_be_focused()
    page.keyboard.press("Home")
    expect(page.get_by_role("tabpanel", name="API keys")).to_be_visible()

    add_key = page.get_by_role("button", name="Add key")
    add_key.focus()
    page.keyboard.press("Enter")
    dialog = owner.dialog("Add key")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Key name")).to_be_focused()
    assert_accessible(owner, "Add key dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(add_key).to_be_focused()


def test_the_owner_adds_a_user(owner: Console, tenant: Tenant) -> None:
    j = JOURNEY
    dialog = owner.add_user(j.user_name, j.user_email, "Logs Viewer")

    expect(dialog).to_be_hidden()
    expect(owner.page.locator("#users-table")).to_contain_text(j.user_email)
    added = [u for u in tenant.owner.users() if u["email"] == j.user_email]
    assert [u["role"] for u in added] == ["Logs Viewer"]
    j.user_id = added[0]["id"]


def test_a_taken_email_is_refused_in_the_dialog(owner: Console) -> None:
    dialog = owner.add_user("Someone Else", JOURNEY.user_email.upper(), "Viewer")

    expect(dialog.get_by_role("alert").first).to_contain_text("Refused (409)")
    expect(dialog).to_be_visible()
    assert_accessible(owner, "Add user dialog with a refusal")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def test_the_owner_changes_a_role(owner: Console, tenant: Tenant) -> None:
    panel = owner.tab("Users")
    panel.get_by_label(f"Role of {JOURNEY.user_name}").select_option("Viewer")
    panel.get_by_role("button", name=f"Change role of {JOURNEY.user_name}").click()

    expect(panel.get_by_role("status")).to_have_text(f"{JOURNEY.user_name} is now Viewer.")
    assert tenant.owner.user(JOURNEY.user_id)["role"] == "Viewer"


def test_the_last_owner_cannot_be_demoted_and_the_row_says_why(
    owner: Console, tenant: Tenant
) -> None:
    panel = owner.tab("Users")
    panel.get_by_label(f"Role of {tenant.owner_name}").select_option("Viewer")
    panel.get_by_role("button", name=f"Change role of {tenant.owner_name}").click()

    row = owner.page.locator(f'#users-table tr[data-user="{tenant.owner_user_id}"]')
    expect(row.get_by_role("alert")).to_contain_text("Refused (409)")
    expect(row.get_by_role("alert")).to_contain_text("Owner")
    assert tenant.owner.user(tenant.owner_user_id)["role"] == "Owner"


def test_the_add_key_form_shows_the_api_validation_message_beside_the_field(
    owner: Console, tenant: Tenant
) -> None:
    dialog = owner.start_key("short", f"{tenant.owner_name} (Owner, {tenant.owner_email})")

    name_field = dialog.get_by_label("Key name")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#key-name-error")).to_contain_text("10-50 characters")
    expect(dialog.get_by_role("alert").first).to_contain_text("The request was refused")
    assert_accessible(owner, "Add key dialog with a validation error")
    dialog.get_by_role("button", name="Cancel").click()
    assert all(k["name"] != "short" for k in tenant.owner.api_keys())


def test_the_owner_adds_a_key_and_copies_its_secret_once(owner: Console, tenant: Tenant) -> None:
    j = JOURNEY
    user = tenant.owner.user(j.user_id)
    owner.start_key(j.key_name, option_for(user))

    secret_dialog = owner.dialog("Secret key created")
    expect(secret_dialog).to_be_visible()
    expect(secret_dialog).to_contain_text(j.key_name)
    done = secret_dialog.get_by_role("button", name="Done")
    expect(done).to_be_disabled()
    owner.page.keyboard.press("Escape")
    owner.page.keyboard.press("Escape")
    expect(secret_dialog).to_be_visible()  # neither Escape dismisses it before the copy
    assert_accessible(owner, "secret dialog")

    j.secret = owner.copy_secret()

    assert j.secret.startswith("klsk_") and len(j.secret) == 70
    assert not owner.holds(j.secret)  # cleared from the page when the dialog closed
    expect(owner.page.get_by_role("button", name="Add key")).to_be_focused()
    expect(owner.key_row(j.key_name)).to_contain_text(j.user_name)
    expect(owner.key_row(j.key_name)).to_contain_text("any source")
    assert tenant.client(j.secret).whoami()["account"]["key"]["name"] == j.key_name


def test_the_secret_dialog_can_be_closed_once_the_user_confirms_saving_it(
    owner: Console, tenant: Tenant
) -> None:
    name = unique_key_name("saved")
    owner.start_key(name, f"{tenant.owner_name} (Owner, {tenant.owner_email})")
    dialog = owner.dialog("Secret key created")
    expect(dialog).to_be_visible()
    secret = MINTED.secret(dialog.get_by_label("New secret key").input_value())
    assert secret

    dialog.get_by_label("I have saved the secret key").check()
    dialog.get_by_role("button", name="Done").click()

    expect(dialog).to_be_hidden()
    assert not owner.holds(secret)
    tenant.owner.delete_key(name)


def test_restricting_the_key_to_a_subnet_makes_the_api_answer_403(
    owner: Console, tenant: Tenant
) -> None:
    j = JOURNEY
    owner.tab("API keys")
    dialog = owner.open_subnets(j.key_name)
    expect(dialog).to_contain_text("any address")

    owner.add_subnet(dialog, j.cidr)

    expect(dialog.get_by_role("listitem")).to_have_text([f"{j.cidr}Remove {j.cidr}"])
    expect(owner.key_row(j.key_name)).to_contain_text(j.cidr)
    assert tenant.client(j.secret).get("/v1/").status_code == 403
    assert_accessible(owner, "subnets dialog")


def test_a_bad_subnet_shows_the_api_message_inline(owner: Console, tenant: Tenant) -> None:
    bad = "10.9.8.1/24"
    path = f"/v1/api-keys/{JOURNEY.key_name}/allowed-source-ips"
    api_says = tenant.owner.post(path, json={"cidr": bad}, expect=400).json()["error"]
    dialog = owner.dialog(f"Allowed subnets of {JOURNEY.key_name}")

    owner.add_subnet(dialog, bad)

    expect(dialog.get_by_label("Subnet (CIDR)")).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#subnet-cidr-error")).to_have_text(api_says["fields"]["cidr"][0])
    assert tenant.owner.api_key(JOURNEY.key_name)["allowedSourceIps"] == [JOURNEY.cidr]


def test_removing_the_subnet_opens_the_key_to_any_source_again(
    owner: Console, tenant: Tenant
) -> None:
    j = JOURNEY
    dialog = owner.dialog(f"Allowed subnets of {j.key_name}")
    dialog.get_by_role("button", name=f"Remove {j.cidr}").click()

    expect(dialog).to_contain_text("accepted from any address")
    assert tenant.client(j.secret).get("/v1/").status_code == 200
    owner.add_subnet(dialog, j.cidr)  # and restricted again for the rest of the journey
    expect(dialog.get_by_role("listitem")).to_have_count(1)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(owner.page.get_by_role("button", name=f"Subnets of {j.key_name}")).to_be_focused()
    assert tenant.client(j.secret).get("/v1/").status_code == 403


def test_deleting_a_key_asks_for_a_confirmation_naming_it(owner: Console, tenant: Tenant) -> None:
    j = JOURNEY
    title = f"Delete API key {j.key_name}?"
    owner.page.get_by_role("button", name=f"Delete {j.key_name}").click()
    dialog = owner.dialog(title)
    expect(dialog).to_contain_text(f"Requests with the key {j.key_name} fail")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    assert_accessible(owner, "delete confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    expect(owner.key_row(j.key_name)).to_be_visible()

    owner.page.get_by_role("button", name=f"Delete {j.key_name}").click()
    owner.confirm(title, f"Delete {j.key_name}")

    expect(dialog).to_be_hidden()
    expect(owner.key_row(j.key_name)).to_have_count(0)
    assert tenant.client(j.secret).get("/v1/").status_code == 401


def test_the_system_log_shows_each_change_under_the_signing_in_key(
    owner: Console, tenant: Tenant
) -> None:
    j = JOURNEY
    owner.tab("System log")
    rows = owner.rows("logs-table")
    by_key = [row for row in rows if row[2] == tenant.key_name]
    q = json.dumps  # the system log quotes every value a user supplied as a JSON string
    expected = [
        (
            j.user_id,
            "create",
            f"User {q(j.user_name)} with email {q(j.user_email)} added with role Logs Viewer",
        ),
        (j.user_id, "update", f"Role of user {q(j.user_name)} changed from Logs Viewer to Viewer"),
        (j.key_name, "create", f"API key {q(j.key_name)} created for user {q(j.user_name)}"),
        (j.key_name, "update", f"Source subnet {q(j.cidr)} allowed for API key {q(j.key_name)}"),
        (j.key_name, "update", f"Source subnet {q(j.cidr)} removed from API key {q(j.key_name)}"),
        (j.key_name, "delete", f"API key {q(j.key_name)} of user {q(j.user_name)} deleted"),
    ]
    for resource_id, kind, says in expected:
        assert any(
            row[4] == resource_id and row[5] == kind and row[6].startswith(says) for row in by_key
        ), (resource_id, kind, says, rows)
    assert all(row[1] == tenant.owner_name for row in by_key)
    times = [row[0] for row in rows]
    assert times == sorted(times, reverse=True)  # newest first


def test_the_system_log_filters_by_resource_and_time(owner: Console) -> None:
    panel = owner.tab("System log")
    panel.get_by_label("Resource id").fill(JOURNEY.key_name)
    panel.get_by_role("button", name="Apply filter").click()
    expect(panel.get_by_role("status")).to_contain_text("Entries 1 to 5")
    assert {row[4] for row in owner.rows("logs-table")} == {JOURNEY.key_name}

    panel.get_by_label("From (UTC)").fill("2999-01-01T00:00:00")
    panel.get_by_role("button", name="Apply filter").click()
    expect(panel.get_by_role("status")).to_have_text("No entries match.")

    panel.get_by_label("From (UTC)").fill("1960-01-01T00:00:00")
    panel.get_by_role("button", name="Apply filter").click()
    expect(panel.locator("#logs-start-error")).to_contain_text("greater than or equal to 1970")
    expect(panel.get_by_role("alert")).to_contain_text("The request was refused")
    expect(panel.get_by_label("From (UTC)")).to_have_attribute("aria-invalid", "true")

    panel.get_by_role("button", name="Clear filter").click()
    expect(panel.get_by_label("Resource id")).to_have_value("")
    expect(panel.locator("#logs-error")).to_be_empty()
    assert_accessible(owner, "system log with a filter error cleared")


def test_the_system_log_pages(owner: Console, tenant: Tenant) -> None:
    spare = unique_key_name("pages")
    tenant.owner.create_key(spare, tenant.owner_user_id)
    for n in range(12):  # 1 + 24 more entries: over one page of 25
        tenant.owner.allow_subnet(spare, f"10.1.{n}.0/24")
        tenant.owner.remove_subnet(spare, f"10.1.{n}.0/24")
    panel = owner.tab("System log")
    panel.get_by_label("Entries per page").select_option("25")
    panel.get_by_role("button", name="Apply filter").click()
    expect(panel.get_by_role("status")).to_have_text("Entries 1 to 25, newest first.")
    newest = owner.rows("logs-table")[0]

    panel.get_by_role("button", name="Older entries").click()
    expect(panel.get_by_role("status")).to_contain_text("Entries 26 to")
    assert newest not in owner.rows("logs-table")
    panel.get_by_role("button", name="Newer entries").click()
    expect(panel.get_by_role("status")).to_have_text("Entries 1 to 25, newest first.")
    assert owner.rows("logs-table")[0] == newest
    expect(panel.get_by_role("button", name="Newer entries")).to_be_disabled()


def test_download_csv_saves_every_entry_of_the_filter(owner: Console, tenant: Tenant) -> None:
    panel = owner.tab("System log")
    with owner.page.expect_download() as downloading:
        panel.get_by_role("button", name="Download CSV").click()
    download = downloading.value

    assert download.suggested_filename == f"keyledger-system-log-{tenant.account_id}.csv"
    text = download.path().read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "id", "time", "originator", "apiKeyName", "resource", "resourceId", "type", "description"
    ]  # fmt: skip
    every = tenant.owner.logs(limit=1000)["entries"]
    assert [int(row["id"]) for row in rows] == [entry["id"] for entry in every]
    deleted = [r for r in rows if r["resourceId"] == JOURNEY.key_name and r["type"] == "delete"]
    assert [r["apiKeyName"] for r in deleted] == [tenant.key_name]
    expect(panel.get_by_role("status")).to_have_text(f"Downloaded {download.suggested_filename}.")


def test_the_history_names_each_actor_and_verifies(owner: Console, tenant: Tenant) -> None:
    panel = owner.tab("History")
    events = tenant.owner.all_events()
    rows = owner.rows("history-table")
    assert [int(row[0]) for row in rows] == [e["version"] for e in events[: len(rows)]]
    by_console = [e for e in events[: len(rows)] if e["actor"].get("apiKeyName") == tenant.key_name]
    assert by_console, "no event of the journey on the first page"
    for event in by_console:
        row = rows[event["version"] - 1]
        actor = event["actor"]
        assert f"user {tenant.owner_name}" in row[3]
        assert f"key {tenant.key_name}" in row[3]
        assert f"from {actor['sourceIp']}" in row[3]
        assert f"request {actor['requestId']}" in row[3]
        assert row[2] == event["type"]

    panel.get_by_role("button", name="Verify").click()

    report = tenant.owner.get("/v1/audit/verify", expect=200).json()
    assert report["ok"] is True
    expect(panel.locator("#history-verdict")).to_have_text(
        f"Verified: the hash chain of all {report['events']} events is intact, and the log "
        f"holds the same {report['logEntries']} entries."
    )


def test_every_view_of_the_owner_passes_axe(owner: Console) -> None:
    for tab in owner.visible_tabs():
        owner.tab(tab)
        assert_accessible(owner, tab)


def test_the_owners_pages_loaded_nothing_else_and_logged_no_error(owner: Console) -> None:
    assert_clean(owner)
    assert len(owner.watch.api_statuses) > 30  # the journey went through the API


def test_signing_out_forgets_the_keys_and_what_was_shown(owner: Console, tenant: Tenant) -> None:
    sent = len(owner.watch.requests)
    owner.sign_out()

    assert not owner.holds(tenant.secret_key) and not owner.holds(tenant.account_key)
    assert not owner.holds(tenant.key_name) and not owner.holds(JOURNEY.user_email)
    refused = owner.page.evaluate(
        """() => import("/console/static/js/api.js").then(
             (api) => api.request("GET", "/v1/").then(() => "sent", (e) => e.status))"""
    )
    assert refused == 401  # no keys left to send
    assert [u for u in owner.watch.requests[sent:] if "/v1/" in u] == []
    expect(owner.page.get_by_label("Account key", exact=True)).to_be_focused()
    expect(owner.page.get_by_role("status")).to_contain_text("forgotten your keys")


# -- other people, other outcomes -------------------------------------------------------------
def test_a_wrong_key_gets_a_clear_message(fresh: Console, tenant: Tenant) -> None:
    fresh.open()
    fresh.submit_keys(tenant.account_key, forge("klsk"))

    expect(fresh.sign_in_error).to_contain_text("Sign-in failed: the account key or the secret")
    expect(fresh.page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(fresh.page.locator("#console-view")).to_be_hidden()
    assert_accessible(fresh, "sign-in with an error")
    assert ("GET", "/v1/", 401) in fresh.watch.api_statuses
    assert_clean(fresh)


def test_empty_fields_are_named_before_any_request(fresh: Console) -> None:
    fresh.open()
    fresh.page.get_by_role("button", name="Sign in").click()

    expect(fresh.sign_in_error).to_have_text("Enter both the account key and the secret key.")
    expect(fresh.page.get_by_label("Account key", exact=True)).to_be_focused()
    assert fresh.watch.api_statuses == []


def test_a_viewer_sees_everything_but_no_write_control(fresh: Console, tenant: Tenant) -> None:
    viewer = tenant.owner.add_user("Vik Viewer", role="Viewer")
    secret = tenant.owner.create_key(unique_key_name("vik"), viewer["id"])["secretKey"]

    fresh.sign_in(tenant.account_key, secret)

    assert fresh.visible_tabs() == ["API keys", "Users", "System log"]
    for tab in fresh.visible_tabs():
        panel = fresh.tab(tab)
        assert_accessible(fresh, f"Viewer: {tab}")
        if tab != "System log":
            expect(panel.locator("tbody tr").first).to_be_visible()
            expect(panel.locator("tbody button, tbody select")).to_have_count(0)
            expect(panel.get_by_role("columnheader", name="Actions")).to_have_count(0)
    expect(fresh.page.get_by_role("button", name="Add key")).to_be_hidden()
    expect(fresh.page.get_by_role("button", name="Add user")).to_be_hidden()
    assert_clean(fresh)


def test_a_logs_viewer_sees_only_the_system_log_and_the_history(
    fresh: Console, tenant: Tenant
) -> None:
    auditor = tenant.owner.add_user("Lou Logs", role="Logs Viewer")
    secret = tenant.owner.create_key(unique_key_name("lou"), auditor["id"])["secretKey"]

    fresh.sign_in(tenant.account_key, secret)

    expect(fresh.page.locator("#whoami")).to_have_text("Signed in with a Logs Viewer key")
    assert fresh.visible_tabs() == ["System log", "History"]
    expect(fresh.page.get_by_role("tabpanel", name="System log")).to_be_visible()
    assert_accessible(fresh, "Logs Viewer: System log")
    panel = fresh.tab("History")
    panel.get_by_role("button", name="Verify").click()
    expect(panel.locator("#history-verdict")).to_contain_text("Verified: the hash chain")
    assert_accessible(fresh, "Logs Viewer: History")
    assert ("GET", "/v1/", 403) in fresh.watch.api_statuses  # how the console found the role
    assert_clean(fresh)


def test_a_403_from_the_api_is_shown_as_a_message(fresh: Console, tenant: Tenant) -> None:
    second = tenant.owner.add_user("Olga Owner", role="Owner")
    secret = tenant.owner.create_key(unique_key_name("olga"), second["id"])["secretKey"]
    fresh.sign_in(tenant.account_key, secret)
    tenant.owner.update_user(second["id"], role="Viewer")  # demoted behind the console's back

    dialog = fresh.add_user("Too Late", f"late-{uuid.uuid4().hex[:6]}@example.com", "Viewer")

    expect(dialog.get_by_role("alert").first).to_contain_text("Not allowed (403)")
    assert all(u["name"] != "Too Late" for u in tenant.owner.users())
    assert_clean(fresh)


def test_a_429_says_how_long_to_wait(browser: Browser, stack: Stack, tenant: Tenant) -> None:
    limited = stack.start_web("web-limited", KEYLEDGER_RATE_LIMIT_PER_MINUTE="6")
    console = new_console(browser, limited.url)
    try:
        console.sign_in(tenant.account_key, tenant.secret_key)
        said = ""
        for _ in range(10):  # 6 a minute: a 429 comes within 14 calls, windows or not
            for tab, alert in (("Users", "#users-error"), ("System log", "#logs-error")):
                console.tab(tab)  # waits until the tab has its answer
                said = console.page.locator(alert).inner_text()
                if "429" in said:
                    break
            if "429" in said:
                break
        assert "429" in said, console.watch.api_statuses
        assert re.fullmatch(
            r"Too many requests \(429\): wait \d+ seconds? and try again\. .*", said
        )
        assert_clean(console)
    finally:
        console.page.context.close()
        limited.stop()


def test_each_refusal_is_described_in_words(fresh: Console) -> None:
    fresh.open()
    said = fresh.page.evaluate(
        """() => import("/console/static/js/api.js").then((api) => ({
            400: api.describe(400, {description: "x", fields: {cidr: ["not a network"]}}),
            401: api.describe(401), 403: api.describe(403),
            409: api.describe(409, {description: "the last Owner cannot be removed"}),
            429: api.describe(429, {}, 7), 503: api.describe(503), 0: api.describe(0),
            500: api.describe(500, {description: "internal error"}, null, "rid-1"),
        }))"""
    )
    assert said["400"] == "The request was refused. cidr: not a network"
    assert said["401"].startswith("The keys were not accepted (401)")
    assert said["403"].startswith("Not allowed (403)")
    assert said["409"] == "Refused (409): the last Owner cannot be removed"
    assert said["429"] == "Too many requests (429): wait 7 seconds and try again."
    assert said["503"].startswith("The service is unavailable (503)")
    assert said["0"].startswith("The keyledger service could not be reached")
    assert "rid-1" in said["500"]


def test_swagger_ui_renders_from_local_files_under_the_same_policy(fresh: Console) -> None:
    response = fresh.page.goto(f"{fresh.url}/v1/swagger-ui")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"

    expect(fresh.page.locator(".opblock").first).to_be_visible()
    assert fresh.page.locator(".opblock").count() >= 15
    expect(fresh.page.get_by_text("/v1/audit/verify", exact=True)).to_be_visible()
    assert_clean(fresh)


def test_no_file_of_the_console_is_fetched_from_elsewhere(web: WebServer) -> None:
    """The page's own references, read from the HTML a browser gets."""
    page = requests.get(f"{web.url}/console/", timeout=10).text
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references and all(not re.match(r"^[a-z]+:", ref) for ref in references), references
