// Modal dialogs: native <dialog> opened with showModal(), so focus moves into the dialog and
// the rest of the page is inert; when it closes, focus returns to the control that opened it.

import { $, busy, resetMessages, showError } from "./dom.js";

const openers = new WeakMap();

export function open(dialog) {
  openers.set(dialog, document.activeElement);
  resetMessages(dialog);
  dialog.showModal();
}

function returnFocus(dialog) {
  let opener = openers.get(dialog);
  openers.delete(dialog);
  if (opener && !opener.isConnected && opener.dataset?.focusKey) {
    // The list was drawn again while the dialog was open: the same control in the new rows.
    const same = `[data-focus-key="${CSS.escape(opener.dataset.focusKey)}"]`;
    opener = document.querySelector(same);
  }
  if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
  else $("main").querySelector("[role=tab][aria-selected=true]")?.focus();
}

/** Every dialog: its [data-close] buttons close it, and focus returns on close. */
export function install() {
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => dialog.close());
    }
    if (dialog.id !== "secret-dialog") dialog.addEventListener("close", () => returnFocus(dialog));
  }
  installSecretDialog();
  $("confirm-yes").addEventListener("click", confirmed);
}

/** Close every dialog (signing out), the secret's too. */
export function closeAll() {
  dismissible = true;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  pending = null;
  for (const id of ["confirm-title", "confirm-text", "confirm-yes"]) $(id).textContent = "";
  for (const form of document.querySelectorAll("dialog form")) form.reset();
}

// -- confirmation ---------------------------------------------------------------------------
let pending = null;

/** Ask before a destructive ``run``; its API error stays in the dialog, beside the question. */
export function confirm({ title, text, action, run }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = action;
  pending = run;
  open(dialog);
  $("confirm-no").focus(); // the safe choice has the focus
}

async function confirmed() {
  const dialog = $("confirm-dialog");
  const run = pending;
  if (!run) return;
  try {
    await busy($("confirm-yes"), run);
    pending = null;
    dialog.close();
  } catch (error) {
    showError(error, $("confirm-error"));
  }
}

// -- the secret, shown once --------------------------------------------------------------------
// The dialog cannot be dismissed (Escape included) until the secret was copied or the user
// confirms they saved it. When it closes, the secret is removed from the page.
let dismissible = false;
let afterSecret = null;

/**
 * Show a new secret once (after "Create key" or "Rotate"): ``title`` names what happened,
 * ``previous`` says what became of the secret it replaced. Resolves when the dialog closed.
 */
export function showSecret(keyName, secret, { title = "Secret key created", previous = "" } = {}) {
  const dialog = $("secret-dialog");
  dismissible = false;
  $("secret-title").textContent = title;
  $("secret-previous").textContent = previous;
  $("secret-key-name").textContent = keyName;
  $("secret-value").value = secret;
  $("secret-copied").textContent = "";
  $("secret-saved").checked = false;
  $("secret-done").disabled = true;
  openers.set(dialog, document.activeElement);
  dialog.showModal();
  $("secret-value").focus();
  $("secret-value").select();
  return new Promise((resolve) => {
    afterSecret = resolve;
  });
}

function allowDismiss() {
  dismissible = true;
  $("secret-done").disabled = false;
}

async function copySecret() {
  const input = $("secret-value");
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch {
    // No clipboard API (a page that is not a secure context): copy the selection instead.
    input.focus();
    input.select();
    copied = document.execCommand("copy");
  }
  $("secret-copied").textContent = copied
    ? "Copied to the clipboard."
    : "Could not copy: select the secret and copy it yourself.";
  if (copied) allowDismiss();
}

/** Take the secret out of the page (before the dialog closes, not in a later task). */
function forgetSecret() {
  $("secret-value").value = "";
  $("secret-key-name").textContent = "";
  $("secret-previous").textContent = "";
  $("secret-copied").textContent = "";
  $("secret-saved").checked = false;
}

function installSecretDialog() {
  const dialog = $("secret-dialog");
  $("secret-copy").addEventListener("click", copySecret);
  $("secret-saved").addEventListener("change", (event) => {
    if (event.target.checked) allowDismiss();
  });
  $("secret-done").addEventListener("click", () => {
    if (!dismissible) return;
    forgetSecret();
    dialog.close();
  });
  dialog.addEventListener("cancel", (event) => {
    if (!dismissible) event.preventDefault();
  });
  dialog.addEventListener("close", () => {
    if (!dismissible) {
      // Chromium lets a second Escape close a dialog whose cancel was refused: open it again.
      dialog.showModal();
      $("secret-value").focus();
      return;
    }
    forgetSecret();
    returnFocus(dialog);
    const resolve = afterSecret;
    afterSecret = null;
    if (resolve) resolve();
  });
}
