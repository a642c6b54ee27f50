// What slow clients can cost the HTTP server: filling its connection limit
// with clients that never finish a request line must not stop it for good
// (once they have gone, `GET /` is answered within 1 s, 20 times in a row).
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
  await until(() => probe.closed, 1000, 'the waiting connection to be served once the WebSocket went');
  assert.match(probe.buf, /^HTTP\/1\.1 200/);
  assert.ok(slow.every((c) => !c.closed), 'the slow clients are still connected');
  for (const c of slow) c.sock.destroy();
});
