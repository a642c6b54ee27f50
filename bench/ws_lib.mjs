// Shared by bench/ws_throughput and bench/ws_modes: a daemon in either
// websocket mode (libmicrohttpd on the router's loop, or on its own thread),
// its CPU time and peak RSS from /proc, and the three measurements.
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tests = new URL('../tests/ws/', import.meta.url);
const { startDaemon, requireDep, encode, decode, env, connect, useTls } =
  await import(new URL('lib.mjs', tests));
const { runThroughput } = await import(new URL('throughput.mjs', tests));
export { requireDep };

// WS_TLS=1: the same over https:// and wss:// (tls_cert, tls_key; path -tls).
const tlsSuffix = useTls ? '-tls' : '';
export const MODES = { loop: `o2hub-ws${tlsSuffix}`, thread: `o2hub-ws-thread${tlsSuffix}` };
const TICK_NS = 1e9 / 100; // USER_HZ, 100 on Linux

// --mode loop|thread|both (default both) from argv.
export function modesFromArgs(argv) {
  const i = argv.indexOf('--mode');
  const m = i >= 0 ? argv[i + 1] : 'both';
  if (m === 'both') return ['loop', 'thread'];
  if (m in MODES) return [m];
  throw new Error(`--mode is loop, thread or both, not ${m}`);
}

// The daemon's user+system CPU time in ns (all its threads).
export function cpuNs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_NS; // utime, stime
}

export function peakRssKb(pid) {
  const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

// A daemon in `mode` serving a folder with an index.html of `pageBytes`.
export async function startMode(mode, { pageBytes = 2048, wsKeys = {} } = {}) {
  const root = mkdtempSync(join(tmpdir(), 'o2hub-wsbench-'));
  const page = '<!doctype html><title>bench</title>\n';
  writeFileSync(join(root, 'index.html'), page + 'x'.repeat(Math.max(0, pageBytes - page.length)));
  const d = await startDaemon({
    root,
    wsKeys: { send_queue_bytes: 64 << 20, mhd_thread: mode === 'thread', ...wsKeys },
  });
  const stop = d.stop;
  d.stop = async () => {
    const r = await stop();
    rmSync(root, { recursive: true, force: true });
    return r;
  };
  return d;
}

// Measure `fn` and the daemon's CPU time during it.
export async function withCpu(d, fn) {
  const c0 = cpuNs(d.child.pid);
  const r = await fn();
  r.cpuNs = cpuNs(d.child.pid) - c0;
  return r;
}

export async function throughput(d, n) {
  return withCpu(d, () => runThroughput(d.port, n));
}

// build/bench/http_load against /index.html: requests/s and latency.
export async function staticLoad(d, { conns = 4, seconds = 3 } = {}) {
  const exe = process.env.HTTP_LOAD_EXE ||
    join(env('O2HUB_EXE'), '..', '..', 'bench', 'http_load');
  return withCpu(d, () => new Promise((resolve, reject) => {
    const child = spawn(exe, [String(d.port), '/index.html', String(conns), String(seconds)]);
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    child.on('error', reject);
    child.on('exit', (code) => {
      const m = /HTTP_LOAD reqs=(\d+) seconds=(\S+) reqs_s=(\d+) p50_us=(\d+) p99_us=(\d+) errors=(\d+)/.exec(out);
      if (code !== 0 || !m) return reject(new Error(`${exe} failed (${code}):\n${out}`));
      resolve({ reqs: Number(m[1]), reqsPerS: Number(m[3]), p50: Number(m[4]), p99: Number(m[5]) });
    });
  }));
}

const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

// `n` WebSocket clients one after the other: new WebSocket -> 'open' (TCP and
// the HTTP upgrade) -> /_o2/ws/dy -> !_o2/id, then close (and wait for it).
// Latencies in µs: handshake (to open), join (open -> id), total.
export async function joinLatency(d, n) {
  const WebSocket = requireDep('ws');
  const hs = [], join = [], total = [];
  return withCpu(d, async () => {
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const s = new WebSocket(`ws://127.0.0.1:${d.port}/o2ws`);
      await new Promise((res, rej) => { s.once('open', res); s.once('error', rej); });
      const t1 = process.hrtime.bigint();
      const got = new Promise((res) => s.on('message', (m) => {
        if (decode(m.toString()).address === '!_o2/id') res();
      }));
      s.send(encode('/_o2/ws/dy', 's', 0, true, 'wstest'));
      await got;
      const t2 = process.hrtime.bigint();
      hs.push(Number(t1 - t0) / 1e3);
      join.push(Number(t2 - t1) / 1e3);
      total.push(Number(t2 - t0) / 1e3);
      const closed = new Promise((res) => s.once('close', res));
      s.close();
      await closed;
    }
    const q = (a) => { a.sort((x, y) => x - y); return { p50: pct(a, 0.5), p99: pct(a, 0.99) }; };
    return { n, handshake: q(hs), join: q(join), total: q(total) };
  });
}

// `n` round trips through the router's loop, one after the other, on one
// joined client: /_o2/ws/st "s" -> !_o2/st (after 200 not counted). µs, p50/p99.
export async function statusRtt(d, n) {
  const c = await connect(d.port);
  const rtt = [];
  let waiting = null;
  c.sock.removeAllListeners('message');
  c.sock.on('message', (m) => { if (waiting && m.toString().startsWith('!_o2/st')) waiting(); });
  const query = encode('/_o2/ws/st', 's', 0, true, 'nobody');
  const warmUp = Math.min(200, n);
  for (let i = 0; i < warmUp + n; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((res) => { waiting = res; c.sock.send(query); });
    if (i >= warmUp) rtt.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  c.close();
  rtt.sort((x, y) => x - y);
  return { n, p50: pct(rtt, 0.5), p99: pct(rtt, 0.99) };
}

// One line in bench/run's RESULT format (report.py).
export function resultLine({ bench, path, payload = '-', count, rate = '-', p50 = '-', p99 = '-',
                             cpu = '-', rss = '-' }) {
  const f = (v, d = 0) => (typeof v === 'number' ? v.toFixed(d) : v);
  return `RESULT bench=${bench} path=${path} payload=${payload} count=${count} ` +
    `msgs_s=${f(rate)} p50_us=${f(p50, 1)} p99_us=${f(p99, 1)} p999_us=- ` +
    `cpu_ns_per_msg=${f(cpu)} peak_rss_kb=${rss}`;
}
