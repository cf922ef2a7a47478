import assert from "node:assert/strict";
import { test } from "node:test";

import { AudioRing } from "../src/ring.js";

const bytes = (from, count) => Uint8Array.from({ length: count }, (_, i) => (from + i) % 256);

test("the ring hands back what it holds from any position, across chunks", () => {
  const ring = new AudioRing(100);
  ring.append(bytes(0, 30));
  ring.append(bytes(30, 30));
  assert.equal(ring.first, 0);
  assert.equal(ring.end, 60);
  assert.deepEqual(ring.since(20, 20), bytes(20, 20));
  assert.deepEqual(ring.since(50, 100), bytes(50, 10));
  assert.equal(ring.since(60, 10).length, 0);
});

test("the oldest audio goes once the bound is held, in whole samples", () => {
  const ring = new AudioRing(50);
  ring.append(bytes(0, 40));
  ring.append(bytes(40, 15)); // 55 held: 5 over, 6 go (whole samples)
  assert.equal(ring.first, 6);
  assert.equal(ring.end, 55);
  assert.deepEqual(ring.since(0, 10), bytes(6, 10)); // older than held: from the oldest
  ring.append(bytes(55, 60)); // more than the bound in one append
  assert.ok(ring.end - ring.first <= 50);
  assert.equal(ring.first % 2, 0);
  assert.deepEqual(ring.since(ring.first, 200), bytes(ring.first, ring.end - ring.first));
});

test("what the ring hands back is a copy", () => {
  const ring = new AudioRing(10);
  const chunk = bytes(0, 4);
  ring.append(chunk);
  const out = ring.since(0, 4);
  out[0] = 99;
  assert.equal(ring.since(0, 1)[0], 0);
});
