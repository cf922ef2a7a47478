// Connections that never open: the stream counts each as a failed attempt and ends once
// its attempts are spent (a fake WebSocket: these are the cases a real network rarely
// produces on cue).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ListenStream } from "../src/index.js";

/** A WebSocket whose handshake never completes; `erring` ones report an error (and one
 * more on close(), as Node's does) while staying CONNECTING. */
function fakeSocketClass({ erring }) {
  const made = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      made.push(this);
      if (erring) setTimeout(() => this.onerror?.({ type: "error" }), 5);
    }

    close() {
      if (erring) this.onerror?.({ type: "error" }); // synchronously, still CONNECTING
    }

    send() {
      throw new Error("nothing may be sent before the handshake");
    }
  }
  return { FakeSocket, made };
}

for (const erring of [false, true]) {
  test(`a handshake that ${erring ? "errors" : "stalls"} is a failed attempt`, async () => {
    const { FakeSocket, made } = fakeSocketClass({ erring });
    const states = [];
    const stream = new ListenStream("ws://gateway.invalid/api/v1/listen", {
      token: "t",
      WebSocket: FakeSocket,
      connectTimeout: 0.05,
      maxAttempts: 2,
      random: () => 0,
    });
    stream.addEventListener("state", ({ detail }) => states.push(detail.state));
    stream.send(new Int16Array(1600)); // kept for when a connection opens
    stream.start();
    const end = await stream.ended;
    assert.deepEqual(end, { closeCode: null, problem: "unreachable" });
    assert.equal(made.length, 3); // the first try and two more
    assert.deepEqual(made[0].protocols, ["token", "t"]);
    assert.ok(made[0].url.includes("sample_rate=16000"));
    assert.deepEqual(states.filter((s) => s === "ended"), ["ended"]);
  });
}
