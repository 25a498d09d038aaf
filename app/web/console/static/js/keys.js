// The "API keys" tab: the account's secret keys, adding one (its secret shown once), each
// key's allowed subnets, and deleting a key.

import * as api from "./api.js";
import * as caps from "./capabilities.js";
import * as dialogs from "./dialogs.js";
import {
  $,
  busy,
  clear,
  h,
  hidden,
  loadList,
  plural,
  resetMessages,
  say,
  showError,
  utcFromInput,
  when,
} from "./dom.js";
import { canWrite, identity } from "./session.js";

/** Roles whose users may hold keys (keyledger.domain.roles.KEY_HOLDER_ROLES). */
export const KEY_HOLDER_ROLES = ["Owner", "Viewer", "Logs Viewer"];

let keys = [];
let users = new Map();
let managed = null; // the name of the key whose subnets dialog is open

const userLabel = (userId) => users.get(userId)?.name ?? userId;

function subnetsCell(key) {
  const cidrs = key.allowedSourceIps || [];
  if (cidrs.length === 0) return "any source";
  return h("ul", {}, cidrs.map((cidr) => h("li", {}, h("code", {}, cidr))));
}

function lastUsed(key) {
  if (!key.lastUsedTimestamp) return "never";
  const from = key.lastUsedSourceIp ? ` from ${key.lastUsedSourceIp}` : "";
  return `${when(key.lastUsedTimestamp)}${from}`;
}

// The table's columns. A column with a `field` is shown only when the API returns that field
// for some key: PHASE 2 (issue 9, the key's lifecycle) adds status, last use, expiry and
// description to the API, and these columns then appear (docs/console.md).
const COLUMNS = [
  { header: "Name", cell: (key) => h("span", { class: "mono" }, key.name) },
  { header: "User", cell: (key) => userLabel(key.userId) },
  { header: "Status", field: "status", cell: (key) => key.status },
  { header: "Created (UTC)", cell: (key) => when(key.createdTimestamp) },
  { header: "Last used (UTC)", field: "lastUsedTimestamp", cell: lastUsed },
  {
    header: "Expires (UTC)",
    field: "expiresTimestamp",
    cell: (key) => (key.expiresTimestamp ? when(key.expiresTimestamp) : "never"),
  },
  { header: "Description", field: "description", cell: (key) => key.description || "" },
  { header: "Allowed subnets", cell: subnetsCell },
];

// What an Owner can do to each key. An action that `needs` an API operation is offered only
// when the API's OpenAPI document has it: PHASE 2 (issue 9) adds rotate, disable and enable.
const ACTIONS = [
  { label: "Subnets", named: (key) => ` of ${key.name}`, run: openSubnets },
  {
    label: "Rotate",
    needs: ["POST", "/v1/api-keys/{name}/rotate"],
    named: (key) => ` ${key.name}`,
    run: openRotate,
  },
  {
    label: "Disable",
    needs: ["PUT", "/v1/api-keys/{name}"],
    when: (key) => key.status === "active",
    named: (key) => ` ${key.name}`,
    run: (key, slot, button) => setEnabled(key, false, slot, button),
  },
  {
    label: "Enable",
    needs: ["PUT", "/v1/api-keys/{name}"],
    when: (key) => key.status === "disabled",
    named: (key) => ` ${key.name}`,
    run: (key, slot, button) => setEnabled(key, true, slot, button),
  },
  { label: "Delete", named: (key) => ` ${key.name}`, run: confirmDelete },
];

// -- the list ---------------------------------------------------------------------------------
export function show() {
  return loadList("keys-status", "keys-error", "Loading the keys...", async () => {
    const [keyList, userList] = await Promise.all([api.get("/v1/api-keys"), api.get("/v1/users")]);
    keys = keyList.apiKeys;
    users = new Map(userList.users.map((user) => [user.id, user]));
    render();
    return plural(keys.length, "key");
  });
}

export function forget() {
  keys = [];
  users = new Map();
  managed = null;
  clear($("keys-table").tHead.rows[0]);
  clear($("keys-table").tBodies[0]);
  clear($("key-user"));
  clear($("subnets-list"));
  $("subnets-title").textContent = "Allowed subnets";
  $("rotate-title").textContent = "Rotate key";
  for (const id of ["subnets-summary", "rotate-summary", "keys-error"]) $(id).textContent = "";
  say($("keys-status"), "");
}

function render() {
  const columns = COLUMNS.filter((c) => !c.field || keys.some((key) => c.field in key));
  const write = canWrite();
  const head = $("keys-table").tHead.rows[0];
  clear(head);
  head.append(...columns.map((c) => h("th", { scope: "col" }, c.header)));
  if (write) head.append(h("th", { scope: "col" }, "Actions"));
  const body = $("keys-table").tBodies[0];
  clear(body);
  if (keys.length === 0) {
    const span = columns.length + (write ? 1 : 0);
    body.append(h("tr", {}, h("td", { colspan: span }, "No keys yet.")));
    return;
  }
  for (const key of keys) {
    const row = h("tr", { "data-key": key.name }, columns.map((c) => h("td", {}, c.cell(key))));
    if (write) row.append(h("td", {}, actionsFor(key)));
    body.append(row);
  }
}

function actionsFor(key) {
  const slot = h("p", { class: "error", role: "alert" });
  const buttons = ACTIONS.filter(
    (a) => (!a.needs || caps.has(...a.needs)) && (!a.when || a.when(key)),
  ).map((action) =>
    h(
      "button",
      {
        type: "button",
        class: action.label === "Delete" ? "danger" : null,
        "data-focus-key": `${action.label} ${key.name}`,
        onclick: (event) => {
          slot.textContent = "";
          action.run(key, slot, event.currentTarget);
        },
      },
      action.label,
      hidden(action.named(key)),
    ),
  );
  return [h("div", { class: "row-actions" }, buttons), slot];
}

function replaceKey(updated) {
  keys = keys.map((key) => (key.name === updated.name ? { ...key, ...updated } : key));
  render();
}

function noticeOf(body) {
  if (body && body.notice) say($("keys-status"), body.notice, "notice");
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
  for (const element of document.querySelectorAll("#add-key-form [data-capability]")) {
    const field = element.dataset.capability === "key-description" ? "description" : "expiresTimestamp";
    element.hidden = !caps.keyCreateAccepts(field);
  }
  $("add-key-form").reset();
  dialogs.open($("add-key-dialog"));
  $("key-name").focus();
}

async function addKey(event) {
  event.preventDefault();
  const form = $("add-key-form");
  resetMessages(form);
  const name = $("key-name").value.trim();
  const body = {
    name,
    userId: $("key-user").value,
    allowedSourceIps: $("key-subnets")
      .value.split(/[\s,]+/)
      .filter(Boolean),
  };
  if (caps.keyCreateAccepts("description") && $("key-description").value.trim()) {
    body.description = $("key-description").value.trim();
  }
  if (caps.keyCreateAccepts("expiresTimestamp") && $("key-expires").value) {
    body.expiresTimestamp = utcFromInput($("key-expires").value);
  }
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
  noticeOf(created);
  keys = [...keys.filter((key) => key.name !== created.name), created].sort((a, b) =>
    a.name < b.name ? -1 : 1,
  );
  render();
  await dialogs.showSecret(created.name, secret);
  await show();
  noticeOf(created);
}

// -- a key's allowed subnets ----------------------------------------------------------------
function renderSubnets() {
  const key = keys.find((k) => k.name === managed);
  const list = $("subnets-list");
  clear(list);
  if (!key) return;
  $("subnets-title").textContent = `Allowed subnets of ${key.name}`;
  const cidrs = key.allowedSourceIps || [];
  $("subnets-summary").textContent =
    cidrs.length === 0
      ? "No subnets: requests with this key are accepted from any address."
      : "Requests with this key are accepted only from these subnets.";
  for (const cidr of cidrs) {
    list.append(
      h(
        "li",
        {},
        h("code", {}, cidr),
        canWrite()
          ? h(
              "button",
              { type: "button", class: "link", onclick: (event) => removeSubnet(event, cidr) },
              "Remove",
              hidden(` ${cidr}`),
            )
          : null,
      ),
    );
  }
}

function openSubnets(key) {
  managed = key.name;
  $("subnets-form").reset();
  dialogs.open($("subnets-dialog"));
  renderSubnets();
  $("subnet-cidr").focus();
}

async function addSubnet(event) {
  event.preventDefault();
  const dialog = $("subnets-dialog");
  resetMessages(dialog);
  const cidr = $("subnet-cidr").value.trim();
  const path = `/v1/api-keys/${api.segment(managed)}/allowed-source-ips`;
  try {
    const updated = await busy($("subnets-form").querySelector("button[type=submit]"), () =>
      api.post(path, { cidr }),
    );
    $("subnets-form").reset();
    replaceKey(updated);
    renderSubnets();
    noticeOf(updated);
    $("subnet-cidr").focus();
  } catch (failure) {
    showError(failure, $("subnets-error"), { cidr: "subnet-cidr" });
  }
}

async function removeSubnet(event, cidr) {
  resetMessages($("subnets-dialog"));
  const path = `/v1/api-keys/${api.segment(managed)}/allowed-source-ips`;
  try {
    const updated = await busy(event.currentTarget, () => api.del(path, { cidr }));
    replaceKey(updated);
    renderSubnets();
    noticeOf(updated);
    $("subnet-cidr").focus();
  } catch (failure) {
    showError(failure, $("subnets-error"));
  }
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

// -- PHASE 2 (issue 9): rotate, disable, enable; offered only once the API has them --------------
let rotating = null;

function openRotate(key) {
  rotating = key.name;
  $("rotate-title").textContent = `Rotate ${key.name}`;
  $("rotate-summary").textContent =
    `A new secret replaces the current one of ${key.name}; the key keeps its name, user ` +
    "and subnets. The new secret is shown once.";
  $("rotate-form").reset();
  dialogs.open($("rotate-dialog"));
  $("rotate-grace").focus();
}

async function rotate(event) {
  event.preventDefault();
  resetMessages($("rotate-dialog"));
  const grace = Number.parseInt($("rotate-grace").value || "0", 10);
  let rotated;
  try {
    rotated = await busy($("rotate-form").querySelector("button[type=submit]"), () =>
      api.post(`/v1/api-keys/${api.segment(rotating)}/rotate`, { gracePeriodSeconds: grace }),
    );
  } catch (failure) {
    showError(failure, $("rotate-error"), { gracePeriodSeconds: "rotate-grace" });
    return;
  }
  $("rotate-dialog").close();
  const secret = rotated.secretKey;
  delete rotated.secretKey;
  replaceKey(rotated);
  await dialogs.showSecret(rotated.name, secret);
  await show();
}

async function setEnabled(key, enabled, slot, button) {
  try {
    const path = `/v1/api-keys/${api.segment(key.name)}`;
    const updated = await busy(button, () => api.put(path, { enabled }));
    replaceKey(updated);
    say($("keys-status"), `Key ${key.name} ${enabled ? "enabled" : "disabled"}.`);
    noticeOf(updated);
  } catch (failure) {
    showError(failure, slot);
  }
}

export function install() {
  $("add-key").addEventListener("click", openAddKey);
  $("add-key-form").addEventListener("submit", addKey);
  $("subnets-form").addEventListener("submit", addSubnet);
  $("rotate-form").addEventListener("submit", rotate);
}
