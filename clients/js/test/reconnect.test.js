import assert from "node:assert/strict";
import { test } from "node:test";

import { mayReconnect, reconnectDelay, MAX_DELAY } from "../src/reconnect.js";

test("a client comes back after a drop, a restart or an overload, never after a final close", () => {
  for (const code of [null, 1001, 1006, 1011, 1012, 1013, 1014]) assert.ok(mayReconnect(code), code);
  for (const code of [1000, 1007, 1008, 1009, 4000, 4001, 4003, 4008, 4009, 4029, 4031, 4402]) {
    assert.ok(!mayReconnect(code), code);
  }
});

test("the backoff doubles with jitter, capped, and retry_after comes first", () => {
  assert.equal(reconnectDelay(0, null, () => 0), 0.25);
  assert.equal(reconnectDelay(0, null, () => 1), 0.5);
  assert.equal(reconnectDelay(3, null, () => 1), 4);
  assert.equal(reconnectDelay(20, null, () => 1), MAX_DELAY);
  assert.equal(reconnectDelay(0, 4, () => 0), 4);
  assert.equal(reconnectDelay(5, 4, () => 1), 6);
});
