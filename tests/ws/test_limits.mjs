// What slow clients can cost the HTTP server: filling its connection limit
// with clients that never finish a request line must not stop it for good
// (once they have gone, `GET /` is answered within 1 s, 20 times in a row,
// and a WebSocket client leaving at the limit frees its slot at once); a
// client that trickles its headers is closed at "header_timeout" though it
// is never idle (a kept-alive one too, counted from its last answer), while
// WebSocket clients stay; one address gets at most "max_per_address"
// connections while others are still served.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, connect, until, rawConnect, sleep, requireDep } from './lib.mjs';

requireDep('ws');

const MARK = 'limits-index';
// MHD's connection limit is max_clients + 64 (ws_http.c): 65 with max_clients 1.
const HTTP_LIMIT = 65;
const ROUNDS = 20;
let dir;
const daemons = [];
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-limits-'));
  writeFileSync(join(dir, 'index.html'), `<!doctype html><title>${MARK}</title>`);
});
after(async () => {
  for (const d of daemons) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

async function start(wsKeys) {
  const d = await startDaemon({ root: dir, wsKeys });
  daemons.push(d);
  return d;
}

// The i-th of several source addresses (127.0.0.2 ...), so that a limit per
// address does not stop us from filling the global one.
const source = (i, spread) => `127.0.0.${2 + (i % spread)}`;

// A client that sends part of a request line and then nothing, or (trickle)
// one more header byte every `every` ms. It keeps whatever it is sent.
function slowClient(port, localAddress, { trickle = false, every = 1000, text = 'GET / HTTP/1.1\r\nX-Slow: ' } = {}) {
  const sock = rawConnect(port, { localAddress });
  const c = { sock, buf: '', closed: false, closedAt: 0 };
  sock.on('data', (b) => { c.buf += b; });
  sock.on('error', () => {});
  sock.on('close', () => {
    c.closed = true;
    c.closedAt = Date.now();
    clearInterval(c.timer);
  });
  c.ready = sock.ready.then(() => {
    c.openedAt = Date.now();
    sock.write(text);
    if (trickle) c.timer = setInterval(() => sock.write('a'), every);
  });
  c.ready.catch(() => {});
  return c;
}

// `GET /` on a connection of its own; resolves with {status, body} once the
// server has answered and closed (Connection: close), or with status 0 when
// it closed without an answer. Rejects after `ms`.
async function getRoot(port, ms, localAddress) {
  const sock = rawConnect(port, { localAddress });
  let buf = '';
  let closed = false;
  sock.on('data', (b) => { buf += b; });
  sock.on('error', () => {});
  sock.on('close', () => { closed = true; });
  sock.ready.catch(() => {}); // refused: status 0
  sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  try {
    await until(() => closed, ms, `GET / from ${localAddress || '127.0.0.1'} to be answered`);
  } finally {
    sock.destroy();
  }
  const m = /^HTTP\/1\.1 (\d+)/.exec(buf);
  return { status: m ? Number(m[1]) : 0, body: buf };
}

// A full request on a connection opened after `slow`: while the limit is
// full it is not served (MHD leaves it in the listen backlog, or closes it).
async function probeWhileFull(port) {
  const sock = rawConnect(port);
  const p = { sock, buf: '', closed: false };
  sock.on('data', (b) => { p.buf += b; });
  sock.on('error', () => {});
  sock.on('close', () => { p.closed = true; });
  await sock.ready.catch(() => {});
  sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  // Nothing to await here: what is checked is that no answer comes.
  await sleep(300);
  assert.equal(p.buf, '', 'a connection over the limit is not served while the limit is full');
  return p;
}

test('the port accepts again once slow clients at the connection limit have gone', { timeout: 90000 }, async () => {
  const d = await start({ max_clients: 1 });
  for (let round = 0; round < ROUNDS; round++) {
    const slow = Array.from({ length: HTTP_LIMIT }, (_, i) =>
      slowClient(d.port, source(i, 9), { trickle: i % 2 === 1 }));
    await Promise.all(slow.map((c) => c.ready));
    const probe = await probeWhileFull(d.port);
    assert.ok(slow.every((c) => !c.closed), 'the slow clients are all still connected');
    for (const c of slow) c.sock.destroy();
    // The connection that waited is served now, and so is a new one.
    if (!probe.closed) {
      await until(() => probe.closed, 1000, `round ${round}: the waiting connection to be served`);
      assert.match(probe.buf, /^HTTP\/1\.1 200/, `round ${round}: the waiting connection's answer`);
    }
    const r = await getRoot(d.port, 1000);
    assert.equal(r.status, 200, `round ${round}: GET / after the slow clients went`);
    assert.ok(r.body.includes(MARK), `round ${round}: index.html`);
    probe.sock.destroy();
  }
  assert.ok(d.alive());
});

test('a WebSocket client that leaves at the limit frees its slot at once', { timeout: 30000 }, async () => {
  const d = await start({ max_clients: 1 });
  // MHD counts an upgraded connection until we hand its socket back.
  const ws = await connect(d.port);
  const slow = Array.from({ length: HTTP_LIMIT - 1 }, (_, i) => slowClient(d.port, source(i, 9)));
  await Promise.all(slow.map((c) => c.ready));
  const probe = await probeWhileFull(d.port);
  ws.close();
  await until(() => ws.closed, 1000, 'the WebSocket close handshake');
  if (!probe.closed) {
    await until(() => probe.closed, 1000, 'the waiting connection to be served once the WebSocket went');
    assert.match(probe.buf, /^HTTP\/1\.1 200/);
  }
  const r = await getRoot(d.port, 1000);
  assert.equal(r.status, 200, 'GET / with the slow clients still there');
  assert.ok(slow.every((c) => !c.closed), 'the slow clients are still connected');
  for (const c of slow) c.sock.destroy();
});

test('a client that trickles its headers is closed at header_timeout', { timeout: 30000 }, async () => {
  const TIMEOUT_S = 2;
  const d = await start({ header_timeout: TIMEOUT_S });
  const ws = await connect(d.port); // upgraded: no request to wait for any more
  // Never idle (a byte every 200 ms), so the inactivity timeout never fires.
  const trickler = slowClient(d.port, '127.0.0.2', { trickle: true, every: 200 });
  // A whole request, one byte every 20 ms: slow, but done in time.
  const request = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';
  const patient = slowClient(d.port, '127.0.0.3', { text: '' });
  await Promise.all([trickler.ready, patient.ready]);
  for (const ch of request) {
    patient.sock.write(ch);
    await sleep(20);
  }
  await until(() => patient.closed, 3000, 'the slow but complete request to be answered');
  assert.match(patient.buf, /^HTTP\/1\.1 200/);
  await until(() => trickler.closed, (TIMEOUT_S + 3) * 1000, 'the trickling client to be closed');
  const held = (trickler.closedAt - trickler.openedAt) / 1000;
  assert.ok(held >= TIMEOUT_S - 0.1, `closed after ${held} s, not before header_timeout`);
  assert.equal(trickler.buf, '', 'no answer to a request that never came whole');
  await until(() => /refused HTTP connection from 127\.0\.0\.2:\d+: no whole request/.test(d.log()),
              3000, 'the refusal in the log');
  // A kept-alive connection that trickles its second request: its deadline
  // counts from the end of the first.
  const again = slowClient(d.port, '127.0.0.4', { text: 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' });
  await until(() => again.buf.includes(MARK), 3000, 'the first answer on the kept-alive connection');
  const answeredAt = Date.now();
  again.sock.write('GET / HTTP/1.1\r\nX-Slow: ');
  again.timer = setInterval(() => again.sock.write('a'), 200);
  await until(() => again.closed, (TIMEOUT_S + 3) * 1000, 'the kept-alive trickler to be closed');
  assert.ok(again.closedAt - answeredAt >= (TIMEOUT_S - 0.1) * 1000, 'not before its new deadline');
  // The WebSocket client has outlived every deadline and still works.
  assert.equal(ws.closed, null, 'the WebSocket client is not closed by header_timeout');
  ws.send('/_o2/ws/st', 's', 0, true, 'nobody');
  await ws.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
  ws.close();
  const r = await getRoot(d.port, 1000);
  assert.equal(r.status, 200, 'others are served');
});

test('one address gets at most max_per_address connections; others are served', { timeout: 30000 }, async () => {
  const PER = 4;
  const d = await start({ max_per_address: PER });
  const held = Array.from({ length: PER }, () => slowClient(d.port, '127.0.0.3'));
  await Promise.all(held.map((c) => c.ready));
  // Accepted after those (the listen backlog is in order): refused at once.
  const extra = slowClient(d.port, '127.0.0.3');
  await until(() => extra.closed, 2000, 'the connection over max_per_address to be closed');
  assert.equal(extra.buf, '');
  assert.ok(held.every((c) => !c.closed), 'the first connections are kept');
  const other = await getRoot(d.port, 1000, '127.0.0.4');
  assert.equal(other.status, 200, 'another address is served');
  // One of the address's connections goes: its place is free again.
  held[0].sock.destroy();
  let r = { status: 0 };
  const end = Date.now() + 2000;
  while (r.status !== 200 && Date.now() < end) r = await getRoot(d.port, 1000, '127.0.0.3');
  assert.equal(r.status, 200, 'the address is served again once one of its connections went');
  for (const c of held) c.sock.destroy();
});
