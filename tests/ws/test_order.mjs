// 100 000 messages from one O2ws client to a service of another, through
// the router: all arrive, in order (npm `ws` clients).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, connect, until, requireDep } from './lib.mjs';
import { runThroughput } from './throughput.mjs';

requireDep('ws');
let d;
after(async () => { if (d) assert.equal((await d.stop()).code, 0); });

test('100 000 messages arrive in order', { timeout: 90000 }, async () => {
  d = await startDaemon();
  const r = await runThroughput(d.port, 100000);
  assert.equal(r.received, 100000, `received ${r.received}`);
  assert.equal(r.outOfOrder, 0);
  console.log(`# ${r.received} messages in ${r.seconds.toFixed(2)} s: ${Math.round(r.rate)} msgs/s`);
});
