// Bad frames from a raw TCP client (node:net, or node:tls with WS_TLS; frames built by hand) close
// that connection with the right code; another client and the router go on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDaemon, connect, until, encode, requireDep, rawConnect } from './lib.mjs';

requireDep('ws');
const MAX_FRAME = 1024;
let d;
let witness; // a joined client with a service, checked after each bad frame
before(async () => {
  d = await startDaemon({ wsKeys: { max_frame: MAX_FRAME } });
  witness = await connect(d.port);
  witness.send('!_o2/ws/sv', 'siisi', 0, true, 'witness', 1, 1, '', 0);
});
after(async () => {
  witness.close();
  const ex = await d.stop();
  assert.equal(ex.code, 0, 'the daemon stops cleanly');
});

// A raw client after the HTTP upgrade; collects the bytes the server sends.
async function rawClient() {
  const sock = rawConnect(d.port);
  const c = { sock, buf: Buffer.alloc(0), ended: false };
  sock.on('data', (b) => { c.buf = Buffer.concat([c.buf, b]); });
  sock.on('end', () => { c.ended = true; });
  sock.on('close', () => { c.ended = true; });
  sock.on('error', () => { c.ended = true; });
  await sock.ready;
  sock.write('GET /o2ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
             `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
             'Sec-WebSocket-Version: 13\r\n\r\n');
  await until(() => c.buf.indexOf('\r\n\r\n') >= 0, 3000, 'the 101 response');
  const end = c.buf.indexOf('\r\n\r\n') + 4;
  assert.match(c.buf.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
  c.buf = c.buf.subarray(end);
  return c;
}

// A client frame: FIN, opcode, masked (unless mask === false), payload.
function frame(opcode, payload, { mask = true, fin = true, rsv = 0, lengthOverride } = {}) {
  payload = Buffer.from(payload);
  const len = lengthOverride ?? payload.length;
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else {
    head.push(m | 127);
    for (let i = 7; i >= 0; i--) head.push(Number((BigInt(len) >> BigInt(8 * i)) & 255n));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
  return Buffer.concat([Buffer.from(head), key, body]);
}

// Wait for the server's close frame; return its code.
async function closeCode(c) {
  await until(() => {
    for (let off = 0; off + 2 <= c.buf.length;) {
      const op = c.buf[off] & 15, len = c.buf[off + 1] & 127;
      if (len > 125) return false; // no long frames expected here
      if (op === 8) return off + 2 + len <= c.buf.length;
      off += 2 + len;
    }
    return c.ended;
  }, 3000, 'a close frame');
  for (let off = 0; off + 2 <= c.buf.length;) {
    const op = c.buf[off] & 15, len = c.buf[off + 1] & 127;
    if (op === 8) return len >= 2 ? c.buf.readUInt16BE(off + 2) : 1005;
    off += 2 + len;
  }
  return null;
}

async function witnessStillWorks() {
  const other = await connect(d.port); // a new client also works
  other.send('/witness/alive', 'i', 0, true, 42);
  const m = await witness.next((x) => x.address === '/witness/alive', 3000, '/witness/alive');
  assert.deepEqual(m.args, ['42']);
  other.close();
  assert.ok(d.alive(), 'the router is still running');
}

async function badFrameTest(bytes, expected) {
  const c = await rawClient();
  c.sock.write(frame(1, encode('/_o2/ws/dy', 's', 0, true, 'wstest')));
  await until(() => c.buf.length > 0, 3000, '!_o2/id');
  c.buf = Buffer.alloc(0);
  c.sock.write(bytes);
  assert.equal(await closeCode(c), expected);
  await until(() => c.ended, 3000, 'the server to close the TCP connection');
  c.sock.destroy();
  await witnessStillWorks();
}

test('an unmasked client frame: 1002', () =>
  badFrameTest(frame(1, encode('/witness/x', '', 0, true), { mask: false }), 1002));

test('a frame longer than max_frame: 1009 (as soon as the header says so)', () =>
  badFrameTest(frame(1, Buffer.alloc(0), { lengthOverride: MAX_FRAME + 1 }), 1009));

test('a fragmented message longer than max_frame: 1009', () =>
  badFrameTest(Buffer.concat([frame(1, Buffer.alloc(600, 65), { fin: false }),
                              frame(0, Buffer.alloc(600, 65))]), 1009));

test('invalid UTF-8 in a text message: 1007', () =>
  badFrameTest(frame(1, Buffer.from([0x2f, 0x61, 0xc0, 0xaf, 0x03])), 1007));

test('a reserved opcode (3): 1002', () => badFrameTest(frame(3, 'x'), 1002));

test('a reserved opcode (0xB, control): 1002', () => badFrameTest(frame(0xb, 'x'), 1002));

test('RSV bits without an extension: 1002', () => badFrameTest(frame(1, 'x', { rsv: 4 }), 1002));

test('a continuation without a message: 1002', () => badFrameTest(frame(0, 'x'), 1002));

test('a fragmented ping: 1002', () => badFrameTest(frame(9, 'x', { fin: false }), 1002));

test('a binary message (O2ws is text): 1003', () => badFrameTest(frame(2, 'x'), 1003));

test('a fragmented text message is assembled', async () => {
  const c = await rawClient();
  c.sock.write(frame(1, encode('/_o2/ws/dy', 's', 0, true, 'wstest')));
  const text = Buffer.from(encode('/witness/frag', 's', 0, true, 'é'.repeat(100)));
  // split inside a two-byte character; a ping between the fragments
  c.sock.write(Buffer.concat([frame(1, text.subarray(0, 51), { fin: false }), frame(9, 'p'),
                              frame(0, text.subarray(51, 120), { fin: false }),
                              frame(0, text.subarray(120))]));
  const m = await witness.next((x) => x.address === '/witness/frag', 3000, '/witness/frag');
  assert.equal(m.args[0], 'é'.repeat(100));
  c.sock.destroy();
});
