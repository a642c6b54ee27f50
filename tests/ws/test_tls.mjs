// HTTPS and wss:// ("tls_cert", "tls_key"): what only TLS mode can show. The
// other ws-*-tls tests run the protocol, order, bad-frame, file and browser
// tests over TLS; this one checks that it really is TLS, and the errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, connect, until, useTls, certificateFiles } from './lib.mjs';

if (!useTls) {
  console.error('SKIP: run with WS_TLS=1');
  process.exit(77);
}
const dir = mkdtempSync(join(tmpdir(), 'o2hub-tlsbad-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// All the bytes a raw connection gets until it closes (or `limitMs` pass).
function rawExchange(connectFn, request, limitMs = 3000) {
  return new Promise((resolve) => {
    const sock = connectFn();
    let got = Buffer.alloc(0), error = null;
    sock.on('data', (b) => { got = Buffer.concat([got, b]); });
    sock.on('error', (e) => { error = e; });
    sock.on('close', () => resolve({ got: got.toString('latin1'), error }));
    sock.setTimeout(limitMs, () => sock.destroy());
    if (request) sock.write(request);
  });
}

test('the port speaks TLS with the configured certificate, and only TLS', async () => {
  const d = await startDaemon({});
  try {
    // Plain HTTP to the TLS port: no HTTP answer.
    const plain = await rawExchange(() => net.connect(d.port, '127.0.0.1'),
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.doesNotMatch(plain.got, /^HTTP\/1\.1/, 'a plain HTTP request got an HTTP answer');
    // A client that does not trust the certificate refuses it.
    const untrusting = await rawExchange(() => tls.connect({ port: d.port, host: '127.0.0.1' }));
    assert.ok(untrusting.error, 'a client without the certificate connected');
    assert.match(String(untrusting.error.code), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    // One that does: the certificate is the configured one.
    const peerCert = await new Promise((resolve, reject) => {
      const s = tls.connect({ port: d.port, host: '127.0.0.1', ca: certificateFiles().ca }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on('error', reject);
    });
    assert.equal(peerCert.subject.CN, '127.0.0.1');
    // And a wss client joins; the log names its real address (not the socket pair's).
    const c = await connect(d.port);
    assert.ok(c.id > 0);
    await until(() => /O2ws client \d+ connected \(websocket 127\.0\.0\.1:\d+\)/.test(d.log()), 3000,
      'the join logged with the client address');
    c.close();
  } finally {
    await d.stop();
  }
});

// The daemon must refuse to start, and say which key of which file is wrong.
async function refused(wsKeys, pattern) {
  let error = null;
  try {
    const d = await startDaemon({ wsKeys });
    await d.stop();
  } catch (e) {
    error = e;
  }
  assert.ok(error, `the daemon started with ${JSON.stringify(wsKeys)}`);
  assert.match(error.message, pattern);
}

test('a bad certificate or key is a clear error at start', async () => {
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  await refused({ tls_key: undefined }, /o2hub\.json:\d+:\d+: .*tls_cert.*both "tls_cert" and "tls_key"/s);
  await refused({ tls_cert: join(dir, 'missing.pem') },
    /tls_cert.*cannot read .*missing\.pem: No such file/s);
  await refused({ tls_key: notPem }, /tls_key.*not\.pem is not PEM/s);
  // A key that is not the certificate's: libmicrohttpd refuses the pair.
  const otherKey = join(dir, 'other.key');
  const r = spawnSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt',
    'ec_paramgen_curve:prime256v1', '-out', otherKey], { stdio: 'pipe' });
  assert.equal(r.status, 0, String(r.stderr));
  await refused({ tls_key: otherKey }, /cannot start HTTPS: tls_cert and tls_key are not a matching certificate and key/s);
});

test('a client that never starts its handshake is dropped after 10 s', { timeout: 30000 }, async () => {
  const d = await startDaemon({});
  try {
    const started = Date.now();
    const silent = await rawExchange(() => net.connect(d.port, '127.0.0.1'), null, 25000);
    const waited = (Date.now() - started) / 1000;
    assert.equal(silent.got, '', 'the server sent something to a client that said nothing');
    assert.ok(waited >= 9 && waited < 20, `closed after ${waited} s`);
    // Meanwhile and after, others are served.
    const c = await connect(d.port);
    assert.ok(c.id > 0);
    c.close();
  } finally {
    await d.stop();
  }
});
