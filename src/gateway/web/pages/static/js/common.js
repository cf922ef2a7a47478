// Shared by every page: the token (from the URL fragment, kept in sessionStorage, never in a
// URL sent to the server), the sign-in form, calls to the HTTP API, small DOM helpers.

const KEY = "stt-gateway-token";

/** Why the link did not sign the page in (a used or expired code), or null. */
export let linkProblem = null;

/**
 * The page's token: redeemed from a single-use `#code=…` (links the gateway makes), taken
 * from `#token=…` (links an integrator builds), or kept from before. The fragment is removed
 * from the address bar first, so nothing reusable stays in the page's URL.
 */
export async function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("code");
  const given = fragment.get("token");
  if (code || given) history.replaceState(null, "", location.pathname + location.search);
  if (given) sessionStorage.setItem(KEY, given);
  if (code) {
    const token = await redeem(code);
    if (token) sessionStorage.setItem(KEY, token);
    else {
      sessionStorage.removeItem(KEY);
      linkProblem = "This link was already used or has expired. Ask your teacher for a new link.";
    }
  }
  return sessionStorage.getItem(KEY);
}

async function redeem(code) {
  try {
    const response = await fetch("/api/v1/tokens/redeem", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code }),
    });
    if (!response.ok) return null;
    return (await response.json()).token || null;
  } catch {
    return null;
  }
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

/** The token's claims, read without verifying (the server verifies); {} if unreadable. */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

/** Create an element: el("p", {class: "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Without a token: a form with "Access token" and "Sign in"; resolves with the token. */
export function signIn(container, why) {
  return new Promise((resolve) => {
    const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
    const form = el(
      "form",
      { class: "card", "aria-labelledby": "sign-in-title" },
      el("h2", { id: "sign-in-title" }, "Sign in"),
      why ? el("p", { role: "alert" }, why) : null,
      el("p", {}, "Open the link your school gave you, or paste an access token."),
      el("label", { for: "token" }, "Access token"),
      input,
      el("button", { type: "submit" }, "Sign in"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(KEY, token);
      form.remove();
      resolve(token);
    });
    container.replaceChildren(form);
    input.focus();
  });
}

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

/** Call the HTTP API with the page's token; JSON in, JSON out, errors as ApiError. */
export async function api(token, path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new ApiError(0, "NETWORK", "The gateway cannot be reached. Check the connection.");
  }
  let doc = null;
  try {
    doc = await response.json();
  } catch {
    doc = null;
  }
  if (!response.ok) {
    const error = (doc && doc.error) || {};
    throw new ApiError(response.status, error.code || "HTTP_" + response.status, error.message || response.statusText, error.details);
  }
  return doc;
}

export function dollars(value) {
  return typeof value === "number" ? `$${value.toFixed(value < 1 ? 4 : 2)}` : "—";
}

export function setStatus(node, text, tone = "info") {
  node.textContent = text;
  node.dataset.tone = tone;
}
