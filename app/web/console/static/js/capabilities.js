// What this keyledger's API offers, read from its OpenAPI document (public, same origin).
// The console shows a control only when the API has the operation behind it, so features
// added to the API later (key lifecycle, docs/console.md) appear without touching the rest.

let document_ = { paths: {}, components: { schemas: {} } };

export async function load() {
  try {
    const response = await fetch("/v1/openapi.json", {
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
    if (response.ok) document_ = await response.json();
  } catch {
    // Without the document the console still offers everything the API had at first.
  }
}

/** The API has ``method`` on ``path`` (an OpenAPI path template, e.g. /v1/api-keys/{name}). */
export function has(method, path) {
  const operations = document_.paths?.[path];
  return Boolean(operations && operations[method.toLowerCase()]);
}

function schema(name) {
  return document_.components?.schemas?.[name] || {};
}

/** The request body of ``POST /v1/api-keys`` accepts this field. */
export function keyCreateAccepts(field) {
  return Boolean(schema("ApiKeyCreate").properties?.[field]);
}

/** Every role a user may have, as the API spells them. */
export function roles() {
  const listed = schema("UserCreate").properties?.role?.enum;
  return Array.isArray(listed) && listed.length
    ? listed
    : ["Owner", "Member", "Viewer", "Logs Viewer", "Manager", "Billing Admin"];
}
