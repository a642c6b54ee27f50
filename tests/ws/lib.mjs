// Helpers for the WebSocket tests: start an o2hub daemon with the websocket
// transport, speak O2ws text, wait for events with deadlines.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

export const ETX = '\x03';
// Paths come from meson (tests/ws/meson.build); run by hand, they default
// to the build folder `build/` of this checkout.
const repo = new URL('../../', import.meta.url).pathname;
const defaults = {
  O2HUB_EXE: `${repo}build/tools/o2hub`,
  WS_PLUGIN_DIR: `${repo}build/transports/websocket`,
  TRANSPORT_DIR: `${repo}build/transports`,
  DISCOVERY_DIR: `${repo}build/plugins`,
  PEER_EXE: `${repo}build/tests/e2e/peer`,
  SOURCE_ROOT: repo,
  ARTIFACT_DEFAULT: `${repo}build/artifacts`,
};
export const env = (name) => process.env[name] || defaults[name];

// Where tests leave files for people to look at (screenshots of the pages):
// $O2HUB_ARTIFACTS, else <build>/artifacts. Not committed.
export function artifactPath(name) {
  const dir = process.env.O2HUB_ARTIFACTS || env('ARTIFACT_DEFAULT');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

// The test's node_modules are in tests/; exit 77 (skip) when they are missing.
export function requireDep(name) {
  const require = createRequire(new URL('../package.json', import.meta.url));
  try {
    return require(name);
  } catch {
    console.error(`SKIP: npm package ${name} is missing (run: npm ci --prefix tests)`);
    process.exit(77);
  }
}

export function encode(address, types, time, reliable, ...values) {
  return [address, types, String(time), reliable ? 'T' : 'F', ...values.map(String)].join(ETX) + ETX;
}

export function decode(text) {
  const f = String(text).split(ETX);
  if (f.length < 5 || f[f.length - 1] !== '') throw new Error(`bad O2ws text ${JSON.stringify(text)}`);
  f.pop();
  return { address: f[0], types: f[1], time: Number(f[2]), reliable: f[3] === 'T', args: f.slice(4) };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolve when `pred()` is truthy (polled every 5 ms); reject after `ms`.
// `pred` may be async: its promise is awaited before the value is judged.
export async function until(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

// WS_MHD_THREAD=1 (the ws-*-thread tests) runs libmicrohttpd on its own
// thread ("mhd_thread": true) instead of the router's loop.
export const mhdThread = ['1', 'true', 'yes'].includes(process.env.WS_MHD_THREAD || '');

// WS_TLS=1 (the ws-*-tls tests) serves HTTPS and wss:// with a certificate
// for 127.0.0.1 made here by openssl; clients trust exactly that certificate.
export const useTls = ['1', 'true', 'yes'].includes(process.env.WS_TLS || '');
let tlsFiles = null;
function certificate() {
  if (tlsFiles) return tlsFiles;
  const dir = mkdtempSync(join(tmpdir(), 'o2hub-tls-'));
  const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
  if (r.error || r.status !== 0) {
    console.error(`SKIP: openssl could not make a certificate: ${r.error || r.stderr}`);
    process.exit(77);
  }
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  tlsFiles = { cert, key, ca: readFileSync(cert) };
  return tlsFiles;
}

// The daemon's base URL, and a raw byte stream to it (TLS when useTls):
// wait for `ready` before counting on the connection. `localAddress` (any
// of 127.0.0.0/8 on Linux) makes the connection come from another address.
export const origin = (port) => `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;
export function certificateFiles() {
  return certificate();
}
export function rawConnect(port, { localAddress } = {}) {
  const sock = useTls
    ? tls.connect({ port, host: '127.0.0.1', localAddress, ca: certificate().ca })
    : net.connect({ port, host: '127.0.0.1', localAddress });
  sock.ready = new Promise((resolve, reject) => {
    sock.once(useTls ? 'secureConnect' : 'connect', resolve);
    sock.once('error', reject);
  });
  return sock;
}

// A daemon on 127.0.0.1 with the websocket transport on an ephemeral port.
// `extra` adds transports/discovery/keys to the config.
export async function startDaemon({ root, wsKeys = {}, transports = [], discovery = [],
                                    ensemble = 'wstest', clockReference = true, mounts,
                                    logLevel = 'info', wrap = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'o2hub-ws-'));
  const ws = { type: 'websocket', host: '127.0.0.1', port: 0,
               ...(mhdThread ? { mhd_thread: true } : {}),
               ...(useTls ? { tls_cert: certificate().cert, tls_key: certificate().key } : {}),
               ...wsKeys };
  if (root) ws.root = root;
  if (mounts) ws.mounts = mounts;
  const cfg = {
    ensemble,
    log_level: logLevel,
    plugin_path: [env('WS_PLUGIN_DIR'), env('TRANSPORT_DIR'), env('DISCOVERY_DIR')],
    transports: [ws, ...transports],
    discovery,
  };
  if (clockReference) cfg.clock = { reference: true };
  const file = join(dir, 'o2hub.json');
  writeFileSync(file, JSON.stringify(cfg, null, 1));
  // `wrap`: a command that execs the rest (the daemon keeps its PID), e.g. a mount namespace
  const argv = [...wrap, env('O2HUB_EXE'), '--config', file];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const onData = (d) => {
    log += d;
    if (process.env.WS_TEST_DEBUG) process.stderr.write(d);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let exited = null;
  child.on('exit', (code, sig) => { exited = { code, sig }; });
  const m = await until(() => exited || /https?:\/\/127\.0\.0\.1:(\d+)\//.exec(log), 10000, 'the daemon to listen');
  if (exited) throw new Error(`o2hub exited (${JSON.stringify(exited)}):\n${log}`);
  const mode = ws.mhd_thread ? 'HTTP on its own thread' : 'HTTP on the loop';
  if (!log.includes(mode)) throw new Error(`the daemon does not say "${mode}":\n${log}`);
  if (!log.includes(`${origin(m[1])}/`)) throw new Error(`the daemon does not serve ${origin(m[1])}:\n${log}`);
  const daemon = {
    port: Number(m[1]),
    child,
    log: () => log,
    alive: () => exited === null,
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        await until(() => exited, 5000, 'the daemon to stop').catch(() => child.kill('SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
      return exited;
    },
  };
  return daemon;
}

// An O2ws client on the `ws` package: joins, keeps every message it gets.
export async function connect(port, { ensemble = 'wstest', join = true } = {}) {
  const WebSocket = requireDep('ws');
  const sock = useTls
    ? new WebSocket(`wss://127.0.0.1:${port}/o2ws`, { ca: certificate().ca })
    : new WebSocket(`ws://127.0.0.1:${port}/o2ws`);
  const c = {
    sock,
    msgs: [],
    closed: null,
    send(address, types, time, reliable, ...values) {
      sock.send(encode(address, types, time, reliable, ...values));
    },
    // the first received message matching `pred` (removed from c.msgs)
    async next(pred, ms = 5000, what = 'a message') {
      let found;
      await until(() => {
        const i = c.msgs.findIndex(pred);
        if (i >= 0) [found] = c.msgs.splice(i, 1);
        return i >= 0 || c.closed;
      }, ms, what);
      if (!found) throw new Error(`connection closed (${JSON.stringify(c.closed)}) waiting for ${what}`);
      return found;
    },
    close() { sock.close(); },
  };
  sock.on('message', (data) => c.msgs.push(decode(data.toString())));
  sock.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; });
  sock.on('error', () => {});
  await new Promise((res, rej) => { sock.once('open', res); sock.once('error', rej); });
  if (join) {
    c.send('/_o2/ws/dy', 's', 0, true, ensemble);
    const id = await c.next((m) => m.address === '!_o2/id', 5000, '!_o2/id');
    c.id = Number(id.args[0]);
  }
  return c;
}

// A TCP port free now on 127.0.0.1 (the kernel picks it).
export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// tests/e2e/peer: an O2 process driven by line commands, reporting lines.
export function startPeer(configFile) {
  const child = spawn(env('PEER_EXE'), [configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  const p = { child, lines: [], out: '' };
  child.stdout.on('data', (d) => {
    p.out += d;
    let i;
    while ((i = p.out.indexOf('\n')) >= 0) {
      p.lines.push(p.out.slice(0, i));
      p.out = p.out.slice(i + 1);
    }
  });
  child.stderr.on('data', (d) => { if (process.env.WS_TEST_DEBUG) process.stderr.write(d); });
  p.tell = (cmd) => child.stdin.write(cmd + '\n');
  p.expect = async (re, ms = 10000) => {
    const line = await until(() => p.lines.find((l) => re.test(l)), ms, `peer line ${re}`);
    p.lines.splice(p.lines.indexOf(line), 1);
    return line;
  };
  return p;
}
