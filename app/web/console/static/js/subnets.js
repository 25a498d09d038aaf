// A key's allowed subnets (its CIDR allow list), in a dialog opened from the key's row: add
// one (the API's validation message beside the field), remove one.

import * as api from "./api.js";
import * as dialogs from "./dialogs.js";
import { $, busy, clear, h, hidden, resetMessages, showError } from "./dom.js";
import { canWrite } from "./session.js";

let managed = null; // the key whose subnets are shown, as the API last returned it
let row = null; // its row in the keys table (keys.js), which draws every change

function render() {
  const list = $("subnets-list");
  clear(list);
  if (!managed) return;
  $("subnets-title").textContent = `Allowed subnets of ${managed.name}`;
  const cidrs = managed.allowedSourceIps || [];
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
              { type: "button", class: "link", onclick: (event) => remove(event, cidr) },
              "Remove",
              hidden(` ${cidr}`),
            )
          : null,
      ),
    );
  }
}

export function open(key, keyRow) {
  managed = key;
  row = keyRow;
  $("subnets-form").reset();
  dialogs.open($("subnets-dialog"));
  render();
  $("subnet-cidr").focus();
}

function changed(updated) {
  managed = { ...managed, ...updated };
  row.changed(updated);
  render();
  $("subnet-cidr").focus();
}

const path = () => `/v1/api-keys/${api.segment(managed.name)}/allowed-source-ips`;

async function add(event) {
  event.preventDefault();
  resetMessages($("subnets-dialog"));
  const cidr = $("subnet-cidr").value.trim();
  try {
    const submit = $("subnets-form").querySelector("button[type=submit]");
    const updated = await busy(submit, () => api.post(path(), { cidr }));
    $("subnets-form").reset();
    changed(updated);
  } catch (failure) {
    showError(failure, $("subnets-error"), { cidr: "subnet-cidr" });
  }
}

async function remove(event, cidr) {
  resetMessages($("subnets-dialog"));
  try {
    changed(await busy(event.currentTarget, () => api.del(path(), { cidr })));
  } catch (failure) {
    showError(failure, $("subnets-error"));
  }
}

export function forget() {
  managed = null;
  row = null;
  clear($("subnets-list"));
  $("subnets-title").textContent = "Allowed subnets";
  $("subnets-summary").textContent = "";
}

export function install() {
  $("subnets-form").addEventListener("submit", add);
}
