// The "API keys" tab: the account's secret keys with their lifecycle (status, last use,
// expiry, description), the keys unused for some days, adding a key (its secret shown once)
// and deleting one. A key's subnets are managed in subnets.js; rotating, disabling, enabling
// and editing it in lifecycle.js.

import * as api from "./api.js";
import * as dialogs from "./dialogs.js";
import {
  $,
  busy,
  clear,
  h,
  hidden,
  loadList,
  markInvalid,
  plural,
  resetMessages,
  say,
  showError,
  utcFromInput,
  whenCell,
} from "./dom.js";
import * as lifecycle from "./lifecycle.js";
import { KEY_HOLDER_ROLES, canWrite, identity } from "./session.js";
import * as subnets from "./subnets.js";

let keys = [];
let users = new Map();
let unusedForDays = null; // the filter the list was loaded with

const userLabel = (userId) => users.get(userId)?.name ?? userId;
const STATUS = { active: "Active", disabled: "Disabled", expired: "Expired" };
const note = (...children) => h("span", { class: "note" }, ...children);

function statusCell(key) {
  const grace = key.previousSecretExpiresTimestamp;
  return [
    h("span", { class: `state state-${key.status}` }, STATUS[key.status] ?? key.status),
    grace ? note("previous secret until ", whenCell(grace)) : null,
  ];
}

function lastUsedCell(key) {
  if (!key.lastUsedTimestamp) return "never";
  const from = key.lastUsedSourceIp;
  return [whenCell(key.lastUsedTimestamp), from ? note("from ", h("code", {}, from)) : null];
}

function subnetsCell(key) {
  const cidrs = key.allowedSourceIps || [];
  if (cidrs.length === 0) return "any source";
  return h("ul", {}, cidrs.map((cidr) => h("li", {}, h("code", {}, cidr))));
}

const COLUMNS = [
  { header: "Name", cell: (key) => h("span", { class: "mono key-name" }, key.name) },
  { header: "User", cell: (key) => userLabel(key.userId) },
  { header: "Status", cell: statusCell },
  { header: "Created (UTC)", cell: (key) => whenCell(key.createdTimestamp) },
  { header: "Last used (UTC)", cell: lastUsedCell },
  { header: "Expires (UTC)", cell: (key) => (key.expiresTimestamp ? whenCell(key.expiresTimestamp) : "never") },
  { header: "Allowed subnets", cell: subnetsCell },
  { header: "Description", cell: (key) => key.description || "" },
];

// What an Owner can do to each key; each button's accessible name ends with the key's name.
const ACTIONS = [
  { label: "Subnets", named: (key) => ` of ${key.name}`, run: (key, row) => subnets.open(key, row) },
  { label: "Edit", run: (key, row) => lifecycle.edit(key, row) },
  // An expired key is given a new expiry (Edit) before it can be rotated (the API's 409).
  { label: "Rotate", when: (key) => key.status !== "expired", run: (key, row) => lifecycle.rotate(key, row) },
  { label: "Disable", when: (key) => key.enabled, run: (key, row) => lifecycle.setEnabled(key, false, row) },
  { label: "Enable", when: (key) => !key.enabled, run: (key, row) => lifecycle.setEnabled(key, true, row) },
  { label: "Delete", danger: true, run: confirmDelete },
];

// -- the list ---------------------------------------------------------------------------------
const FILTER_FIELDS = { unusedForDays: "keys-unused" };

/** Load the keys (those unused for ``days`` days, or all) and draw them. */
export function show(days = unusedForDays) {
  return loadList(
    "keys-status",
    "keys-error",
    "Loading the keys...",
    async () => {
      const query = days ? { unusedForDays: days } : undefined;
      const [keyList, userList] = await Promise.all([
        api.get("/v1/api-keys", query),
        api.get("/v1/users"),
      ]);
      unusedForDays = days;
      keys = keyList.apiKeys;
      users = new Map(userList.users.map((user) => [user.id, user]));
      render();
      if (!days) return plural(keys.length, "key");
      return `${keys.length === 1 ? "1 key" : `${keys.length} keys`} unused for ${days} days or more.`;
    },
    FILTER_FIELDS,
  );
}

export function forget() {
  keys = [];
  users = new Map();
  unusedForDays = null;
  clear($("keys-table").tHead.rows[0]);
  clear($("keys-table").tBodies[0]);
  clear($("key-user"));
  $("keys-filter").reset();
  resetMessages($("keys-filter"));
  $("keys-error").textContent = "";
  say($("keys-status"), "");
  subnets.forget();
  lifecycle.forget();
}

function render() {
  const write = canWrite();
  const head = $("keys-table").tHead.rows[0];
  clear(head);
  head.append(...COLUMNS.map((c) => h("th", { scope: "col" }, c.header)));
  if (write) head.append(h("th", { scope: "col" }, "Actions"));
  const body = $("keys-table").tBodies[0];
  clear(body);
  if (keys.length === 0) {
    const span = COLUMNS.length + (write ? 1 : 0);
    const none = unusedForDays ? `No key unused for ${unusedForDays} days or more.` : "No keys yet.";
    body.append(h("tr", {}, h("td", { colspan: span }, none)));
    return;
  }
  for (const key of keys) {
    const row = h("tr", { "data-key": key.name }, COLUMNS.map((c) => h("td", {}, c.cell(key))));
    if (write) row.append(h("td", {}, actionsFor(key)));
    body.append(row);
  }
}

function actionsFor(key) {
  const slot = h("p", { class: "error", role: "alert" });
  const buttons = ACTIONS.filter((a) => !a.when || a.when(key)).map((action) =>
    h(
      "button",
      {
        type: "button",
        class: action.danger ? "danger" : null,
        "data-focus-key": `${action.label} ${key.name}`,
        onclick: (event) => {
          slot.textContent = "";
          action.run(key, rowOf(key, slot, event.currentTarget));
        },
      },
      action.label,
      hidden(action.named ? action.named(key) : ` ${key.name}`),
    ),
  );
  return [h("div", { class: "row-actions" }, buttons), slot];
}

/** What an action may do to its row: show an error, and draw the key the API returned. */
function rowOf(key, slot, button) {
  return {
    slot,
    button,
    /** Draw ``updated``, say ``message``, and put the focus on the row's ``focusOn`` button. */
    changed(updated, message = "", focusOn = null) {
      keys = keys.map((k) => (k.name === updated.name ? { ...k, ...updated } : k));
      render();
      if (message) say($("keys-status"), message);
      noticeOf(updated);
      if (focusOn) {
        const focusKey = CSS.escape(`${focusOn} ${key.name}`);
        document.querySelector(`[data-focus-key="${focusKey}"]`)?.focus();
      }
    },
  };
}

function noticeOf(body) {
  if (body && body.notice) say($("keys-status"), body.notice, "notice");
}

function filter(event) {
  event.preventDefault();
  resetMessages($("keys-filter"));
  $("keys-error").textContent = "";
  const input = $("keys-unused");
  if (input.validity.badInput) {
    markInvalid("keys-unused", "A whole number of days.");
    input.focus();
    return;
  }
  busy(event.submitter, () => show(input.value.trim() || null));
}

// -- adding a key -------------------------------------------------------------------------------
const ADD_KEY_FIELDS = {
  name: "key-name",
  userId: "key-user",
  allowedSourceIps: "key-subnets",
  description: "key-description",
  expiresTimestamp: "key-expires",
};

function openAddKey() {
  const select = $("key-user");
  clear(select);
  const eligible = [...users.values()].filter((user) => KEY_HOLDER_ROLES.includes(user.role));
  select.append(
    h("option", { value: "" }, eligible.length ? "Choose a user" : "No user may hold a key"),
    ...eligible.map((user) => h("option", { value: user.id }, `${user.name} (${user.role}, ${user.email})`)),
  );
  $("add-key-form").reset();
  dialogs.open($("add-key-dialog"));
  $("key-name").focus();
}

async function addKey(event) {
  event.preventDefault();
  const form = $("add-key-form");
  resetMessages(form);
  const body = {
    name: $("key-name").value.trim(),
    userId: $("key-user").value,
    allowedSourceIps: $("key-subnets")
      .value.split(/[\s,]+/)
      .filter(Boolean),
  };
  const description = $("key-description").value.trim();
  if (description) body.description = description;
  if ($("key-expires").value) body.expiresTimestamp = utcFromInput($("key-expires").value);
  let created;
  try {
    created = await busy(form.querySelector("button[type=submit]"), () => api.post("/v1/api-keys", body));
  } catch (failure) {
    showError(failure, $("add-key-error"), ADD_KEY_FIELDS);
    return;
  }
  $("add-key-dialog").close();
  form.reset();
  const secret = created.secretKey;
  delete created.secretKey;
  keys = [...keys.filter((key) => key.name !== created.name), created].sort((a, b) =>
    a.name < b.name ? -1 : 1,
  );
  render();
  noticeOf(created);
  await dialogs.showSecret(created.name, secret);
  await show();
  noticeOf(created);
}

// -- deleting ------------------------------------------------------------------------------------
function confirmDelete(key) {
  const own = identity()?.keyName === key.name;
  dialogs.confirm({
    title: `Delete API key ${key.name}?`,
    text:
      `Requests with the key ${key.name} fail from the next one on, and it cannot be restored.` +
      (own ? " This is the key you signed in with: the console stops working with it." : ""),
    action: `Delete ${key.name}`,
    run: async () => {
      const body = await api.del(`/v1/api-keys/${api.segment(key.name)}`);
      keys = keys.filter((k) => k.name !== key.name);
      render();
      say($("keys-status"), `Key ${key.name} deleted.`);
      noticeOf(body);
    },
  });
}

export function install() {
  $("add-key").addEventListener("click", openAddKey);
  $("add-key-form").addEventListener("submit", addKey);
  $("keys-filter").addEventListener("submit", filter);
  $("keys-all").addEventListener("click", (event) => {
    $("keys-filter").reset();
    resetMessages($("keys-filter"));
    busy(event.currentTarget, () => show(null));
  });
  subnets.install();
  lifecycle.install();
}
