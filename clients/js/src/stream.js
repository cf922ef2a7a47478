// One classroom stream to the gateway that outlives its connections.
//
// `send()` audio (16-bit mono PCM at `sampleRate`); the gateway's messages come as events
// named after their `type` ("Begin", "Interim", "Transcript", "Warning", "Error",
// "Budget", "Termination"), each a CustomEvent whose `detail` is the message, and every
// message also as "message". "state" tells the connection's state, "end" that the stream
// is over. The stream keeps the last `keepSeconds` of audio; when the connection drops it
// connects again (backoff with jitter, `retry_after` honoured) with `resume` and
// `last_seq`, sends the audio again from the `audio_seconds` the new Begin names, and
// drops the Transcripts it already handed out. A resume that fails (the session ended
// meanwhile) goes on as a new session from the end of the last Transcript: nothing is
// skipped.

import { AudioRing } from "./ring.js";
import { mayReconnect, reconnectDelay } from "./reconnect.js";

/** Audio sent again after a resume goes in frames this long (100 ms at 16 kHz). */
const RESEND_FRAME_BYTES = 3200;
const CONNECTING = 0;
const OPEN = 1;
/** The close code a browser reports when the network went away without a close frame. */
const NO_CLOSE_FRAME = 1006;

/** @param {ArrayBuffer | ArrayBufferView} pcm */
function bytesOf(pcm) {
  if (pcm instanceof ArrayBuffer) return new Uint8Array(pcm.slice(0));
  if (ArrayBuffer.isView(pcm)) {
    return new Uint8Array(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
  }
  throw new TypeError("send() takes PCM as an ArrayBuffer or a typed array");
}

export class ListenStream extends EventTarget {
  #url;
  #token;
  #params;
  #socketClass;
  #random;
  #maxAttempts;
  #connectTimeout;
  #ring;
  #socket = null;
  #live = false;
  #attempt = 0;
  #retryAfter = null;
  #timer = null;
  #finishing = false;
  #stopped = false;
  #done = false;
  #resumeToken = null;
  /** Where the session's audio starts in the stream (bytes). */
  #base = 0;
  /** Where the last Transcript ended (bytes): a new session starts there. */
  #covered = 0;
  #resolveEnded;

  /**
   * @param {string} url the listen endpoint, e.g. "wss://gateway.example/api/v1/listen"
   * @param {object} options see index.d.ts
   */
  constructor(url, options = {}) {
    super();
    const {
      token,
      sampleRate = 16000,
      interimResults = false,
      query = {},
      keepSeconds = 120,
      maxAttempts = 8,
      connectTimeout = 10,
      WebSocket: socketClass = globalThis.WebSocket,
      random = Math.random,
    } = options;
    if (!token) throw new TypeError("a token is needed: a string, or a function returning one");
    if (!socketClass) throw new TypeError("no WebSocket here: pass options.WebSocket");
    this.#url = url;
    this.#token = token;
    this.#params = { sample_rate: String(sampleRate), ...query };
    if (interimResults) this.#params.interim_results = "true";
    this.#socketClass = socketClass;
    this.#random = random;
    this.#maxAttempts = maxAttempts;
    this.#connectTimeout = connectTimeout;
    this.#ring = new AudioRing(Math.round(keepSeconds * sampleRate) * 2);
    this.sampleRate = sampleRate;
    /** "idle", "connecting", "live", "reconnecting" or "ended". */
    this.state = "idle";
    /** The session now, and the highest seq handed out in it. */
    this.sessionId = null;
    this.lastSeq = -1;
    /** How many times a dropped session was resumed. */
    this.resumes = 0;
    /** The last close code (null: the network went away without one). */
    this.closeCode = null;
    /** Resolves with the "end" event's detail once the stream is over. */
    this.ended = new Promise((resolve) => {
      this.#resolveEnded = resolve;
    });
  }

  /** Connect (once); returns the stream. */
  start() {
    if (this.state === "idle") this.#connect();
    return this;
  }

  /** Send audio now, or keep it to send once connected again. */
  send(pcm) {
    const bytes = bytesOf(pcm);
    this.#ring.append(bytes);
    if (this.#live && this.#socket.readyState === OPEN) this.#socket.send(bytes);
  }

  /** Keep an idle session open (while muted, say): the gateway's idle timeout. */
  keepAlive() {
    if (this.#live && this.#socket.readyState === OPEN) this.#sendJson({ type: "KeepAlive" });
  }

  /** CloseStream: the gateway transcribes what it has and ends with Termination (asked
   * again after a resume, if the connection drops first). */
  finish() {
    this.#finishing = true;
    if (this.#live && this.#socket.readyState === OPEN) this.#sendJson({ type: "CloseStream" });
  }

  /** Give up at once: no more reconnects; the session ends without its last windows. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#socket) this.#socket.close(1000);
    else this.#end(null);
  }

  // -- inside ----------------------------------------------------------------

  async #connect() {
    this.#setState(this.#attempt ? "reconnecting" : "connecting");
    let token;
    try {
      token = typeof this.#token === "function" ? await this.#token() : this.#token;
    } catch (error) {
      this.#closed(null, NO_CLOSE_FRAME, false, error);
      return;
    }
    if (this.#stopped) return this.#end(null);
    const params = new URLSearchParams(this.#params);
    if (this.#resumeToken) {
      params.set("resume", this.#resumeToken);
      params.set("last_seq", String(this.lastSeq));
    }
    const socket = new this.#socketClass(`${this.#url}?${params}`, ["token", token]);
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    let began = false;
    // A handshake that fails or stalls is a lost connection too (some WebSocket
    // implementations report a reset during the handshake only as an error, or not at all).
    const fail = () => {
      clearTimeout(handshake);
      socket.onerror = socket.onclose = socket.onmessage = null; // this attempt is over
      try {
        socket.close();
      } catch {
        // already closing
      }
      this.#closed(socket, NO_CLOSE_FRAME, false);
    };
    const handshake = setTimeout(fail, this.#connectTimeout * 1000);
    socket.onopen = () => clearTimeout(handshake);
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "Begin") began = true;
      this.#receive(socket, message);
    };
    socket.onerror = () => {
      if (socket.readyState === CONNECTING) fail(); // after the handshake a close follows
    };
    socket.onclose = (event) => {
      clearTimeout(handshake);
      this.#closed(socket, event.code, began);
    };
  }

  #receive(socket, message) {
    switch (message.type) {
      case "Begin":
        this.#begun(socket, message);
        break;
      case "Transcript":
        if (!this.#fresh(message)) return; // a replay of one already handed out
        break;
      case "Termination":
        this.#terminated(message);
        break;
      case "Error":
        if (typeof message.retry_after === "number") this.#retryAfter = message.retry_after;
        break;
      default:
        break;
    }
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }

  /** A connection's Begin: continue (or start) the session, send the audio the gateway
   * does not have yet, then go live. */
  #begun(socket, begin) {
    if (begin.resumed) {
      this.resumes += 1;
    } else {
      this.#base = this.sessionId !== null ? this.#covered : 0;
      this.lastSeq = -1;
    }
    this.sessionId = begin.session_id;
    this.#resumeToken = begin.resume_token || null;
    const ring = this.#ring;
    let position = this.#base + Math.round((begin.audio_seconds || 0) * this.sampleRate) * 2;
    while (position < ring.end) {
      position = Math.max(position, ring.first); // older audio fell out of the ring
      const chunk = ring.since(position, RESEND_FRAME_BYTES);
      socket.send(chunk);
      position += chunk.length;
    }
    this.#live = true;
    this.#attempt = 0;
    if (this.#finishing) this.#sendJson({ type: "CloseStream" });
    this.#setState("live", { resumed: Boolean(begin.resumed), sessionId: this.sessionId });
  }

  /** Whether a Transcript is new to this client (a replay repeats ones it has). */
  #fresh(transcript) {
    if (transcript.seq <= this.lastSeq) return false;
    this.lastSeq = transcript.seq;
    this.#covered = this.#base + Math.round(transcript.end * this.sampleRate) * 2;
    return true;
  }

  /** The session ended. Unless this client asked for it, the gateway was shutting down:
   * a new session takes over from there, on another replica. */
  #terminated(termination) {
    this.#covered = this.#base + Math.round((termination.audio_seconds || 0) * this.sampleRate) * 2;
    this.#resumeToken = null;
    this.#done = this.#finishing || termination.reason !== "server_shutdown";
  }

  #closed(socket, code, began, problem = null) {
    if (socket !== null && socket !== this.#socket) return;
    this.#socket = null;
    this.#live = false;
    const closeCode = code === NO_CLOSE_FRAME ? null : code;
    this.closeCode = closeCode;
    if (closeCode === 1000 || !mayReconnect(closeCode)) this.#done = true;
    this.#attempt = began ? 1 : this.#attempt + 1;
    if (this.#done || this.#stopped) return this.#end(closeCode);
    if (this.#attempt > this.#maxAttempts) return this.#end(closeCode, problem || "unreachable");
    const delay = reconnectDelay(this.#attempt - 1, this.#retryAfter, this.#random);
    this.#retryAfter = null;
    this.#setState("reconnecting", { closeCode, delay });
    this.#timer = setTimeout(() => this.#connect(), delay * 1000);
  }

  #end(closeCode, problem = null) {
    if (this.state === "ended") return;
    const detail = { closeCode, problem: problem === null ? null : String(problem) };
    this.#setState("ended", detail);
    this.dispatchEvent(new CustomEvent("end", { detail }));
    this.#resolveEnded(detail);
  }

  #setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }

  #sendJson(message) {
    this.#socket.send(JSON.stringify(message));
  }
}
