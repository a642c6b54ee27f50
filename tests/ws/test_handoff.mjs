// "mhd_thread": true: libmicrohttpd's thread hands each upgraded socket to
// the router's loop through a bounded queue ("mhd_queue"). With a queue of
// one slot, a burst of simultaneous upgrades gets some HTTP 503s (counted
// and logged by the router), every other one becomes a working O2ws client,
// and the router goes on: files, new clients, a clean stop.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, connect, until, encode, decode, requireDep } from './lib.mjs';

requireDep('ws');
const BURST = 64;
const ROUNDS = 20;
const daemons = [];
const dir = mkdtempSync(join(tmpdir(), 'o2hub-handoff-'));
writeFileSync(join(dir, 'index.html'), '<!doctype html><title>handoff</title>');
after(async () => {
  for (const d of daemons) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

// Bursts of BURST connections from 127.0.0.1: above the default max_per_address.
async function start(wsKeys, logLevel = 'info') {
  const d = await startDaemon({ root: dir, logLevel,
                                wsKeys: { mhd_thread: true, max_per_address: 4 * BURST, ...wsKeys } });
  daemons.push(d);
  assert.match(d.log(), /HTTP on its own thread/);
  return d;
}

// A masked client text frame (payload < 126 bytes).
function textFrame(text) {
  const payload = Buffer.from(text);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), key, body]);
}

// `n` raw sockets, all connected first, then every upgrade request written
// in one go so that MHD's thread finds them all readable at once. Resolves
// with one {status, sock, buf} per socket once each has its status line.
async function upgradeBurst(port, n) {
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((res, rej) => {
    const sock = net.connect(port, '127.0.0.1');
    const c = { sock, buf: Buffer.alloc(0), status: 0, ended: false };
    sock.on('data', (b) => { c.buf = Buffer.concat([c.buf, b]); });
    sock.on('close', () => { c.ended = true; });
    sock.on('error', () => { c.ended = true; });
    sock.once('connect', () => res(c));
    sock.once('error', rej);
  })));
  for (const c of socks)
    c.sock.write('GET /o2ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                 `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
                 'Sec-WebSocket-Version: 13\r\n\r\n');
  await until(() => socks.every((c) => c.buf.indexOf('\r\n\r\n') >= 0 || c.ended), 10000,
              'every status line');
  for (const c of socks) {
    const end = c.buf.indexOf('\r\n\r\n');
    assert.ok(end >= 0, 'a status line before the connection ended');
    c.status = Number(/^HTTP\/1\.1 (\d+)/.exec(c.buf.subarray(0, end).toString())[1]);
    c.head = c.buf.subarray(0, end).toString();
    c.buf = c.buf.subarray(end + 4);
  }
  return socks;
}

// The text of the first unmasked server text frame in `buf`, if complete.
function firstText(buf) {
  if (buf.length < 2 || (buf[0] & 0x0f) !== 1) return null;
  const len = buf[1] & 0x7f; // our replies here are short
  return buf.length >= 2 + len ? buf.subarray(2, 2 + len).toString() : null;
}

function refusedInAll(log) {
  const all = [...log.matchAll(/refused with HTTP 503: the hand-off queue.*; (\d+) refused in all\)/g)];
  return all.length ? Number(all[all.length - 1][1]) : 0;
}

test('a full hand-off queue answers 503, counted; the others join', { timeout: 90000 }, async () => {
  const d = await start({ mhd_queue: 1 });
  let refused = 0, upgraded = 0;
  for (let round = 0; round < ROUNDS && refused === 0; round++) {
    const burst = await upgradeBurst(d.port, BURST);
    for (const c of burst) {
      assert.ok(c.status === 101 || c.status === 503, `status ${c.status}: ${c.head}`);
      if (c.status === 503) {
        refused++;
        assert.match(c.head, /Retry-After: 1/i);
      }
    }
    // Every upgraded socket is a working O2ws connection: join, get an id.
    const ok = burst.filter((c) => c.status === 101);
    upgraded += ok.length;
    for (const c of ok) c.sock.write(textFrame(encode('/_o2/ws/dy', 's', 0, true, 'wstest')));
    await until(() => ok.every((c) => firstText(c.buf)), 10000, 'an id for every upgraded client');
    for (const c of ok) assert.equal(decode(firstText(c.buf)).address, '!_o2/id');
    for (const c of burst) c.sock.destroy();
  }
  console.log(`# ${upgraded} upgraded, ${refused} refused with 503 (mhd_queue 1)`);
  assert.ok(refused > 0, `no 503 in ${ROUNDS} bursts of ${BURST}`);
  // The router counted every refusal and said so on its loop.
  await until(() => refusedInAll(d.log()) === refused, 5000,
              `the log to count ${refused} refusals (it says ${refusedInAll(d.log())})`);
  // It goes on: a file from MHD's thread, a new client through the queue.
  const res = await fetch(`http://127.0.0.1:${d.port}/index.html`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /handoff/);
  const c = await connect(d.port);
  assert.ok(c.id > 0);
  c.close();
});

test('upgrades whose client vanished give their slot back', { timeout: 30000 }, async () => {
  const d = await start({ mhd_queue: 1 }, 'debug');
  // Requests from clients that are gone at once: each either never gets its
  // 101 out (the reservation goes back in MHD's completion callback) or is
  // handed over and closed by the loop. With one slot, a single lost
  // reservation would make every later upgrade a 503.
  for (let round = 0; round < 5; round++) {
    const burst = await Promise.all(Array.from({ length: 32 }, () => new Promise((res) => {
      const sock = net.connect(d.port, '127.0.0.1', () => res(sock));
      sock.on('error', () => {});
    })));
    for (const sock of burst) {
      sock.write('GET /o2ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                 `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
                 'Sec-WebSocket-Version: 13\r\n\r\n');
      sock.resetAndDestroy(); // RST: MHD may not even manage to send the 101
    }
  }
  let c = null; // bounded retries: the vanished ones may still be in flight
  for (let i = 0; i < 100 && !c; i++) {
    c = await connect(d.port).catch(() => null);
    if (!c) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(c && c.id > 0, 'the single hand-off slot is free again');
  c.close();
  const given = (d.log().match(/ended before the 101 \(\d+\): slot given back/g) || []).length;
  console.log(`# ${given} of 160 reservations given back before a 101 went out`);
});

test('max_clients counts clients on the loop and in the queue', { timeout: 30000 }, async () => {
  const d = await start({ max_clients: 2 });
  const a = await connect(d.port);
  const b = await connect(d.port);
  const WebSocket = requireDep('ws');
  const status = await new Promise((resolve) => {
    const s = new WebSocket(`ws://127.0.0.1:${d.port}/o2ws`);
    s.on('unexpected-response', (req, r) => { resolve(r.statusCode); req.destroy(); });
    s.on('open', () => { resolve(101); s.close(); });
    s.on('error', () => {});
  });
  assert.equal(status, 503);
  a.close();
  await until(() => a.closed, 5000, 'the first client to close');
  // Once the loop has dropped that client (a moment after the close
  // handshake), its place is free again.
  let c;
  for (let i = 0; i < 200 && !c; i++) {
    c = await connect(d.port).catch(() => null);
    if (!c) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(c && c.id > 0, 'a client joins once another has left');
  b.close();
  c.close();
});

test('static files and WebSocket traffic at once', { timeout: 60000 }, async () => {
  const d = await start({});
  const rx = await connect(d.port);
  const tx = await connect(d.port);
  rx.send('!_o2/ws/sv', 'siisi', 0, true, 'sink', 1, 1, '', 0);
  for (let tries = 0; ; tries++) {
    tx.send('/_o2/ws/st', 's', 0, true, 'sink');
    const st = await tx.next((m) => m.address === '!_o2/st', 3000, '!_o2/st');
    if (st.args[1] !== '-1') break;
    assert.ok(tries < 100, 'the sink service appears');
    await new Promise((r) => setTimeout(r, 10));
  }
  const N = 5000;
  let got = 0, expect = 0, outOfOrder = 0;
  rx.sock.removeAllListeners('message');
  rx.sock.on('message', (data) => {
    const m = decode(data.toString());
    if (m.address !== '/sink/n') return;
    if (Number(m.args[0]) !== expect) outOfOrder++;
    expect = Number(m.args[0]) + 1;
    got++;
  });
  const fetches = [];
  for (let k = 0; k < N; k++) {
    tx.send('/sink/n', 'i', 0, true, k);
    if (k % 100 === 0)
      fetches.push(fetch(`http://127.0.0.1:${d.port}/index.html`).then((r) => r.status));
  }
  assert.deepEqual(await Promise.all(fetches), fetches.map(() => 200));
  await until(() => got === N, 30000, `${N} messages (got ${got})`);
  assert.equal(outOfOrder, 0);
  rx.close();
  tx.close();
});
