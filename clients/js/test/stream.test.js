// The client against a real gateway, through a proxy that cuts its connections. The
// gateway is given by the environment (tests/system/test_client_js.py starts one):
// STT_GATEWAY (ws://host:port), STT_TOKENS (a JSON object of stream tokens), STT_AUDIO (a
// file of 16 kHz PCM with pauses), STT_REPORT (where to write what the gateway billed).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { after, test } from "node:test";

import { ListenStream } from "../src/index.js";
import { CuttingProxy } from "./support/proxy.js";

const { STT_GATEWAY, STT_TOKENS, STT_AUDIO, STT_REPORT } = process.env;
const missing = !STT_GATEWAY && "set STT_GATEWAY, STT_TOKENS and STT_AUDIO (make test does)";
if (missing && process.env.CI) throw new Error(missing); // CI never skips
const tokens = missing ? {} : JSON.parse(STT_TOKENS);
const audio = missing ? new Uint8Array(0) : new Uint8Array(readFileSync(STT_AUDIO));
const RATE = 16000;
const FRAME = 3200;
const SECONDS = audio.length / 2 / RATE;
const billed = [];

after(() => {
  if (STT_REPORT) writeFileSync(STT_REPORT, JSON.stringify(billed));
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stream the audio in 100 ms frames (5× real time) through a new proxy, `beforeFrame(i,
 * proxy)` awaited before frame i; every message the stream handed out, and the stream. */
async function streamThrough(token, beforeFrame = async () => {}) {
  const proxy = await new CuttingProxy(Number(new URL(STT_GATEWAY).port)).start();
  const stream = new ListenStream(`${proxy.url("ws")}/api/v1/listen`, { token });
  const messages = [];
  stream.addEventListener("message", (event) => messages.push(event.detail));
  stream.start();
  try {
    for (let i = 0; i * FRAME < audio.length; i += 1) {
      await beforeFrame(i, proxy);
      stream.send(audio.subarray(i * FRAME, (i + 1) * FRAME));
      await sleep(20);
    }
    stream.finish();
    const end = await stream.ended;
    return { stream, messages, proxy, end };
  } finally {
    await proxy.close();
  }
}

const ofType = (messages, type) => messages.filter((m) => m.type === type);

/** Windows contiguous from 0 to `seconds`, seq 0.. without a gap or a repeat. */
function assertTiling(transcripts, seconds) {
  assert.deepEqual(
    transcripts.map((m) => m.seq),
    transcripts.map((_, i) => i),
  );
  let position = 0;
  for (const m of transcripts) {
    assert.ok(Math.abs(m.start - position) < 1e-6, `window ${m.seq} starts at ${m.start}, not ${position}`);
    assert.ok(m.end > m.start);
    position = m.end;
  }
  assert.ok(Math.abs(position - seconds) < 1e-6, `the windows end at ${position}, not ${seconds}`);
}

function bill(name, termination, transcripts) {
  billed.push({
    test: name,
    cost_usd: termination.cost_usd,
    windows: termination.windows,
    ok_windows: transcripts.filter((m) => m.status === "ok").length,
  });
}

test("cut twice, the stream resumes and hands out every window once", { skip: missing }, async () => {
  const cuts = new Set([20, 45]);
  const { stream, messages, proxy, end } = await streamThrough(tokens.cuts, async (i, p) => {
    if (cuts.has(i)) p.cut();
  });
  const transcripts = ofType(messages, "Transcript");
  assertTiling(transcripts, SECONDS);
  const begins = ofType(messages, "Begin");
  assert.deepEqual(begins.map((b) => b.resumed), [false, true, true]);
  assert.equal(new Set(begins.map((b) => b.session_id)).size, 1);
  assert.equal(stream.resumes, 2);
  const [termination] = ofType(messages, "Termination");
  assert.equal(termination.windows, transcripts.length);
  assert.ok(Math.abs(termination.audio_seconds - SECONDS) < 1e-6);
  assert.equal(end.closeCode, 1000);
  assert.equal(proxy.connections, 3);
  bill("cuts", termination, transcripts);
});

test("after a final close the stream does not come back", { skip: missing }, async () => {
  const { messages, proxy, end } = await streamThrough("not-a-token");
  assert.deepEqual(messages.map((m) => m.type), ["Error"]);
  assert.equal(messages[0].code, "UNAUTHORIZED");
  assert.equal(end.closeCode, 4001);
  assert.equal(proxy.connections, 1);
});

test("a session gone meanwhile goes on as a new one from the last Transcript", { skip: missing }, async () => {
  // The network goes away for longer than the gateway's RESUME_SECONDS (2 in this run).
  const { messages, end } = await streamThrough(tokens.gone, async (i, p) => {
    if (i !== 30) return;
    p.refusing = true;
    p.cut();
    await sleep(3500);
    p.refusing = false;
  });
  const begins = ofType(messages, "Begin");
  assert.equal(new Set(begins.map((b) => b.session_id)).size, 2);
  assert.equal(begins.at(-1).resumed, false);
  assert.ok(messages.some((m) => m.type === "Warning" && m.code === "RESUME_FAILED"));
  const newFrom = messages.indexOf(begins.at(-1));
  const first = ofType(messages.slice(0, newFrom), "Transcript");
  const second = ofType(messages.slice(newFrom), "Transcript");
  const covered = first.length ? first.at(-1).end : 0;
  assertTiling(first, covered);
  assertTiling(second, SECONDS - covered);
  const [termination] = ofType(messages, "Termination");
  assert.ok(Math.abs(termination.audio_seconds - (SECONDS - covered)) < 1e-6);
  assert.equal(end.closeCode, 1000);
  bill("gone", termination, second);
});
