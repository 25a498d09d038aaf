// The "History" tab: every recorded event of the account with who made it (user, key name,
// source address, request id), and "Verify", which recomputes the account's hash chain on
// the server (GET /v1/audit/verify, what `keyledger audit verify --account` reports).

import * as api from "./api.js";
import { $, busy, clear, h, say, showError, whenCell } from "./dom.js";

const PAGE = 50;
let next = null;
let first = 1;

export async function show() {
  await load("/v1/events", { limit: PAGE });
}

export function forget() {
  next = null;
  clear($("history-table").tBodies[0]);
  say($("history-status"), "");
  $("history-error").textContent = "";
  verdict("", "");
  $("history-next").disabled = true;
  $("history-first").disabled = true;
}

async function load(path, query, button = null) {
  $("history-error").textContent = "";
  say($("history-status"), "Loading the history...");
  let page;
  try {
    const fetchPage = () => api.get(path, query);
    page = button ? await busy(button, fetchPage) : await fetchPage();
  } catch (failure) {
    say($("history-status"), "");
    showError(failure, $("history-error"));
    return;
  }
  next = page.links.find((link) => link.rel === "next")?.href ?? null;
  render(page.events);
}

function actorOf(actor) {
  if (!actor) return "";
  if (actor.kind === "operator") return h("span", {}, `${actor.name} (operator)`);
  return h(
    "ul",
    {},
    h("li", {}, `user ${actor.name ?? "?"}`),
    actor.apiKeyName ? h("li", {}, "key ", h("span", { class: "mono" }, actor.apiKeyName)) : null,
    actor.sourceIp ? h("li", {}, "from ", h("span", { class: "mono" }, actor.sourceIp)) : null,
    actor.requestId ? h("li", {}, "request ", h("span", { class: "mono" }, actor.requestId)) : null,
  );
}

function detailsOf(data) {
  const entries = Object.entries(data || {});
  if (entries.length === 0) return "";
  return h(
    "ul",
    {},
    entries.map(([name, value]) =>
      h("li", {}, `${name}: `, h("span", { class: "mono" }, typeof value === "string" ? value : JSON.stringify(value))),
    ),
  );
}

function render(events) {
  const body = $("history-table").tBodies[0];
  clear(body);
  for (const event of events) {
    body.append(
      h(
        "tr",
        {},
        h("td", {}, String(event.version)),
        h("td", { class: "mono" }, whenCell(event.time)),
        h("td", {}, event.type),
        h("td", {}, actorOf(event.actor)),
        h("td", {}, detailsOf(event.data)),
      ),
    );
  }
  if (events.length) {
    first = events[0].version;
    say($("history-status"), `Events ${first} to ${events[events.length - 1].version}.`);
  } else {
    say($("history-status"), "No events.");
  }
  $("history-next").disabled = !next;
  $("history-first").disabled = events.length === 0 || first === 1;
}

function verdict(text, kind) {
  const element = $("history-verdict");
  element.textContent = text;
  element.classList.toggle("ok", kind === "ok");
  element.classList.toggle("broken", kind === "broken");
}

async function verify(button) {
  verdict("", "");
  $("history-error").textContent = "";
  try {
    const report = await busy(button, () => api.get("/v1/audit/verify"));
    if (report.ok) {
      verdict(
        `Verified: the hash chain of all ${report.events} events is intact, and the log holds ` +
          `the same ${report.logEntries} entries.`,
        "ok",
      );
    } else {
      const broken = report.brokenLink || {};
      const where = broken.version ? `at version ${broken.version}` : "";
      verdict(`Broken: the hash chain does not verify ${where}: ${broken.reason || "unknown"}.`, "broken");
    }
  } catch (failure) {
    showError(failure, $("history-error"));
  }
}

export function install() {
  $("history-verify").addEventListener("click", (event) => verify(event.currentTarget));
  $("history-next").addEventListener("click", (event) => next && load(next, null, event.currentTarget));
  $("history-first").addEventListener("click", (event) =>
    load("/v1/events", { limit: PAGE }, event.currentTarget),
  );
}
