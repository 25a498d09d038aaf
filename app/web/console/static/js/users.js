// The "Users" tab: the account's users, adding one, changing a role, removing one. The API's
// refusals (the last Owner, an email already in use) appear beside what caused them.

import * as api from "./api.js";
import * as dialogs from "./dialogs.js";
import { $, busy, clear, h, hidden, loadList, plural, resetMessages, say, showError } from "./dom.js";
import { ROLES, canWrite } from "./session.js";

let users = [];

export function show() {
  return loadList("users-status", "users-error", "Loading the users...", async () => {
    users = (await api.get("/v1/users")).users;
    render();
    return plural(users.length, "user");
  });
}

export function forget() {
  users = [];
  clear($("users-table").tHead.rows[0]);
  clear($("users-table").tBodies[0]);
  say($("users-status"), "");
  $("users-error").textContent = "";
}

function roleOptions(selected) {
  return ROLES.map((role) => h("option", { value: role, selected: role === selected }, role));
}

function render() {
  const write = canWrite();
  const head = $("users-table").tHead.rows[0];
  clear(head);
  for (const title of ["Name", "Email", "Role", "Has an API key"]) {
    head.append(h("th", { scope: "col" }, title));
  }
  if (write) head.append(h("th", { scope: "col" }, "Actions"));
  const body = $("users-table").tBodies[0];
  clear(body);
  for (const user of users) {
    const row = h(
      "tr",
      { "data-user": user.id },
      h("td", {}, user.name),
      h("td", {}, user.email),
      h("td", {}, user.role),
      h("td", {}, user.hasApiKey ? "yes" : "no"),
    );
    if (write) row.append(h("td", {}, actionsFor(user)));
    body.append(row);
  }
}

function actionsFor(user) {
  const slot = h("p", { class: "error", role: "alert" });
  const selectId = `role-of-${user.id}`;
  const select = h("select", { id: selectId }, roleOptions(user.role));
  const change = h(
    "button",
    {
      type: "button",
      "data-focus-key": `Change role ${user.id}`,
      onclick: (event) => changeRole(user, select.value, slot, event.currentTarget),
    },
    "Change role",
    hidden(` of ${user.name}`),
  );
  const remove = h(
    "button",
    {
      type: "button",
      class: "danger",
      "data-focus-key": `Delete ${user.id}`,
      onclick: () => confirmDelete(user),
    },
    "Delete",
    hidden(` ${user.name}`),
  );
  return [
    h(
      "div",
      { class: "row-actions" },
      h("label", { for: selectId, class: "visually-hidden" }, `Role of ${user.name}`),
      select,
      change,
      remove,
    ),
    slot,
  ];
}

async function changeRole(user, role, slot, button) {
  slot.textContent = "";
  if (role === user.role) {
    slot.textContent = `${user.name} already has the role ${role}.`;
    return;
  }
  try {
    const updated = await busy(button, () =>
      api.put(`/v1/users/${api.segment(user.id)}`, { role }),
    );
    users = users.map((u) => (u.id === user.id ? { ...u, ...updated } : u));
    render();
    const done = `${user.name} is now ${updated.role}.`;
    say($("users-status"), updated.notice || done, updated.notice ? "notice" : "");
    document.querySelector(`[data-focus-key="${CSS.escape(`Change role ${user.id}`)}"]`)?.focus();
  } catch (failure) {
    showError(failure, slot);
  }
}

function confirmDelete(user) {
  dialogs.confirm({
    title: `Delete user ${user.name}?`,
    text: `${user.name} <${user.email}> is removed from the account, and every API key they hold is deleted with them.`,
    action: `Delete ${user.name}`,
    run: async () => {
      const body = await api.del(`/v1/users/${api.segment(user.id)}`);
      users = users.filter((u) => u.id !== user.id);
      render();
      say($("users-status"), body?.notice || `User ${user.name} deleted.`, body?.notice ? "notice" : "");
    },
  });
}

const ADD_USER_FIELDS = { name: "user-name", email: "user-email", role: "user-role" };

function openAddUser() {
  const select = $("user-role");
  clear(select);
  select.append(...roleOptions("Viewer"));
  $("add-user-form").reset();
  dialogs.open($("add-user-dialog"));
  $("user-name").focus();
}

async function addUser(event) {
  event.preventDefault();
  const form = $("add-user-form");
  resetMessages(form);
  const body = {
    name: $("user-name").value.trim(),
    email: $("user-email").value.trim(),
    role: $("user-role").value,
  };
  try {
    const added = await busy(form.querySelector("button[type=submit]"), () =>
      api.post("/v1/users", body),
    );
    $("add-user-dialog").close();
    form.reset();
    users = [...users.filter((u) => u.id !== added.id), added].sort((a, b) =>
      a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1,
    );
    render();
    say($("users-status"), added.notice || `User ${added.name} added.`, added.notice ? "notice" : "");
  } catch (failure) {
    showError(failure, $("add-user-error"), ADD_USER_FIELDS);
  }
}

export function install() {
  $("add-user").addEventListener("click", openAddUser);
  $("add-user-form").addEventListener("submit", addUser);
}
