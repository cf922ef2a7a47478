// /classroom: the microphone to the gateway through the client module (which resumes the
// session after a drop, re-sending the audio the gateway does not have), transcripts back,
// every event explained.
import { ListenStream, openMicrophone } from "/static/client/index.js";
import { claimsOf, el, forgetToken, setStatus, signIn, takeToken, linkProblem } from "./common.js";

const KEEPALIVE_MS = 5000;

/** What a close code means for a class, and whether to try again. */
export const CLOSE_REASONS = {
  1000: "Stopped. Every transcript has arrived.",
  1001: "The transcription service is restarting. Reconnecting…",
  1006: "The connection was lost. Reconnecting…",
  1007: "The microphone sent audio the service could not read. Press Start to try again.",
  1009: "The microphone sent too much audio at once. Press Start to try again.",
  1011: "The transcription service had a problem. Reconnecting…",
  1013: "The transcription service is busy. Reconnecting shortly…",
  4000: "This page asked for settings the service does not accept. Reload the page.",
  4001: "This link is not valid or has expired. Ask your teacher for a new link.",
  4003: "This account may not stream audio. Ask your teacher for a group link.",
  4008: "This session's time is over. Ask your teacher for a new link.",
  4009: "This group was opened on another device, so it stopped here.",
  4029: "Audio arrived faster than it can be transcribed. Press Start to try again.",
  4031: "Nothing was heard for a while, so the session stopped. Press Start to continue.",
  4402: "Your school's transcription budget for today is used up. Transcription is available again tomorrow.",
};

export const WARNINGS = {
  RATE_LIMITED: "The transcription service is busy; transcripts may be a little late.",
  STT_UNAVAILABLE: "The transcription service is not answering; audio is kept and will be transcribed when it is back.",
  UPSTREAM_REJECTED: "The transcription service refused this gateway's key. Tell your administrator.",
  BAD_MESSAGE: "The page sent a message the service did not understand.",
  RESUME_FAILED: "The connection was away too long to pick up where it was; a new session goes on from the last line, nothing is missing.",
};

const main = document.querySelector("main");
const statusNode = document.getElementById("status");
const log = document.getElementById("transcript");
const hearing = document.getElementById("hearing");
const hearingStable = hearing.querySelector(".stable");
const hearingTentative = hearing.querySelector(".tentative");
let hearingSeq = -1; // the window the Now hearing line is about
const startButton = document.getElementById("start");
const stopButton = document.getElementById("stop");
const muteButton = document.getElementById("mute");

let token = await takeToken();
let stream = null; // the ListenStream: one session, over as many connections as it takes
let microphone = null;
let muted = false;
let keepAlive = null;

function say(text, tone = "info") {
  setStatus(statusNode, text, tone);
}

// Live words of the window still open: settled words solid, the tail tentative. An Interim
// replaces the previous one; its window's Transcript replaces it in the log.
function showInterim(message) {
  if (message.seq < hearingSeq) return;
  hearingSeq = message.seq;
  const stable = message.stable_text || "";
  hearingStable.textContent = stable;
  hearingTentative.textContent = message.text.slice(stable.length).trim();
}

function clearHearing(seq) {
  if (seq < hearingSeq) return;
  hearingSeq = seq + 1;
  hearingStable.textContent = "";
  hearingTentative.textContent = "";
}

// The stream hands out each window once, in order, across its connections; a new session
// (after one that could not be resumed) starts its seq again, so the log goes by arrival.
function appendTranscript(message) {
  clearHearing(message.seq);
  if (message.status !== "ok" || !message.text) return;
  const entry = el("p", { "data-session": stream.sessionId, "data-seq": message.seq }, message.text);
  log.append(entry);
  entry.scrollIntoView({ block: "nearest" });
}

function listenUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/listen`;
}

function began({ detail: begin }) {
  const provider = begin.config && begin.config.provider;
  const where = provider === "local" ? " (local Whisper)" : provider === "simulated" ? " (simulated Whisper: not real words)" : "";
  const back = begin.resumed ? "Reconnected; nothing was lost. " : "";
  say(`${back}Listening${where}. Speak and your words appear below.`, "ok");
}

function stateChanged({ detail }) {
  if (detail.state === "connecting") say("Connecting…");
  if (detail.state !== "reconnecting") return;
  if (detail.delay === undefined) {
    say("Reconnecting…", "warn");
    return;
  }
  const code = detail.closeCode === null ? 1006 : detail.closeCode;
  const known = CLOSE_REASONS[code] || `The connection closed (code ${code}). Reconnecting…`;
  say(`${known} Next try in ${Math.max(1, Math.ceil(detail.delay))} s.`, "warn");
}

function ended({ detail }) {
  const code = detail.closeCode;
  if (detail.problem) {
    say("The transcription service cannot be reached. Press Start to try again.", "error");
  } else if (code === null) {
    say("Stopped.");
  } else if (code !== 1000) {
    say(CLOSE_REASONS[code] || `The connection closed (code ${code}).`, "error");
  }
  if (code === 4001 || code === 4008) forgetToken();
  finish();
}

function watch(listen) {
  listen.addEventListener("state", stateChanged);
  listen.addEventListener("Begin", began);
  listen.addEventListener("Interim", (event) => showInterim(event.detail));
  listen.addEventListener("Transcript", (event) => appendTranscript(event.detail));
  listen.addEventListener("Warning", ({ detail }) =>
    say(WARNINGS[detail.code] || "The transcription service reported a problem; it keeps going.", "warn"),
  );
  listen.addEventListener("Budget", ({ detail }) =>
    say(`Your school has used ${Math.round(detail.percent_used)} % of today's transcription budget.`, "warn"),
  );
  listen.addEventListener("Termination", ({ detail }) =>
    say(`Stopped. ${Math.round(detail.audio_seconds)} s of audio, ${detail.transcribed} parts transcribed.`, "info"),
  );
  listen.addEventListener("end", ended);
}

function closeMicrophone() {
  if (microphone) microphone.stop();
  microphone = null;
}

function finish() {
  clearInterval(keepAlive);
  closeMicrophone();
  stream = null;
  startButton.disabled = false;
  stopButton.disabled = true;
  muteButton.disabled = true;
}

async function start() {
  startButton.disabled = true;
  const listen = new ListenStream(listenUrl(), { token: () => token, interimResults: true });
  try {
    microphone = await openMicrophone({ onFrame: (frame) => muted || listen.send(frame) });
  } catch {
    say("The microphone could not be opened. Allow it in the browser and press Start again.", "error");
    startButton.disabled = false;
    return;
  }
  stream = listen;
  watch(listen);
  stopButton.disabled = false;
  muteButton.disabled = false;
  keepAlive = setInterval(() => muted && listen.keepAlive(), KEEPALIVE_MS);
  listen.start();
}

function stop() {
  stopButton.disabled = true;
  closeMicrophone(); // nothing after Stop is sent
  say("Finishing the last transcripts…");
  stream.finish(); // still connecting, or away after a drop: once connected
}

function toggleMute() {
  muted = !muted;
  muteButton.setAttribute("aria-pressed", String(muted));
  muteButton.textContent = muted ? "Unmute" : "Mute";
  say(muted ? "Muted: nothing is sent, the session stays open." : "Listening.", muted ? "warn" : "ok");
}

async function init() {
  if (!token) token = await signIn(document.getElementById("sign-in"), linkProblem);
  const claims = claimsOf(token);
  const group = claims.group_id ? `Group ${claims.group_id}` : "No group in this link";
  document.getElementById("group").textContent = group;
  main.hidden = false;
  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", stop);
  muteButton.addEventListener("click", toggleMute);
  say("Press Start to begin.");
}

init();
