// 100 000 messages from one O2ws client to a service of another, through
// the router: all arrive, in order (npm `ws` clients). And back-pressure:
// when the receiver stops reading, the sender is not read either (ops->pause)
// until the receiver's queue has room again (host->link->drained), so
// nothing is lost even when far more is sent than the core holds for a link.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, connect, until, requireDep, sleep, ETX } from './lib.mjs';
import { runThroughput, untilService } from './throughput.mjs';

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

test('a receiver that stops reading pauses its sender: all arrive, in order', { timeout: 120000 }, async () => {
  const bp = await startDaemon({ wsKeys: { send_queue_bytes: 65536 } });
  let end;
  try {
    const rx = await connect(bp.port);
    const tx = await connect(bp.port);
    let expect = 0, outOfOrder = 0, received = 0;
    rx.sock.removeAllListeners('message');
    rx.sock.on('message', (data) => {
      const k = Number(data.toString().split(ETX)[4]);
      if (k !== expect) outOfOrder++;
      expect = k + 1;
      received++;
    });
    rx.send('!_o2/ws/sv', 'siisi', 0, true, 'sink', 1, 1, '', 0);
    await untilService(tx, 'sink');
    rx.sock.pause();
    // 40 MB: beyond the loopback buffers on both sides and the 4 MiB the
    // core holds for the full link, so a sender still read loses messages.
    const n = 40000, pad = 'x'.repeat(1000);
    for (let j = 0; j < n; j++)
      tx.sock.send(`/sink/n${ETX}is${ETX}0${ETX}T${ETX}${j}${ETX}${pad}${ETX}`);
    await sleep(1500);
    assert.ok(tx.sock.bufferedAmount > 0, 'the sender was not read while the receiver was full');
    rx.sock.resume();
    await until(() => received >= n || outOfOrder, 90000, `${n} messages (got ${received})`);
    assert.equal(outOfOrder, 0);
    assert.equal(received, n);
    rx.close();
    tx.close();
  } finally {
    end = await bp.stop();
  }
  assert.equal(end.code, 0);
  const stats = /o2hub: stopped;(.*)/.exec(bp.log());
  assert.ok(stats, bp.log());
  assert.match(stats[1], /paused_links [1-9]/, stats[1]);
  assert.match(stats[1], /dropped_queue_full 0,/, stats[1]);
});
