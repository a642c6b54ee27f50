// The test helpers themselves (lib.mjs): until() awaits a predicate's promise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { until, sleep } from './lib.mjs';

test('until waits for an async predicate to resolve truthy', async () => {
  let calls = 0;
  const v = await until(async () => {
    await sleep(1);
    return ++calls >= 3 && 'done';
  }, 5000, 'the third call');
  assert.equal(v, 'done');
  assert.equal(calls, 3);
});

test('until times out when an async predicate stays false', async () => {
  await assert.rejects(until(async () => false, 50, 'never'), /timed out after 50 ms waiting for never/);
});
