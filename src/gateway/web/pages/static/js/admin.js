// /admin: a school's budget settings, with the API's validation shown by each field; for a
// platform admin, every school ranked by percent used and any school's settings.
import { ApiError, api, claimsOf, dollars, el, setStatus, signIn, takeToken, linkProblem } from "./common.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["daily_limit_usd", "timezone", "alert_thresholds", "webhook_url"];
// The API's field names, mapped to the form's.
const ALIASES = { thresholds: "alert_thresholds" };
let token = await takeToken();
let school = null;

function zones(current) {
  const names = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const all = new Set(["UTC", ...names]);
  if (current) all.add(current);
  $("timezone").replaceChildren(...[...all].sort().map((z) => el("option", { value: z, selected: z === current }, z)));
}

function clearErrors() {
  for (const field of FIELDS) {
    $(`${field}-error`).textContent = "";
    $(field).removeAttribute("aria-invalid");
  }
}

function showErrors(error) {
  let placed = false;
  for (const detail of error.details || []) {
    const field = ALIASES[detail.field] || detail.field;
    if (!FIELDS.includes(field)) continue;
    $(`${field}-error`).textContent = detail.problem;
    $(field).setAttribute("aria-invalid", "true");
    placed = true;
  }
  setStatus($("status"), placed ? "Not saved: check the fields marked below." : `Not saved: ${error.message}`, "error");
}

async function load(id) {
  school = id;
  clearErrors();
  const [config, alerts] = await Promise.all([
    api(token, `/api/v1/schools/${encodeURIComponent(id)}/budget`),
    api(token, `/api/v1/schools/${encodeURIComponent(id)}/budget/alerts`),
  ]);
  $("settings-title").textContent = `School settings · ${id}`;
  $("daily_limit_usd").value = config.daily_limit_usd;
  zones(config.timezone);
  $("alert_thresholds").value = (config.alert_thresholds || []).join(", ");
  $("webhook_url").value = "";
  $("webhook_url").placeholder = alerts.webhook_configured ? "configured (hidden)" : "none";
  return config;
}

function parsed() {
  const limit = $("daily_limit_usd").value.trim();
  const thresholds = $("alert_thresholds").value.split(",").map((t) => t.trim()).filter(Boolean);
  return {
    daily_limit_usd: limit === "" || Number.isNaN(Number(limit)) ? limit : Number(limit),
    timezone: $("timezone").value,
    alert_thresholds: thresholds.map((t) => (/^-?\d+$/.test(t) ? Number(t) : t)),
  };
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const base = `/api/v1/schools/${encodeURIComponent(school)}/budget`;
  try {
    const config = await api(token, base, { method: "PUT", body: parsed() });
    const webhook = $("webhook_url").value.trim();
    if (webhook) await api(token, `${base}/alerts`, { method: "PUT", body: { webhook_url: webhook } });
    await load(school);
    setStatus(
      $("status"),
      `Saved. Daily limit ${dollars(config.daily_limit_usd)}, time zone ${config.timezone}, alerts at ${config.alert_thresholds.join(", ")} %.`,
      "ok",
    );
    if (!$("fleet").hidden) await fleet();
  } catch (error) {
    if (error instanceof ApiError) showErrors(error);
    else setStatus($("status"), "Not saved.", "error");
  }
}

async function fleet() {
  const doc = await api(token, "/api/v1/budget/usage");
  $("scopes").replaceChildren(
    ...doc.scopes.map((s) =>
      el("tr", {}, el("td", {}, s.scope), el("td", {}, dollars(s.spent_usd)), el("td", {}, dollars(s.daily_limit_usd)), el("td", {}, `${s.percent_used} %`)),
    ),
  );
  const rows = doc.schools.map((s) =>
    el(
      "tr",
      {},
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => open(s.school_id) }, s.school_id)),
      el("td", {}, dollars(s.spent_usd)),
      el("td", {}, dollars(s.daily_limit_usd)),
      el("td", {}, `${s.percent_used} %`),
      el("td", {}, s.status),
    ),
  );
  $("schools").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, "No school has spent anything today."))]));
}

async function open(id) {
  try {
    await load(id);
    setStatus($("status"), `Editing school ${id}.`, "info");
    $("daily_limit_usd").focus();
  } catch (error) {
    setStatus($("status"), `School ${id}: ${error.message}`, "error");
  }
}

async function init() {
  if (!token) token = await signIn($("sign-in"), linkProblem);
  const claims = claimsOf(token);
  document.querySelector("main").hidden = false;
  $("settings").addEventListener("submit", save);
  if (claims.role === "platform_admin") {
    $("fleet").hidden = false;
    $("pick").addEventListener("submit", (event) => {
      event.preventDefault();
      open($("pick-school").value.trim());
    });
    try {
      await fleet();
    } catch (error) {
      setStatus($("status"), `Could not load the schools: ${error.message}`, "error");
    }
  }
  if (claims.school_id) await open(claims.school_id);
  else if (claims.role !== "platform_admin") setStatus($("status"), "This token has no school.", "error");
}

init();
