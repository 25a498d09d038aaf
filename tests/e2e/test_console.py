"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against
this module's web server (``keyledger serve``) and projector.

The owner's journey runs in order in one signed-in page (each test one step of it): sign
in, add a user, refusals shown as messages, add a key with a description and an expiry and
copy its secret once, use it against the API and see its last use, restrict it to a subnet
(the API then answers 403), rotate it with a grace period (both secrets work) and without
(the previous one stops), disable it (401) and enable it (200), edit its description and
expiry, list the keys unused for some days, delete it, read the system log (each change
under the signing-in key's name), page it, download it as CSV, and verify the history. Other
tests sign in afresh: a Viewer, a Logs Viewer, a wrong key, a secret in its grace period, a
403, a 429 of the rate limit and one of the account's change budget. Every page must load
nothing from another host, log no console error, violate no Content-Security-Policy
directive, and pass axe-core (no serious or critical WCAG 2 A/AA violation) on every view
and dialog. A failing test saves a screenshot of each view under build/test-output/console/.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests
from playwright.sync_api import Browser, expect, sync_playwright

from keyledger.adapters.keyspace import Keyspace
from keyledger.domain.mapper import parse_time
from keyledger.domain.roles import KEY_HOLDER_ROLES, ROLE_NAMES
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
from tests.e2e.client import ApiClient
from tests.e2e.console_page import Console
from tests.e2e.harness import (
    MINTED,
    Stack,
    Tenant,
    WebServer,
    forge,
    key_id_of,
    unique_key_name,
)

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
    here: str = "127.0.0.0/8"  # where the tests' requests come from
    description: str = "Vera's dashboard"
    expires: str = ""  # the expiry given at creation, as the API shows it
    previous_secret: str = ""  # the secret a rotation with a grace period replaced
    grace_ends: str = ""
    unused_key: str = field(default_factory=lambda: unique_key_name("dormant"))


JOURNEY = Journey()
KEY_COLUMNS = [
    "Name",
    "User",
    "Status",
    "Created (UTC)",
    "Last used (UTC)",
    "Expires (UTC)",
    "Allowed subnets",
    "Description",
]
#: Every control an Owner has over a key.
KEY_ACTIONS = ["Subnets", "Edit", "Rotate", "Disable", "Enable", "Delete"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module; each console gets its own context (a fresh profile)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def web(stack: Stack) -> WebServer:
    """The console's server writes last uses every second (default 30), so that the journey
    sees a key's use in the table without waiting half a minute."""
    return stack.start_web("web-console", KEYLEDGER_LAST_USED_FLUSH_SECONDS="1")


def api(web: WebServer, tenant: Tenant, secret: str) -> ApiClient:
    """A client with the account key and ``secret``, through the console's server."""
    return web.client(tenant.account_key, secret)


def in_days(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def shown(moment: datetime | str) -> str:
    """A time as the console shows it (UTC, to the second)."""
    if isinstance(moment, str):
        moment = parse_time(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


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
    expect(owner.page.locator("#keys-expire")).to_be_empty()  # these keys never expire
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
    assert owner.page.locator("#user-role option").all_text_contents() == list(ROLE_NAMES)

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


def test_a_past_expiry_is_refused_beside_its_field(owner: Console, tenant: Tenant) -> None:
    name = unique_key_name("past")
    owner_option = f"{tenant.owner_name} (Owner, {tenant.owner_email})"
    dialog = owner.start_key(name, owner_option, expires="2001-02-03T04:05:06")

    expires = dialog.get_by_label("Expires (UTC, optional)")
    expect(expires).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#key-expires-error")).to_contain_text("must lie in the future")
    expect(dialog.get_by_role("alert").first).to_contain_text(
        "The request was refused. expiresTimestamp: must lie in the future"
    )
    assert_accessible(owner, "Add key dialog with a refused expiry")
    dialog.get_by_role("button", name="Cancel").click()
    assert all(k["name"] != name for k in tenant.owner.api_keys())


def test_the_owner_adds_a_key_and_copies_its_secret_once(
    owner: Console, tenant: Tenant, web: WebServer
) -> None:
    j = JOURNEY
    user = tenant.owner.user(j.user_id)
    expires = in_days(30)
    owner.start_key(
        j.key_name,
        option_for(user),
        description=j.description,
        expires=expires.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    eligible = [option_for(u) for u in tenant.owner.users() if u["role"] in KEY_HOLDER_ROLES]
    options = owner.page.locator("#key-user option").all_text_contents()
    assert options[1:] == eligible and options[0] == "Choose a user"

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
    row = owner.key_row(j.key_name)
    expect(row).to_contain_text(j.user_name)
    expect(row).to_contain_text("any source")
    assert api(web, tenant, j.secret).whoami()["account"]["key"]["name"] == j.key_name
    created = tenant.owner.api_key(j.key_name)
    assert created["description"] == j.description
    assert parse_time(created["expiresTimestamp"]) == expires
    j.expires = created["expiresTimestamp"]
    cells = owner.key_cells(j.key_name)
    assert list(cells) == [*KEY_COLUMNS, "Actions"]
    assert cells["Status"] == "Active"
    assert cells["Last used (UTC)"] == "never"
    assert cells["Created (UTC)"] == shown(created["createdTimestamp"])
    assert cells["Expires (UTC)"] == shown(expires)
    assert cells["Description"] == j.description


def test_the_keys_last_use_shows_its_time_and_source(owner: Console, tenant: Tenant) -> None:
    j = JOURNEY
    row = owner.reload_keys_until(j.key_name, "from 127.0.0.1")

    used = tenant.owner.api_key(j.key_name)
    assert used["lastUsedSourceIp"] == "127.0.0.1"
    expect(row).to_contain_text(shown(used["lastUsedTimestamp"]))


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
    owner.add_subnet(dialog, j.cidr)  # restricted again
    expect(dialog.get_by_role("listitem")).to_have_count(1)
    assert tenant.client(j.secret).get("/v1/").status_code == 403
    owner.add_subnet(dialog, j.here)  # and allowed from here, for the rest of the journey
    expect(dialog.get_by_role("listitem")).to_have_count(2)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(owner.page.get_by_role("button", name=f"Subnets of {j.key_name}")).to_be_focused()
    expect(owner.key_row(j.key_name)).to_contain_text(j.here)
    assert tenant.client(j.secret).get("/v1/").status_code == 200


def test_rotating_with_a_grace_shows_the_new_secret_once_and_both_secrets_work(
    owner: Console, tenant: Tenant, web: WebServer
) -> None:
    j = JOURNEY
    dialog = owner.open_rotate(j.key_name)
    expect(dialog.get_by_label("No grace: it stops at once")).to_be_checked()
    expect(dialog.get_by_label("No grace: it stops at once")).to_be_focused()
    assert_accessible(owner, "rotate dialog")

    dialog.get_by_label("1 hour").check()
    sent = datetime.now(UTC)
    dialog.get_by_role("button", name="Rotate").click()

    secret_dialog = owner.dialog("Secret key rotated")
    expect(secret_dialog).to_be_visible()
    answered = datetime.now(UTC)
    expect(secret_dialog.get_by_role("button", name="Done")).to_be_disabled()
    rotated = tenant.owner.api_key(j.key_name)
    ends = parse_time(rotated["previousSecretExpiresTimestamp"])
    assert sent + timedelta(hours=1) - timedelta(seconds=1) <= ends
    assert ends <= answered + timedelta(hours=1)
    expect(secret_dialog).to_contain_text(
        f"The previous secret keeps working until {shown(ends)} UTC."
    )
    assert_accessible(owner, "secret dialog after a rotation")

    new = owner.copy_secret("Secret key rotated")

    assert new.startswith("klsk_") and new != j.secret
    assert not owner.holds(new)
    expect(owner.key_action("Rotate", j.key_name)).to_be_focused()
    cells = owner.key_cells(j.key_name)
    assert cells["Status"] == f"Active\nprevious secret until {shown(ends)}"
    assert j.here in cells["Allowed subnets"] and cells["Description"] == j.description
    assert api(web, tenant, j.secret).get("/v1/").status_code == 200  # the old one, in its grace
    assert api(web, tenant, new).get("/v1/").status_code == 200
    j.previous_secret, j.secret, j.grace_ends = (
        j.secret,
        new,
        rotated["previousSecretExpiresTimestamp"],
    )


def test_a_grace_over_seven_days_is_refused_beside_the_custom_field(
    owner: Console, tenant: Tenant
) -> None:
    j = JOURNEY
    dialog = owner.open_rotate(j.key_name)
    dialog.get_by_label("Custom", exact=True).check()
    dialog.get_by_role("button", name="Rotate").click()
    custom = dialog.get_by_label("Custom grace period", exact=True)
    expect(custom).to_have_attribute("aria-invalid", "true")  # empty: asked before any request
    expect(custom).to_be_focused()

    custom.fill("8")
    dialog.get_by_label("Unit of the custom grace period").select_option("days")
    dialog.get_by_role("button", name="Rotate").click()

    expect(dialog.get_by_role("alert").first).to_contain_text(
        "The request was refused. gracePeriodSeconds:"
    )
    expect(dialog.locator("#rotate-grace-error")).to_contain_text("604800")
    expect(custom).to_have_attribute("aria-invalid", "true")
    assert_accessible(owner, "rotate dialog with a refused grace period")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert tenant.owner.api_key(j.key_name)["previousSecretExpiresTimestamp"] == j.grace_ends


def test_signing_in_with_a_secret_in_its_grace_says_when_it_stops(
    fresh: Console, tenant: Tenant
) -> None:
    fresh.sign_in(tenant.account_key, JOURNEY.previous_secret)

    expect(fresh.page.locator("#keys-expire")).to_have_text(
        f"These keys stop working at {shown(JOURNEY.grace_ends)} UTC."
    )
    assert_accessible(fresh, "banner with the keys' end")
    assert_clean(fresh)


def test_rotating_without_a_grace_stops_the_previous_secret_at_once(
    owner: Console, tenant: Tenant, web: WebServer
) -> None:
    j = JOURNEY
    dialog = owner.open_rotate(j.key_name)
    dialog.get_by_role("button", name="Rotate").click()  # "No grace" is the default

    expect(owner.dialog("Secret key rotated")).to_contain_text(
        "The previous secret stopped working at once."
    )
    newest = owner.copy_secret("Secret key rotated")

    assert "previous secret" not in owner.key_cells(j.key_name)["Status"]
    assert api(web, tenant, newest).get("/v1/").status_code == 200
    assert api(web, tenant, j.secret).get("/v1/").status_code == 401
    assert api(web, tenant, j.previous_secret).get("/v1/").status_code == 401  # grace ended
    j.secret = newest


def test_disabling_the_key_refuses_it_and_enabling_restores_it(
    owner: Console, tenant: Tenant, web: WebServer
) -> None:
    j = JOURNEY
    owner.key_action("Disable", j.key_name).click()

    expect(owner.page.locator("#keys-status")).to_have_text(f"Key {j.key_name} disabled.")
    assert owner.key_cells(j.key_name)["Status"] == "Disabled"
    expect(owner.key_action("Enable", j.key_name)).to_be_focused()
    expect(owner.key_action("Disable", j.key_name)).to_have_count(0)
    assert api(web, tenant, j.secret).get("/v1/").status_code == 401

    owner.key_action("Enable", j.key_name).click()

    expect(owner.page.locator("#keys-status")).to_have_text(f"Key {j.key_name} enabled.")
    assert owner.key_cells(j.key_name)["Status"] == "Active"
    expect(owner.key_action("Disable", j.key_name)).to_be_focused()
    assert api(web, tenant, j.secret).get("/v1/").status_code == 200


def test_editing_a_key_changes_its_description_and_removes_its_expiry(
    owner: Console, tenant: Tenant
) -> None:
    j = JOURNEY
    dialog = owner.open_edit(j.key_name)
    description = dialog.get_by_label("Description")
    expires = dialog.get_by_label("Expires (UTC)")
    expect(description).to_have_value(j.description)
    expect(description).to_be_focused()
    assert parse_time(expires.input_value() + "Z") == parse_time(j.expires)
    assert_accessible(owner, "edit dialog")

    expires.fill("2001-02-03T04:05:06")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#edit-expires-error")).to_contain_text("must lie in the future")
    expect(expires).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_role("alert").first).to_contain_text("expiresTimestamp")
    assert_accessible(owner, "edit dialog with a refused expiry")
    assert tenant.owner.api_key(j.key_name)["expiresTimestamp"] == j.expires

    j.description = "Vera's dashboard, read-only"
    description.fill(j.description)
    expires.fill("")
    dialog.get_by_role("button", name="Save").click()

    expect(dialog).to_be_hidden()
    expect(owner.key_action("Edit", j.key_name)).to_be_focused()
    expect(owner.page.locator("#keys-status")).to_have_text(f"Key {j.key_name} saved.")
    cells = owner.key_cells(j.key_name)
    assert cells["Expires (UTC)"] == "never" and cells["Description"] == j.description
    saved = tenant.owner.api_key(j.key_name)
    assert saved["expiresTimestamp"] is None and saved["description"] == j.description


def test_an_expired_key_cannot_be_rotated_until_a_new_expiry_revives_it(
    owner: Console, tenant: Tenant, web: WebServer
) -> None:
    name = unique_key_name("brief")
    body = {"name": name, "userId": tenant.owner_user_id}
    body["expiresTimestamp"] = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    secret = tenant.owner.post("/v1/api-keys", json=body, expect=201).json()["secretKey"]
    owner.reload_keys_until(name, "Expired")
    assert api(web, tenant, secret).get("/v1/").status_code == 401
    expect(owner.key_action("Rotate", name)).to_have_count(0)

    dialog = owner.open_edit(name)
    dialog.get_by_label("Expires (UTC)").fill(in_days(10).strftime("%Y-%m-%dT%H:%M:%S"))
    dialog.get_by_role("button", name="Save").click()

    expect(dialog).to_be_hidden()
    assert owner.key_cells(name)["Status"] == "Active"
    expect(owner.key_action("Rotate", name)).to_be_visible()
    assert api(web, tenant, secret).get("/v1/").status_code == 200
    tenant.owner.delete_key(name)


def test_the_keys_unused_for_some_days_are_listed_on_their_own(
    owner: Console, tenant: Tenant, stack: Stack, e2e_redis: redis.Redis
) -> None:
    j = JOURNEY
    secret = tenant.owner.create_key(j.unused_key, tenant.owner_user_id)["secretKey"]
    # A use written 120 days ago by some web process (the last-use hash is no projection):
    keyspace = Keyspace(stack.namespace, int(stack.env()["KEYLEDGER_PARTITIONS"]))
    long_ago = int((time.time() - 120 * 86400) * 1000)
    e2e_redis.hset(
        keyspace.last_used(keyspace.partition_of(tenant.account_id)),
        key_id_of(secret),
        f"{long_ago} 10.1.2.3",
    )
    panel = owner.tab("API keys")
    panel.get_by_label("Unused for at least (days)").fill("90")
    panel.get_by_role("button", name="Show unused keys").click()

    expect(panel.get_by_role("status")).to_have_text("1 key unused for 90 days or more.")
    listed = owner.page.locator("#keys-table tbody tr").evaluate_all(
        "(rows) => rows.map((row) => row.dataset.key)"
    )
    assert listed == [j.unused_key]
    assert owner.key_cells(j.unused_key)["Last used (UTC)"].endswith("from 10.1.2.3")
    assert_accessible(owner, "keys unused for 90 days")

    panel.get_by_label("Unused for at least (days)").fill("0")
    panel.get_by_role("button", name="Show unused keys").click()
    expect(panel.locator("#keys-unused-error")).to_contain_text("greater than or equal to 1")
    expect(panel.get_by_label("Unused for at least (days)")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(panel.locator("#keys-error")).to_contain_text("unusedForDays")

    panel.get_by_role("button", name="Show every key").click()
    expect(owner.key_row(j.key_name)).to_be_visible()
    expect(panel.locator("#keys-error")).to_be_empty()
    tenant.owner.delete_key(j.unused_key)


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
    key = q(j.key_name)
    key_changes = [
        ("create", f"API key {key} created for user {q(j.user_name)}"),
        ("update", f"Source subnet {q(j.cidr)} allowed for API key {key}"),
        ("update", f"Source subnet {q(j.cidr)} removed from API key {key}"),
        ("update", f"Source subnet {q(j.here)} allowed for API key {key}"),
        ("update", f"API key {key} rotated; previous secret valid until {j.grace_ends[:19]}Z"),
        ("update", f"API key {key} rotated; previous secret stopped at once"),
        ("update", f"API key {key} disabled"),
        ("update", f"API key {key} enabled"),
        ("update", f"Description of API key {key} set to {q(j.description)}"),
        ("update", f"Expiry of API key {key} removed: the key no longer expires"),
        ("delete", f"API key {key} of user {q(j.user_name)} deleted"),
    ]
    expected = [
        (
            j.user_id,
            "create",
            f"User {q(j.user_name)} with email {q(j.user_email)} added with role Logs Viewer",
        ),
        (j.user_id, "update", f"Role of user {q(j.user_name)} changed from Logs Viewer to Viewer"),
        *[(j.key_name, kind, says) for kind, says in key_changes],
    ]
    for resource_id, kind, says in expected:
        assert any(
            row[4] == resource_id and row[5] == kind and row[6].startswith(says) for row in by_key
        ), (resource_id, kind, says, rows)
    assert all(row[1] == tenant.owner_name for row in by_key)
    times = [row[0] for row in rows]
    assert times == sorted(times, reverse=True)  # newest first


def test_the_system_log_filters_by_resource_and_time(owner: Console, tenant: Tenant) -> None:
    panel = owner.tab("System log")
    panel.get_by_label("Resource id").fill(JOURNEY.key_name)
    panel.get_by_role("button", name="Apply filter").click()
    changes = len(tenant.owner.logs(resourceId=JOURNEY.key_name)["entries"])
    assert changes >= 12  # the key's whole life in the console
    expect(panel.get_by_role("status")).to_have_text(f"Entries 1 to {changes}, newest first.")
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
    assert not owner.holds(JOURNEY.key_name) and not owner.holds(JOURNEY.description)
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
    assert fresh.tab("API keys").get_by_role("columnheader").all_inner_texts() == KEY_COLUMNS
    for action in [*KEY_ACTIONS, "Add key"]:
        expect(fresh.page.get_by_role("button", name=re.compile(f"^{action}\\b"))).to_have_count(0)
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


def test_a_429_of_the_change_budget_says_nothing_changed_and_how_long_to_wait(
    browser: Browser, stack: Stack
) -> None:
    budgeted = stack.start_web("web-budget", KEYLEDGER_CHANGES_PER_MINUTE="2")
    tenant = stack.bootstrap("Budget Corp", web=budgeted)  # the operator's changes: not counted
    name = unique_key_name("budget")
    tenant.owner.create_key(name, tenant.owner_user_id)
    console = new_console(browser, budgeted.url)
    try:
        console.sign_in(tenant.account_key, tenant.secret_key)
        row = console.key_row(name)
        expect(row).to_be_visible()
        said = ""
        for _ in range(6):  # 2 changes a minute: a 429 within 3, or 5 across a minute's turn
            action = "Disable" if console.key_action("Disable", name).count() else "Enable"
            other = "Enable" if action == "Disable" else "Disable"
            console.key_action(action, name).click()
            expect(console.key_action(other, name).or_(row.locator(".error")).first).to_be_visible()
            said = row.locator(".error").inner_text()
            if "429" in said:
                break
        assert re.fullmatch(
            r"Too many changes \(429\): this account may record at most 2 changes a minute "
            r"through the API; retry when the minute is over\. Nothing was changed: wait "
            r"\d+ seconds? and try again\.",
            said,
        ), said
        shown_enabled = console.key_action("Disable", name).count() == 1
        assert tenant.owner.api_key(name)["enabled"] is shown_enabled
        assert_accessible(console, "a key's row with a 429")
        assert_clean(console)
    finally:
        console.page.context.close()
        budgeted.stop()


def test_each_refusal_is_described_in_words(fresh: Console) -> None:
    fresh.open()
    said = fresh.page.evaluate(
        """() => import("/console/static/js/api.js").then((api) => ({
            400: api.describe(400, {description: "x", fields: {cidr: ["not a network"]}}),
            401: api.describe(401), 403: api.describe(403),
            409: api.describe(409, {description: "the last Owner cannot be removed"}),
            429: api.describe(429, {}, 7), 503: api.describe(503), 0: api.describe(0),
            budget: api.describe(429, {code: "too_many_changes", description: "at most 9"}, 1),
            500: api.describe(500, {description: "internal error"}, null, "rid-1"),
        }))"""
    )
    assert said["400"] == "The request was refused. cidr: not a network"
    assert said["401"].startswith("The keys were not accepted (401)")
    assert said["403"].startswith("Not allowed (403)")
    assert said["409"] == "Refused (409): the last Owner cannot be removed"
    assert said["429"] == "Too many requests (429): wait 7 seconds and try again."
    assert said["budget"] == (
        "Too many changes (429): at most 9. Nothing was changed: wait 1 second and try again."
    )
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
