// The only module that talks to the API. The two keys live in this module's memory and
// nowhere else: not in localStorage, sessionStorage, cookies or URLs. Every call is an
// ordinary API request with both headers, so the same policies, rate limits and audit apply
// to the console as to any client.

const ACCOUNT_KEY_HEADER = "x-api-key";
const SECRET_KEY_HEADER = "x-api-secret-key";

let keys = null;

export function useKeys(accountKey, secretKey) {
  keys = { accountKey, secretKey };
}

export function forgetKeys() {
  keys = null;
}

/** A refused or failed call, with its explanation in words (``message``). */
export class ApiError extends Error {
  constructor(status, error = {}, { retryAfter = null, requestId = null } = {}) {
    super(describe(status, error, retryAfter, requestId));
    this.name = "ApiError";
    this.status = status;
    this.code = error.code || null;
    this.description = error.description || "";
    this.fields = error.fields || {};
    this.retryAfter = retryAfter;
  }
}

function seconds(n) {
  return n === 1 ? "1 second" : `${n} seconds`;
}

/** What a status means to the person using the console. */
export function describe(status, error = {}, retryAfter = null, requestId = null) {
  const said = error.description || "";
  switch (status) {
    case 0:
      return "The keyledger service could not be reached. Check the connection and try again.";
    case 400: {
      const fields = Object.entries(error.fields || {});
      if (fields.length === 0) return `The request was refused: ${said}`;
      const listed = fields.map(([name, messages]) => `${name}: ${messages.join(" ")}`);
      return `The request was refused. ${listed.join("; ")}`;
    }
    case 401:
      return (
        "The keys were not accepted (401): check the account key and the secret key. " +
        "A key that was deleted, or an account key that was rotated, no longer works."
      );
    case 403:
      return (
        "Not allowed (403): your user's role does not permit this, or this address is " +
        "not in your key's allowed subnets."
      );
    case 404:
      return `Not found (404): ${said || "it may have been deleted meanwhile."} Reload the list.`;
    case 409:
      return `Refused (409): ${said}`;
    case 413:
      return "The request is too large (413).";
    case 429: {
      const wait = retryAfter ? `wait ${seconds(retryAfter)}` : "wait a moment";
      if (error.code === "too_many_changes") {
        // The account's budget of changes a minute (not this key's rate limit).
        const budget = said || "the account's budget of changes for this minute is spent";
        return `Too many changes (429): ${budget}. Nothing was changed: ${wait} and try again.`;
      }
      return `Too many requests (429): ${wait} and try again. ${said}`.trim();
    }
    case 503:
      return (
        "The service is unavailable (503): its storage cannot be reached. " +
        "Nothing was changed; try again in a moment."
      );
    default: {
      const id = requestId ? ` Quote request id ${requestId} to the operator.` : "";
      return `The service failed (${status}): ${said || "unexpected error"}.${id}`;
    }
  }
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}${path.includes("?") ? "&" : "?"}${text}` : path;
}

/** Send one request; resolve to the Response when it succeeded, else throw an ApiError. */
export async function request(method, path, { body, query, accept = "application/json" } = {}) {
  if (keys === null) throw new ApiError(401);
  const headers = {
    Accept: accept,
    [ACCOUNT_KEY_HEADER]: keys.accountKey,
    [SECRET_KEY_HEADER]: keys.secretKey,
  };
  const init = {
    method,
    headers,
    credentials: "omit",
    cache: "no-store",
    redirect: "error",
    referrerPolicy: "no-referrer",
  };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(withQuery(path, query), init);
  } catch {
    throw new ApiError(0);
  }
  if (response.ok) return response;
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    error = {};
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  throw new ApiError(response.status, error, {
    retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
    requestId: response.headers.get("X-Request-Id"),
  });
}

/** A JSON call: the decoded body (null for 204). A 202 body carries ``notice``. */
export async function json(method, path, options = {}) {
  const response = await request(method, path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query) => json("GET", path, { query });
export const post = (path, body) => json("POST", path, { body });
export const put = (path, body) => json("PUT", path, { body });
export const del = (path, query) => json("DELETE", path, { query });

/** Path segment for a name or id typed by a person. */
export const segment = (value) => encodeURIComponent(value);
