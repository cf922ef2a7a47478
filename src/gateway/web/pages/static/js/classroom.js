// /classroom: the microphone to the gateway, transcripts back, every event explained.
import { claimsOf, el, forgetToken, setStatus, signIn, takeToken, linkProblem } from "./common.js";

const RECONNECT = new Set([1001, 1006, 1011, 1013]);
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
let socket = null;
let audio = null; // {context, stream, node}
let muted = false;
let wanted = false; // the user wants to be streaming
let attempts = 0;
let keepAlive = null;
let reconnectTimer = null;

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

function appendTranscript(message) {
  clearHearing(message.seq);
  if (message.status !== "ok" || !message.text) return;
  const entry = el("p", { "data-seq": message.seq }, message.text);
  log.append(entry);
  entry.scrollIntoView({ block: "nearest" });
}

async function openMicrophone() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/static/js/pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-frames");
  node.port.onmessage = (event) => {
    if (!muted && socket && socket.readyState === WebSocket.OPEN) socket.send(event.data);
  };
  source.connect(node);
  return { context, stream, node };
}

function closeMicrophone() {
  if (!audio) return;
  audio.node.port.onmessage = null;
  audio.stream.getTracks().forEach((track) => track.stop());
  audio.context.close();
  audio = null;
}

function listenUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/listen?sample_rate=16000&interim_results=true`;
}

function connect() {
  clearTimeout(reconnectTimer);
  let retryAfter = null;
  const ws = new WebSocket(listenUrl(), ["token", token]);
  socket = ws;
  say(attempts ? "Reconnecting…" : "Connecting…");
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (message.type) {
      case "Begin": {
        attempts = 0;
        const provider = message.config && message.config.provider;
        const where = provider === "local" ? " (local Whisper)" : provider === "simulated" ? " (simulated Whisper: not real words)" : "";
        say(`Listening${where}. Speak and your words appear below.`, "ok");
        break;
      }
      case "Interim":
        showInterim(message);
        break;
      case "Transcript":
        appendTranscript(message);
        break;
      case "Warning":
        say(WARNINGS[message.code] || "The transcription service reported a problem; it keeps going.", "warn");
        break;
      case "Budget":
        say(`Your school has used ${Math.round(message.percent_used)} % of today's transcription budget.`, "warn");
        break;
      case "Error":
        if (typeof message.retry_after === "number") retryAfter = message.retry_after;
        break;
      case "Termination":
        say(`Stopped. ${Math.round(message.audio_seconds)} s of audio, ${message.transcribed} parts transcribed.`, "info");
        break;
      default:
        break;
    }
  };
  ws.onclose = (event) => {
    socket = null;
    clearInterval(keepAlive);
    const known = CLOSE_REASONS[event.code] || `The connection closed (code ${event.code}).`;
    if (wanted && RECONNECT.has(event.code)) {
      attempts += 1;
      const backoff = Math.min(30, 2 ** Math.min(attempts - 1, 5));
      const wait = Math.max(backoff, retryAfter || 0);
      say(`${known} Next try in ${Math.round(wait)} s.`, "warn");
      reconnectTimer = setTimeout(connect, wait * 1000);
      return;
    }
    if (event.code !== 1000) say(known, event.code === 1000 ? "info" : "error");
    if (event.code === 4001 || event.code === 4008) forgetToken();
    finish();
  };
  ws.onopen = () => {
    keepAlive = setInterval(() => {
      if (muted && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "KeepAlive" }));
    }, KEEPALIVE_MS);
  };
}

function finish() {
  wanted = false;
  closeMicrophone();
  startButton.disabled = false;
  stopButton.disabled = true;
  muteButton.disabled = true;
}

async function start() {
  startButton.disabled = true;
  try {
    audio = await openMicrophone();
  } catch {
    say("The microphone could not be opened. Allow it in the browser and press Start again.", "error");
    startButton.disabled = false;
    return;
  }
  wanted = true;
  attempts = 0;
  stopButton.disabled = false;
  muteButton.disabled = false;
  connect();
}

function stop() {
  wanted = false;
  stopButton.disabled = true;
  clearTimeout(reconnectTimer);
  if (socket && socket.readyState === WebSocket.OPEN) {
    say("Finishing the last transcripts…");
    socket.send(JSON.stringify({ type: "CloseStream" }));
  } else {
    finish();
    say("Stopped.");
  }
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
