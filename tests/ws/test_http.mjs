// Static files with a raw HTTP client (node:net, or node:tls with WS_TLS, the request line sent as
// written, nothing normalised): MIME types, index.html, and every way out of
// the root refused with 403/404 — never the file outside the root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, until, rawConnect } from './lib.mjs';

const SECRET = 'TOP-SECRET-OUTSIDE-ROOT';
let d, dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-http-'));
  const root = join(dir, 'www');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'secret.txt'), SECRET);
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>root</title>');
  writeFileSync(join(root, 'app.js'), 'export const x = 1;');
  writeFileSync(join(root, 'style.css'), 'body {}');
  writeFileSync(join(root, 'data.json'), '{}');
  writeFileSync(join(root, 'pic.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  writeFileSync(join(root, 'a b.txt'), 'space');
  writeFileSync(join(root, 'sub', 'index.html'), 'sub index');
  writeFileSync(join(root, '.hidden'), 'hidden');
  writeFileSync(join(dir, 'lib', 'client.js'), 'export const lib = 1;');
  symlinkSync(join(dir, 'secret.txt'), join(root, 'link.txt'));
  symlinkSync(dir, join(root, 'uplink'));
  symlinkSync('/etc', join(root, 'etc'));
  d = await startDaemon({ root, mounts: [{ url: '/lib/', root: join(dir, 'lib') }] });
});
after(async () => {
  await d.stop();
  rmSync(dir, { recursive: true, force: true });
});

// One request exactly as written; resolves with {status, headers, body}.
function get(path, method = 'GET') {
  return new Promise((resolve, reject) => {
    const sock = rawConnect(d.port);
    let buf = Buffer.alloc(0);
    sock.on('data', (b) => { buf = Buffer.concat([buf, b]); });
    sock.on('error', reject);
    sock.setTimeout(3000, () => { sock.destroy(); reject(new Error(`timeout on ${path}`)); });
    sock.on('close', () => {
      const end = buf.indexOf('\r\n\r\n');
      const head = buf.subarray(0, end).toString().split('\r\n');
      const headers = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(head[0].split(' ')[1]), headers, body: buf.subarray(end + 4).toString() });
    });
    sock.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  });
}

test('files are served with their MIME types', async () => {
  const cases = [
    ['/', 'text/html', '<!doctype html><title>root</title>'],
    ['/index.html', 'text/html', null],
    ['/app.js', 'text/javascript', 'export const x = 1;'],
    ['/style.css', 'text/css', null],
    ['/data.json', 'application/json', null],
    ['/pic.png', 'image/png', null],
    ['/a%20b.txt', 'text/plain', 'space'],
    ['/sub/', 'text/html', 'sub index'],
    ['/./sub//index.html', 'text/html', 'sub index'],
    ['/index.html?x=1#y', 'text/html', null],
    ['/lib/client.js', 'text/javascript', 'export const lib = 1;'],
  ];
  for (const [path, type, body] of cases) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers['content-type'].startsWith(type), `${path}: ${r.headers['content-type']}`);
    if (body !== null) assert.equal(r.body, body, path);
  }
  const dirNoSlash = await get('/sub');
  assert.equal(dirNoSlash.status, 301);
  assert.equal(dirNoSlash.headers.location, '/sub/');
  const head = await get('/app.js', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal((await get('/app.js', 'POST')).status, 405);
});

test('path traversal, encoded or not, symlinks out of root, absolute paths: 403/404', async () => {
  const attempts = [
    '/../secret.txt',
    '/sub/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/.%2e/secret.txt',
    '/%2e./secret.txt',
    '/..%2fsecret.txt',
    '/%2e%2e%2fsecret.txt',
    '/sub/..%5c..%5csecret.txt',
    '/..\\secret.txt',
    '/%252e%252e/secret.txt',
    '/link.txt',
    '/uplink/secret.txt',
    '/etc/passwd',
    '/lib/../secret.txt',
    '/lib/%2e%2e/secret.txt',
    '/.hidden',
    '/%00secret.txt',
    '//etc/passwd',
    '/' + join(dir, 'secret.txt'),
    'secret.txt',
    '../secret.txt',
    'http://127.0.0.1/../secret.txt',
    '/etc/passwd',
    '/nonexistent.html',
  ];
  for (const path of attempts) {
    const r = await get(path);
    assert.ok([400, 403, 404].includes(r.status), `${path}: status ${r.status}`);
    assert.ok(!r.body.includes(SECRET), `${path} leaked the secret`);
    assert.ok(!r.body.includes('root:'), `${path} leaked /etc/passwd`);
  }
  // Specific answers for the classic ones.
  assert.equal((await get('/../secret.txt')).status, 403);
  assert.equal((await get('/%2e%2e/secret.txt')).status, 403);
  assert.equal((await get('/link.txt')).status, 403);
  assert.equal((await get('/nonexistent.html')).status, 404);
});

test('the WebSocket path without an upgrade is 426', async () => {
  const r = await get('/o2ws');
  assert.equal(r.status, 426);
  assert.ok(d.alive());
});
