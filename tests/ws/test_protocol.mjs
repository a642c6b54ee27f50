// The O2ws protocol against a real o2hub daemon, with the npm `ws` client:
// join (/_o2/ws/dy -> !_o2/id), services (sv), status (st), list (ls),
// clock pings (cs/get -> !_o2/cs/put), cs/cs, messages both ways with every
// printable type, wrong ensemble and a first message that is not dy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, connect, until, sleep, requireDep } from './lib.mjs';

requireDep('ws');
let d;
before(async () => { d = await startDaemon(); });
after(async () => {
  const ex = await d.stop();
  assert.equal(ex.code, 0, 'the daemon stops cleanly');
});

test('join: /_o2/ws/dy is answered with !_o2/id and a bridge id', async () => {
  const a = await connect(d.port);
  const b = await connect(d.port);
  assert.ok(a.id > 0 && b.id > 0 && a.id !== b.id);
  a.close();
  b.close();
});

test('a wrong ensemble closes the connection with 1008', async () => {
  const c = await connect(d.port, { join: false });
  c.send('/_o2/ws/dy', 's', 0, true, 'other');
  await until(() => c.closed, 3000, 'close');
  assert.equal(c.closed.code, 1008);
  // the reason names the router's ensemble, so that a page can tell its user what to ask for
  assert.equal(c.closed.reason, 'wrong ensemble: this router is in "wstest"');
  assert.equal(c.msgs.length, 0);
});

test('a first message other than dy closes the connection with 1008', async () => {
  const c = await connect(d.port, { join: false });
  c.send('/x/y', 'i', 0, true, 1);
  await until(() => c.closed, 3000, 'close');
  assert.equal(c.closed.code, 1008);
});

test('services: sv, st (BRIDGE_NOTIME then BRIDGE after cs/cs), ls, and removal on close', async () => {
  const c = await connect(d.port);
  c.send('!_o2/ws/sv', 'siisi', 0, true, 'websvc', 1, 1, ';color:red;', 0);
  c.send('/_o2/ws/st', 's', 0, true, 'websvc');
  let st = await c.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
  assert.deepEqual(st.args, ['websvc', '2']); // O2_BRIDGE_NOTIME
  c.send('!_o2/ws/cs/cs', '', 0, true);
  c.send('/_o2/ws/st', 's', 0, true, 'websvc');
  st = await c.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
  assert.deepEqual(st.args, ['websvc', '6']); // O2_BRIDGE
  c.send('/_o2/ws/st', 's', 0, true, 'nosuch');
  st = await c.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
  assert.deepEqual(st.args, ['nosuch', '-1']);

  c.send('/_o2/ws/ls', '', 0, true);
  const items = [];
  for (;;) {
    const m = await c.next((x) => x.address === '!_o2/ls', 3000, '!_o2/ls');
    assert.equal(m.types, 'siss');
    if (m.args[0] === '') break;
    items.push(m.args);
  }
  const mine = items.find((x) => x[0] === 'websvc');
  assert.ok(mine, `websvc listed in ${JSON.stringify(items)}`);
  assert.equal(mine[1], '6');
  assert.equal(mine[3], 'color:red;');

  // A second client sees it, then sees it go when the first leaves.
  const o = await connect(d.port);
  c.close();
  await until(() => c.closed, 3000, 'close');
  let status;
  for (const end = Date.now() + 3000; Date.now() < end; await sleep(20)) {
    o.send('/_o2/ws/st', 's', 0, true, 'websvc');
    status = (await o.next((m) => m.address === '!_o2/st', 3000, '!_o2/st')).args[1];
    if (status === '-1') break;
  }
  assert.equal(status, '-1');
  o.close();
});

test('clock: cs/get is answered at the reply address with the sequence number and O2 time', async () => {
  const c = await connect(d.port);
  c.send('/_o2/ws/cs/get', 'iis', 0, false, c.id, 7, '!_o2/cs/put');
  const put = await c.next((m) => m.address === '!_o2/cs/put', 3000, '!_o2/cs/put');
  assert.equal(put.types, 'it');
  assert.equal(put.args[0], '7');
  assert.ok(Number(put.args[1]) >= 0, 'the host has a clock (reference)');
  c.close();
});

test('messages both ways: a service of one client reached from another, every printable type', async () => {
  const rx = await connect(d.port);
  const tx = await connect(d.port);
  rx.send('!_o2/ws/sv', 'siisi', 0, true, 'rx', 1, 1, '', 0);
  rx.send('/_o2/ws/st', 's', 0, true, 'rx'); // sv is handled before this reply
  await rx.next((m) => m.address === '!_o2/st');
  tx.send('/rx/all', 'ihfdtsSB', 0, true, -5, '9007199254740993', 1.5, 0.1, 2.25, 'x y ü', 'sym', 'true');
  const m = await rx.next((x) => x.address === '/rx/all', 3000, '/rx/all');
  assert.equal(m.types, 'ihfdtsSB');
  assert.equal(m.reliable, true);
  assert.deepEqual(m.args, ['-5', '9007199254740993', '1.5', '0.10000000000000001', '2.250000', 'x y ü', 'sym', '1']);
  tx.send('/rx/t', 'i', 12.5, false, 1); // timed: sent on at once, stamped
  const t = await rx.next((x) => x.address === '/rx/t', 3000, '/rx/t');
  assert.equal(t.time, 12.5);
  assert.equal(t.reliable, false);
  // Malformed messages are dropped; the connection goes on.
  tx.sock.send('no etx at the end');
  tx.send('/rx/bad', 'i', 0, true, 'notanumber');
  tx.send('/rx/ok', '', 0, true);
  await rx.next((x) => x.address === '/rx/ok', 3000, '/rx/ok');
  assert.equal(rx.msgs.filter((x) => x.address === '/rx/bad').length, 0);
  rx.close();
  tx.close();
});

test('ping is answered with pong; close is echoed with the same code', async () => {
  const c = await connect(d.port);
  const payload = Buffer.from('are you there');
  const pong = new Promise((res) => c.sock.once('pong', res));
  c.sock.ping(payload);
  assert.deepEqual(await pong, payload);
  c.sock.close(4000, 'bye');
  await until(() => c.closed, 3000, 'close');
  assert.equal(c.closed.code, 4000);
});
