// The "System log" tab: the account's changes, newest first, filtered by time and resource,
// a page at a time; "Download CSV" saves every entry the filter matches. The download is a
// fetch with both key headers (a plain link could not carry them), saved from a Blob.

import * as api from "./api.js";
import { $, busy, clear, h, resetMessages, say, showError, utcFromInput, whenCell } from "./dom.js";

const CSV_PAGE = 1000;
const MAX_CSV_PAGES = 100;
const FILTER_FIELDS = { startTime: "logs-start", endTime: "logs-end", resourceId: "logs-resource" };

let query = {};
let offset = 0;
let links = {};

function filter() {
  return {
    startTime: utcFromInput($("logs-start").value),
    endTime: utcFromInput($("logs-end").value),
    resourceId: $("logs-resource").value.trim(),
  };
}

export async function show() {
  await load(0);
}

export function forget() {
  query = {};
  offset = 0;
  links = {};
  clear($("logs-table").tBodies[0]);
  $("logs-filter").reset();
  resetMessages($("logs-filter"));
  say($("logs-status"), "");
  $("logs-newer").disabled = true;
  $("logs-older").disabled = true;
}

async function load(at, button = null) {
  resetMessages($("logs-filter"));
  query = { ...filter(), limit: Number($("logs-limit").value) };
  say($("logs-status"), "Loading the system log...");
  let page;
  try {
    const fetchPage = () => api.get("/v1/logs", { ...query, offset: at });
    page = button ? await busy(button, fetchPage) : await fetchPage();
  } catch (failure) {
    say($("logs-status"), "");
    showError(failure, $("logs-error"), FILTER_FIELDS);
    return;
  }
  offset = at;
  links = Object.fromEntries(page.links.map((link) => [link.rel, link.href]));
  render(page.entries);
}

function render(entries) {
  const body = $("logs-table").tBodies[0];
  clear(body);
  for (const entry of entries) {
    body.append(
      h(
        "tr",
        {},
        h("td", { class: "mono" }, whenCell(entry.time)),
        h("td", {}, entry.originator ?? ""),
        h("td", { class: "mono" }, entry.apiKeyName ?? ""),
        h("td", {}, entry.resource ?? ""),
        h("td", { class: "mono" }, entry.resourceId ?? ""),
        h("td", {}, entry.type ?? ""),
        h("td", {}, entry.description ?? ""),
      ),
    );
  }
  if (entries.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: 7 }, "No entries match.")));
  }
  say(
    $("logs-status"),
    entries.length
      ? `Entries ${offset + 1} to ${offset + entries.length}, newest first.`
      : "No entries match.",
  );
  $("logs-newer").disabled = !links.previous;
  $("logs-older").disabled = !links.next;
}

function offsetOf(href) {
  return Number(new URL(href, window.location.origin).searchParams.get("offset") || 0);
}

// -- Download CSV ---------------------------------------------------------------------------
function nextLink(header) {
  for (const part of (header || "").split(",")) {
    const match = part.match(/<([^>]+)>\s*;\s*rel="next"/);
    if (match) return match[1];
  }
  return null;
}

function filenameOf(response) {
  const match = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
  return match ? match[1] : "keyledger-system-log.csv";
}

async function downloadCsv() {
  resetMessages($("logs-filter"));
  const wanted = { ...filter(), limit: CSV_PAGE, offset: 0 };
  const parts = [];
  let filename = null;
  let truncated = false;
  let path = "/v1/logs";
  let pageQuery = wanted;
  for (let page = 0; path; page += 1) {
    if (page === MAX_CSV_PAGES) {
      truncated = true;
      break;
    }
    const response = await api.request("GET", path, { query: pageQuery, accept: "text/csv" });
    filename = filename || filenameOf(response);
    const text = await response.text();
    parts.push(page === 0 ? text : text.slice(text.indexOf("\n") + 1));
    path = nextLink(response.headers.get("Link"));
    pageQuery = null; // the next link carries the whole query
  }
  const url = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
  const link = h("a", { href: url, download: filename, class: "visually-hidden" }, "download");
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(
    $("logs-status"),
    truncated
      ? `Downloaded the newest ${MAX_CSV_PAGES * CSV_PAGE} entries; narrow the time range for the rest.`
      : `Downloaded ${filename}.`,
  );
}

export function install() {
  $("logs-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load(0, event.submitter);
  });
  $("logs-clear").addEventListener("click", (event) => {
    $("logs-filter").reset();
    load(0, event.currentTarget);
  });
  $("logs-newer").addEventListener("click", (event) => load(offsetOf(links.previous), event.currentTarget));
  $("logs-older").addEventListener("click", (event) => load(offsetOf(links.next), event.currentTarget));
  $("logs-download").addEventListener("click", async (event) => {
    try {
      await busy(event.currentTarget, downloadCsv);
    } catch (failure) {
      showError(failure, $("logs-error"), FILTER_FIELDS);
    }
  });
}
