// A key's lifecycle from its row (docs/lifecycle.md): rotate it with a grace period (the new
// secret shown once, in the same dialog as a created key's), disable and enable it, edit its
// description and expiry. Each is one API call; the key the API returns is drawn in the row.

import * as api from "./api.js";
import * as dialogs from "./dialogs.js";
import { $, busy, inputFromUtc, markInvalid, resetMessages, showError, utcFromInput, when } from "./dom.js";
import { identity } from "./session.js";

const keyPath = (key) => `/v1/api-keys/${api.segment(key.name)}`;
const own = (key) => identity()?.keyName === key.name;

// -- rotate ---------------------------------------------------------------------------------
let rotating = null; // { key, row }

export function rotate(key, row) {
  rotating = { key, row };
  $("rotate-title").textContent = `Rotate ${key.name}`;
  $("rotate-summary").textContent =
    `A new secret replaces the current one of ${key.name}; the key keeps its name, user, ` +
    "subnets, description and expiry. The new secret is shown once." +
    (own(key)
      ? " This is the key you signed in with: the console goes on with the current secret, " +
        "so without a grace period it stops working; sign in again with the new one."
      : "");
  $("rotate-form").reset();
  dialogs.open($("rotate-dialog"));
  $("rotate-form").querySelector("input[name=grace]:checked").focus();
}

/** The grace period chosen, in seconds; null when the custom amount is not a number. */
function graceSeconds() {
  const chosen = $("rotate-form").querySelector("input[name=grace]:checked").value;
  if (chosen !== "custom") return Number(chosen);
  const amount = $("rotate-grace");
  if (amount.validity.badInput || amount.value.trim() === "") return null;
  return Number(amount.value) * Number($("rotate-grace-unit").value);
}

async function submitRotate(event) {
  event.preventDefault();
  resetMessages($("rotate-dialog"));
  const { key, row } = rotating;
  const grace = graceSeconds();
  if (grace === null) {
    markInvalid("rotate-grace", "Enter a whole number.");
    $("rotate-error").textContent = "Enter the custom grace period, or choose another.";
    $("rotate-grace").focus();
    return;
  }
  let rotated;
  try {
    rotated = await busy($("rotate-form").querySelector("button[type=submit]"), () =>
      api.post(`${keyPath(key)}/rotate`, { gracePeriodSeconds: grace }),
    );
  } catch (failure) {
    showError(failure, $("rotate-error"), { gracePeriodSeconds: "rotate-grace" });
    return;
  }
  $("rotate-dialog").close();
  const secret = rotated.secretKey;
  delete rotated.secretKey;
  const until = rotated.previousSecretExpiresTimestamp;
  const previous = until
    ? `The previous secret keeps working until ${when(until)} UTC.`
    : "The previous secret stopped working at once.";
  // The dialog opens first, so that focus returns to the redrawn row's Rotate button.
  const shown = dialogs.showSecret(key.name, secret, { title: "Secret key rotated", previous });
  row.changed(rotated, `Key ${key.name} rotated. ${previous}`);
  await shown;
}

// -- disable, enable --------------------------------------------------------------------------
export function setEnabled(key, enabled, row) {
  const change = async (button) => {
    const put = () => api.put(keyPath(key), { enabled });
    const updated = button ? await busy(button, put) : await put();
    row.changed(updated, `Key ${key.name} ${enabled ? "enabled" : "disabled"}.`, enabled ? "Disable" : "Enable");
  };
  if (!enabled && own(key)) {
    dialogs.confirm({
      title: `Disable API key ${key.name}?`,
      text: "This is the key you signed in with: once it is disabled, the console stops working with it.",
      action: `Disable ${key.name}`,
      run: () => change(null), // the confirmation's button is busy meanwhile
    });
    return;
  }
  change(row.button).catch((failure) => showError(failure, row.slot));
}

// -- description and expiry -------------------------------------------------------------------
let editing = null; // { key, row }
const EDIT_FIELDS = { description: "edit-description", expiresTimestamp: "edit-expires" };

export function edit(key, row) {
  editing = { key, row };
  $("edit-key-title").textContent = `Edit ${key.name}`;
  $("edit-key-form").reset();
  $("edit-description").value = key.description || "";
  $("edit-expires").value = inputFromUtc(key.expiresTimestamp);
  dialogs.open($("edit-key-dialog"));
  $("edit-description").focus();
}

/** Epoch seconds of a ``datetime-local`` value read as UTC (null when empty). */
const secondsOf = (value) => (value ? Math.floor(Date.parse(utcFromInput(value)) / 1000) : null);

async function submitEdit(event) {
  event.preventDefault();
  const form = $("edit-key-form");
  resetMessages(form);
  const { key, row } = editing;
  const body = {};
  const description = $("edit-description").value.trim();
  if (description !== (key.description || "")) body.description = description;
  const typed = $("edit-expires").value;
  if (secondsOf(typed) !== secondsOf(inputFromUtc(key.expiresTimestamp))) {
    body.expiresTimestamp = typed ? utcFromInput(typed) : null;
  }
  if (Object.keys(body).length === 0) {
    $("edit-key-error").textContent = "Nothing to save: the description and the expiry are unchanged.";
    return;
  }
  let updated;
  try {
    updated = await busy(form.querySelector("button[type=submit]"), () => api.put(keyPath(key), body));
  } catch (failure) {
    showError(failure, $("edit-key-error"), EDIT_FIELDS);
    return;
  }
  $("edit-key-dialog").close();
  row.changed(updated, `Key ${key.name} saved.`, "Edit");
}

export function forget() {
  rotating = null;
  editing = null;
  $("rotate-title").textContent = "Rotate key";
  $("rotate-summary").textContent = "";
  $("edit-key-title").textContent = "Edit key";
}

export function install() {
  $("rotate-form").addEventListener("submit", submitRotate);
  $("edit-key-form").addEventListener("submit", submitEdit);
  // Typing a custom amount chooses it.
  $("rotate-grace").addEventListener("input", () => {
    $("grace-custom").checked = true;
  });
}
