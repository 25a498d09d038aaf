"""The console as a person uses it: one method per thing they do, found by role and label.

Controls are located by their accessible role and name (``get_by_role``,
``get_by_label``), so every step also checks that the control has the name a
screen reader announces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import Watch
from tests.e2e.harness import MINTED


@dataclass
class Console:
    page: Page
    watch: Watch
    url: str

    # -- signing in and out ----------------------------------------------------------------
    def open(self) -> None:
        self.page.goto(f"{self.url}/console/")

    def submit_keys(self, account_key: str, secret_key: str) -> None:
        self.page.get_by_label("Account key", exact=True).fill(account_key)
        self.page.get_by_label("Secret key", exact=True).fill(secret_key)
        self.page.get_by_role("button", name="Sign in").click()

    def sign_in(self, account_key: str, secret_key: str) -> None:
        self.open()
        self.submit_keys(account_key, secret_key)
        expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        expect(self.page.get_by_role("button", name="Sign in")).to_be_visible()

    @property
    def sign_in_error(self) -> Locator:
        return self.page.locator("#sign-in-error")

    # -- tabs ----------------------------------------------------------------------------------
    def tab(self, name: str) -> Locator:
        """Select the tab ``name`` and return its panel, once the panel has loaded."""
        self.page.get_by_role("tab", name=name, exact=True).click()
        panel = self.page.get_by_role("tabpanel", name=name, exact=True)
        expect(panel).to_be_visible()
        expect(panel.locator(".status").first).not_to_contain_text("Loading")
        return panel

    def visible_tabs(self) -> list[str]:
        tabs = self.page.get_by_role("tab")
        return [tabs.nth(i).inner_text() for i in range(tabs.count()) if tabs.nth(i).is_visible()]

    def dialog(self, name: str) -> Locator:
        return self.page.get_by_role("dialog", name=name)

    def rows(self, table_id: str) -> list[list[str]]:
        """The cells' text of each body row of a table."""
        rows: list[list[str]] = self.page.evaluate(
            """(id) => [...document.getElementById(id).tBodies[0].rows].map(
                (row) => [...row.cells].map((cell) => cell.innerText.trim()))""",
            table_id,
        )
        return rows

    # -- users ---------------------------------------------------------------------------------
    def add_user(self, name: str, email: str, role: str) -> Locator:
        self.tab("Users").get_by_role("button", name="Add user").click()
        dialog = self.dialog("Add user")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_label("Email").fill(email)
        dialog.get_by_label("Role").select_option(role)
        dialog.get_by_role("button", name="Add user").click()
        return dialog

    # -- keys ------------------------------------------------------------------------------------
    def start_key(
        self,
        name: str,
        user_option: str,
        subnets: str = "",
        description: str = "",
        expires: str = "",
    ) -> Locator:
        """Fill "Add key" and press "Create key"; ``expires`` as a datetime-local value (UTC)."""
        self.tab("API keys").get_by_role("button", name="Add key").click()
        dialog = self.dialog("Add key")
        dialog.get_by_label("Key name").fill(name)
        dialog.get_by_label("User").select_option(label=user_option)
        if description:
            dialog.get_by_label("Description (optional)").fill(description)
        if expires:
            dialog.get_by_label("Expires (UTC, optional)").fill(expires)
        if subnets:
            dialog.get_by_label("Allowed subnets (optional)").fill(subnets)
        dialog.get_by_role("button", name="Create key").click()
        return dialog

    def copy_secret(self, title: str = "Secret key created") -> str:
        """Copy the secret shown once, read it from the clipboard, close the dialog."""
        dialog = self.dialog(title)
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Copy").click()
        expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
        secret = str(self.page.evaluate("navigator.clipboard.readText()"))
        MINTED.secret(secret)
        dialog.get_by_role("button", name="Done").click()
        expect(dialog).to_be_hidden()
        return secret

    def key_row(self, name: str) -> Locator:
        return self.page.locator(f'#keys-table tr[data-key="{name}"]')

    def open_subnets(self, key_name: str) -> Locator:
        self.page.get_by_role("button", name=f"Subnets of {key_name}").click()
        dialog = self.dialog(f"Allowed subnets of {key_name}")
        expect(dialog).to_be_visible()
        return dialog

    def key_cells(self, name: str) -> dict[str, str]:
        """The key's row of the API keys table: each cell's text by its column's header."""
        cells: dict[str, str] | None = self.page.evaluate(
            """(name) => {
                const table = document.getElementById("keys-table");
                const headers = [...table.tHead.rows[0].cells].map((c) => c.innerText.trim());
                const row = [...table.tBodies[0].rows].find((r) => r.dataset.key === name);
                return row ? Object.fromEntries([...row.cells].map(
                    (cell, i) => [headers[i], cell.innerText.trim()])) : null;
            }""",
            name,
        )
        assert cells is not None, f"no row for the key {name}"
        return cells

    def key_action(self, action: str, key_name: str) -> Locator:
        """A button of the key's row, by the name a screen reader announces ("Rotate x")."""
        return self.key_row(key_name).get_by_role("button", name=f"{action} {key_name}", exact=True)

    def reload_keys_until(self, key_name: str, text: str) -> Locator:
        """Reload the API keys tab until the key's row shows ``text`` (e.g. a last use,
        which web processes write in batches)."""
        row = self.key_row(key_name)
        for _ in range(60):
            self.tab("API keys")
            if text in row.inner_text():
                break
            self.page.wait_for_timeout(500)
        expect(row).to_contain_text(text)
        return row

    def open_rotate(self, key_name: str) -> Locator:
        self.key_action("Rotate", key_name).click()
        dialog = self.dialog(f"Rotate {key_name}")
        expect(dialog).to_be_visible()
        return dialog

    def open_edit(self, key_name: str) -> Locator:
        self.key_action("Edit", key_name).click()
        dialog = self.dialog(f"Edit {key_name}")
        expect(dialog).to_be_visible()
        return dialog

    def add_subnet(self, dialog: Locator, cidr: str) -> None:
        dialog.get_by_label("Subnet (CIDR)").fill(cidr)
        dialog.get_by_role("button", name="Add subnet").click()

    def confirm(self, title: str, action: str) -> Locator:
        dialog = self.dialog(title)
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name=action, exact=True).click()
        return dialog

    # -- what the page holds -----------------------------------------------------------------
    def holds(self, text: str) -> bool:
        """Whether ``text`` is anywhere in the page: its markup or any field's value."""
        found: Any = self.page.evaluate(
            """(text) => document.documentElement.outerHTML.includes(text) ||
                [...document.querySelectorAll("input, textarea, select")].some(
                    (field) => field.value.includes(text))""",
            text,
        )
        return bool(found)

    def stored_anywhere(self) -> dict[str, Any]:
        """Everything the page could have stored: web storage and cookies."""
        stored: dict[str, Any] = self.page.evaluate(
            """() => ({local: localStorage.length, session: sessionStorage.length,
                        cookie: document.cookie})"""
        )
        stored["cookies"] = self.page.context.cookies()
        return stored
