// /teacher: today's budget of the teacher's school, fired alerts, live groups, group links.
import { ApiError, api, claimsOf, dollars, el, forgetToken, setStatus, signIn, takeToken, linkProblem } from "./common.js";

const REFRESH_MS = 10000;
const $ = (id) => document.getElementById(id);
let token = await takeToken();
let school = null;

function cell(text) {
  return el("td", {}, text === undefined || text === null ? "—" : String(text));
}

function showUsage(usage) {
  const percent = Number(usage.percent_used || 0);
  const meter = $("meter");
  meter.setAttribute("aria-valuenow", String(percent));
  meter.setAttribute("aria-valuetext", `${percent} %`);
  meter.dataset.status = usage.status;
  meter.querySelector(".fill").style.width = `${Math.min(100, percent)}%`;
  $("percent").textContent = `${percent} %`;
  $("spent").textContent = dollars(usage.spent_usd);
  $("remaining").textContent = dollars(usage.remaining_usd);
  $("limit").textContent = dollars(usage.daily_limit_usd);
  $("budget-status").textContent = usage.status;
  const rows = Object.entries(usage.by_model || {}).map(([model, m]) =>
    el("tr", {}, cell(model), cell(Math.round(m.audio_seconds ?? 0)), cell(dollars(m.spent_usd))),
  );
  $("models").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 3 }, "Nothing spent today."))]));
}

function showAlerts(alerts) {
  const rows = (alerts.fired || []).map((a) =>
    el("tr", {}, cell(`${a.threshold} %`), cell(a.date), cell(a.fired_at), cell(`${a.percent_used} %`)),
  );
  $("alerts").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4 }, "No alert has fired."))]));
}

function showGroups(doc) {
  const rows = (doc.sessions || []).map((s) =>
    el(
      "tr",
      {},
      cell(s.group_id),
      cell(new Date(s.started_at).toLocaleTimeString()),
      cell(Math.round(s.audio_seconds)),
      cell(s.windows.ok),
      cell(s.windows.silence),
      cell(s.windows.dropped),
    ),
  );
  $("groups").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6 }, "No group is streaming now."))]));
}

async function refresh() {
  const base = `/api/v1/schools/${encodeURIComponent(school)}`;
  try {
    const [usage, alerts, sessions] = await Promise.all([
      api(token, `${base}/budget/usage`),
      api(token, `${base}/budget/alerts`),
      api(token, `${base}/sessions`),
    ]);
    showUsage(usage);
    showAlerts(alerts);
    showGroups(sessions);
    setStatus($("status"), `Updated ${new Date().toLocaleTimeString()}.`, "ok");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      forgetToken();
      setStatus($("status"), "Your sign-in has expired. Reload the page and sign in again.", "error");
      return false;
    }
    setStatus($("status"), `Could not refresh: ${error.message}`, "warn");
  }
  return true;
}

async function mint(event) {
  event.preventDefault();
  const group = $("group").value.trim();
  const keyterms = $("vocabulary").value.split(",").map((t) => t.trim()).filter(Boolean);
  $("mint-error").textContent = "";
  try {
    const made = await api(token, "/api/v1/tokens", {
      method: "POST",
      body: { group_id: group, ...(keyterms.length ? { keyterms } : {}) },
    });
    const link = el("a", { href: made.url, id: "group-link" }, made.url);
    const opens = new Date(made.url_expires_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const runs = new Date(made.expires_at).toLocaleString();
    $("link-out").replaceChildren(
      `Link for group ${group} (opens once, until ${opens}; the session may run until ${runs}): `,
      link,
    );
  } catch (error) {
    const detail = (error.details || []).map((d) => `${d.field}: ${d.problem}`).join("; ");
    $("mint-error").textContent = detail ? `${error.message} (${detail})` : error.message;
  }
}

async function init() {
  if (!token) token = await signIn($("sign-in"), linkProblem);
  const claims = claimsOf(token);
  school = claims.school_id;
  if (!school) {
    $("sign-in").replaceChildren(el("p", { role: "alert" }, "This token has no school. Use a teacher's or school admin's token."));
    return;
  }
  $("school-title").textContent = `Today's transcription · school ${school}`;
  document.querySelector("main").hidden = false;
  $("mint").addEventListener("submit", mint);
  if (await refresh()) {
    const timer = setInterval(async () => {
      if (!(await refresh())) clearInterval(timer);
    }, REFRESH_MS);
  }
}

init();
