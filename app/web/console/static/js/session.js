// Who signed in, and what the console shows them. The API decides every call by the user's
// current role; this only hides what the role could not use, and a 403 still shows as a message.

import * as api from "./api.js";
import { when } from "./dom.js";

/** Every role a user may have (keyledger.domain.roles.Role), in the API's order. */
export const ROLES = ["Owner", "Member", "Viewer", "Logs Viewer", "Manager", "Billing Admin"];

/** Roles whose users may hold keys (keyledger.domain.roles.KEY_HOLDER_ROLES). */
export const KEY_HOLDER_ROLES = ["Owner", "Viewer", "Logs Viewer"];

/** The tabs each role sees, in order. */
export const ROLE_VIEWS = {
  Owner: ["keys", "users", "logs", "history"],
  Viewer: ["keys", "users", "logs"],
  "Logs Viewer": ["logs", "history"],
};

let current = null;

export const identity = () => current;
export const canWrite = () => current !== null && current.role === "Owner";

/**
 * Find out whose keys these are. ``GET /v1/`` names the key and its user (Owners and
 * Viewers); a Logs Viewer may read only the system log and the history, so a 403 there
 * followed by a 200 from the system log means a Logs Viewer. Either answer carries
 * ``X-Api-Key-Expires`` when the keys stop working at some instant (an expiry, or a
 * rotation's grace period of the secret or the account key).
 */
export async function identify() {
  try {
    const response = await api.request("GET", "/v1/");
    const key = (await response.json()).account.key;
    // The key's user, by email (unique in an account, whatever the case).
    const email = key.owner.email.toLowerCase();
    const user = (await api.get("/v1/users")).users.find((u) => u.email.toLowerCase() === email);
    if (!user) throw new Error("The key's user was not found; try again.");
    current = {
      role: user.role,
      userName: user.name,
      keyName: key.name,
      accountName: key.accountName,
      keysExpire: response.headers.get("X-Api-Key-Expires"),
    };
  } catch (error) {
    if (error.name !== "ApiError" || error.status !== 403) throw error;
    const response = await api.request("GET", "/v1/logs", { query: { limit: 1 } });
    current = {
      role: "Logs Viewer",
      userName: null,
      keyName: null,
      accountName: null,
      keysExpire: response.headers.get("X-Api-Key-Expires"),
    };
  }
  if (!ROLE_VIEWS[current.role]) {
    const role = current.role;
    current = null;
    throw new Error(`The role ${role} has no use of the console.`);
  }
  return current;
}

export function end() {
  current = null;
  api.forgetKeys();
}

export function describeIdentity(who) {
  if (who.userName) {
    return `${who.userName} (${who.role}) with key ${who.keyName}, ${who.accountName}`;
  }
  return `Signed in with a ${who.role} key`;
}

/** A warning when the keys signed in with stop working at some instant, else "". */
export function describeExpiry(who) {
  if (!who.keysExpire) return "";
  return `These keys stop working at ${when(who.keysExpire)} UTC.`;
}
