// Types of @stt-gateway/client (the messages are those of the gateway's protocol).

export interface Message {
  type: "Begin" | "Interim" | "Transcript" | "Warning" | "Error" | "Budget" | "Termination";
  [field: string]: unknown;
}

export interface Transcript extends Message {
  type: "Transcript";
  seq: number;
  start: number;
  end: number;
  status: "ok" | "silence" | "dropped";
  text: string;
  reason?: string;
}

export interface Interim extends Message {
  type: "Interim";
  seq: number;
  start: number;
  end: number;
  text: string;
  stable_text: string;
}

export type StreamState = "idle" | "connecting" | "live" | "reconnecting" | "ended";

export interface StateDetail {
  state: StreamState;
  /** reconnecting: the close code that ended the connection (null: no close frame). */
  closeCode?: number | null;
  /** reconnecting: seconds until the next attempt. */
  delay?: number;
  /** live: whether the session was resumed. */
  resumed?: boolean;
  sessionId?: string;
  /** ended: why the stream could not go on, when it was not the gateway's close. */
  problem?: string | null;
}

export interface EndDetail {
  closeCode: number | null;
  problem: string | null;
}

export interface ListenStreamOptions {
  /** A stream token, or a function returning a fresh one for each connection. */
  token: string | (() => string | Promise<string>);
  sampleRate?: number;
  interimResults?: boolean;
  /** More query parameters (model, language, keyterm…). */
  query?: Record<string, string>;
  /** Audio kept to send again: at least RESUME_SECONDS + MAX_PENDING_AUDIO_SECONDS (120). */
  keepSeconds?: number;
  /** Connection attempts in a row before giving up (8). */
  maxAttempts?: number;
  /** Seconds a connection may take to open before it counts as failed (10). */
  connectTimeout?: number;
  /** The WebSocket class (the global one by default). */
  WebSocket?: typeof WebSocket;
  random?: () => number;
}

export class ListenStream extends EventTarget {
  constructor(url: string, options: ListenStreamOptions);
  readonly sampleRate: number;
  state: StreamState;
  sessionId: string | null;
  lastSeq: number;
  resumes: number;
  closeCode: number | null;
  readonly ended: Promise<EndDetail>;
  start(): this;
  send(pcm: ArrayBuffer | ArrayBufferView): void;
  keepAlive(): void;
  finish(): void;
  close(): void;
}

export interface Microphone {
  context: AudioContext;
  stop(): Promise<void>;
}

export function openMicrophone(options: {
  onFrame: (frame: ArrayBuffer) => void;
  workletUrl?: string | URL;
  constraints?: MediaTrackConstraints;
}): Promise<Microphone>;

export class AudioRing {
  constructor(maxBytes: number);
  readonly first: number;
  readonly end: number;
  append(pcm: Uint8Array): void;
  since(position: number, most: number): Uint8Array;
}

export const RETRY_CODES: ReadonlySet<number>;
export function mayReconnect(closeCode: number | null): boolean;
export function reconnectDelay(
  attempt: number,
  retryAfter?: number | null,
  random?: () => number,
): number;
