// The console's entry point: signing in and out, and the tabs (WAI-ARIA tabs: arrow keys,
// Home and End move between them). Signing out forgets the keys and every shown value.

import * as api from "./api.js";
import * as dialogs from "./dialogs.js";
import { $, busy, resetMessages } from "./dom.js";
import * as history from "./history.js";
import * as keys from "./keys.js";
import * as session from "./session.js";
import * as syslog from "./syslog.js";
import * as users from "./users.js";

const VIEWS = { keys, users, logs: syslog, history };

const tabs = () => [...document.querySelectorAll("[role=tab]")];
const visibleTabs = () => tabs().filter((tab) => !tab.hidden);

function select(tab, { focus = true } = {}) {
  for (const other of tabs()) {
    const chosen = other === tab;
    other.setAttribute("aria-selected", String(chosen));
    other.tabIndex = chosen ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !chosen;
  }
  if (focus) tab.focus();
  VIEWS[tab.dataset.view].show();
}

function onTabKey(event) {
  const shown = visibleTabs();
  const at = shown.indexOf(event.currentTarget);
  const moves = {
    ArrowRight: (at + 1) % shown.length,
    ArrowLeft: (at - 1 + shown.length) % shown.length,
    Home: 0,
    End: shown.length - 1,
  };
  if (!(event.key in moves)) return;
  event.preventDefault();
  select(shown[moves[event.key]]);
}

function enter(who) {
  const allowed = session.ROLE_VIEWS[who.role];
  for (const tab of tabs()) tab.hidden = !allowed.includes(tab.dataset.view);
  for (const element of document.querySelectorAll("[data-write]")) element.hidden = !session.canWrite();
  $("whoami").textContent = session.describeIdentity(who);
  $("keys-expire").textContent = session.describeExpiry(who);
  $("session").hidden = false;
  $("sign-in-view").hidden = true;
  $("console-view").hidden = false;
  document.title = `keyledger console: ${who.accountName || who.role}`;
  select(visibleTabs()[0]);
}

async function signIn(event) {
  event.preventDefault();
  const form = $("sign-in-form");
  resetMessages(form);
  $("sign-in-status").textContent = "";
  const accountKey = $("account-key").value.trim();
  const secretKey = $("secret-key").value.trim();
  if (!accountKey || !secretKey) {
    $("sign-in-error").textContent = "Enter both the account key and the secret key.";
    $(accountKey ? "secret-key" : "account-key").focus();
    return;
  }
  api.useKeys(accountKey, secretKey);
  try {
    const who = await busy(form.querySelector("button[type=submit]"), session.identify);
    form.reset();
    enter(who);
  } catch (failure) {
    session.end();
    $("sign-in-error").textContent =
      failure.name === "ApiError" && failure.status === 401
        ? "Sign-in failed: the account key or the secret key is wrong, or the key was " +
          "deleted, or the account's API is disabled."
        : `Sign-in failed. ${failure.message}`;
    $("secret-key").focus();
  }
}

function signOut() {
  session.end();
  dialogs.closeAll();
  for (const view of Object.values(VIEWS)) view.forget();
  for (const tab of tabs()) {
    tab.setAttribute("aria-selected", "false");
    $(tab.getAttribute("aria-controls")).hidden = true;
  }
  $("whoami").textContent = "";
  $("keys-expire").textContent = "";
  $("session").hidden = true;
  $("console-view").hidden = true;
  $("sign-in-view").hidden = false;
  document.title = "keyledger console";
  $("sign-in-form").reset();
  resetMessages($("sign-in-form"));
  $("sign-in-status").textContent = "Signed out: the console has forgotten your keys.";
  $("account-key").focus();
}

function install() {
  dialogs.install();
  for (const view of Object.values(VIEWS)) view.install();
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  for (const tab of tabs()) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", onTabKey);
  }
  $("account-key").focus();
}

install();
