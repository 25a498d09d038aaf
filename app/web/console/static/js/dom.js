// Building the page from data without HTML strings: every value the API returns becomes a
// text node, so nothing it contains can run as script (no innerHTML anywhere).

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export const $ = (id) => document.getElementById(id);

export function clear(element) {
  element.replaceChildren();
}

/** Text a screen reader adds to a control's visible label, e.g. which key it acts on. */
export const hidden = (text) => h("span", { class: "visually-hidden" }, text);

export function say(element, text, kind = "") {
  element.textContent = text || "";
  element.classList.toggle("notice", kind === "notice");
}

/**
 * Show an API error where it happened: the message in ``messageElement`` and, for a 400
 * naming fields, each field's message beside its input (``fieldInputs`` maps API field
 * names to input ids). Any other failure is rethrown.
 */
export function showError(error, messageElement, fieldInputs = {}) {
  if (error === null || error === undefined || error.name !== "ApiError") throw error;
  let placed = false;
  for (const [field, messages] of Object.entries(error.fields || {})) {
    const base = field.split(".")[0];
    const inputId = fieldInputs[field] || fieldInputs[base];
    if (!inputId) continue;
    markInvalid(inputId, messages.join(" "));
    placed = true;
  }
  messageElement.textContent = error.message;
  if (placed) {
    const first = document.querySelector("[aria-invalid='true']");
    if (first && messageElement.closest("dialog, form")?.contains(first)) first.focus();
  }
}

export function markInvalid(inputId, message) {
  const input = $(inputId);
  if (!input) return;
  input.setAttribute("aria-invalid", "true");
  const slot = $(`${inputId}-error`);
  if (slot) slot.textContent = message;
}

/**
 * Load a tab's list: "Loading" in its status, then ``work()``'s summary, or the error (with
 * a 400's fields beside the inputs ``fieldInputs`` names).
 */
export async function loadList(statusId, errorId, loadingText, work, fieldInputs = {}) {
  $(errorId).textContent = "";
  say($(statusId), loadingText);
  try {
    say($(statusId), await work());
  } catch (failure) {
    say($(statusId), "");
    showError(failure, $(errorId), fieldInputs);
  }
}

/** "1 key." or "3 keys." */
export const plural = (n, one) => (n === 1 ? `1 ${one}.` : `${n} ${one}s.`);

/** Forget earlier messages of a form or dialog before trying again. */
export function resetMessages(container) {
  for (const input of container.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
  for (const slot of container.querySelectorAll(".field-error, .error")) slot.textContent = "";
}

/** Run ``action`` with ``button`` disabled, so a double click cannot send it twice. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** ISO-8601 UTC as shown to people: ``2026-11-28 06:09:06``. */
export function when(iso) {
  if (!iso) return "never";
  return String(iso).replace("T", " ").replace(/(\.\d+)?Z$/, "");
}

/** A time for a table cell, which wraps between its date and its time of day only. */
export function whenCell(iso) {
  const [day, time] = when(iso).split(" ");
  return [h("span", { class: "when" }, day), " ", h("span", { class: "when" }, time)];
}

/** A ``datetime-local`` value read as UTC (the console shows and takes times in UTC). */
export function utcFromInput(value) {
  if (!value) return "";
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

/** An API time as a ``datetime-local`` value in UTC, to the second (empty for none). */
export function inputFromUtc(iso) {
  if (!iso) return "";
  return String(iso).replace(/(\.\d+)?Z$/, "").slice(0, 19);
}
