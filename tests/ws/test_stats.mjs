// GET /stats on the websocket transport's HTTP server: Prometheus text
// (every metric line after its # HELP and # TYPE, names o2hub_*), every
// counter the daemon prints at stop, counters that rise when messages go
// through, the Origin and token rules of the WebSocket, and "stats": false.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, connect, until, rawConnect, origin, requireDep } from './lib.mjs';

requireDep('ws');
const TOKEN = 'sesame-1234';
let open, locked, off;
before(async () => {
  open = await startDaemon({});
  locked = await startDaemon({ wsKeys: { token: TOKEN } });
  off = await startDaemon({ wsKeys: { stats: false } });
});
after(async () => {
  const ex = await open.stop();
  assert.equal(ex.code, 0, 'the daemon stops cleanly');
  await locked.stop();
  await off.stop();
});

// One HTTP/1.1 request on its own connection: { status, headers, body }.
async function get(d, path, headers = {}) {
  const sock = rawConnect(d.port);
  let buf = Buffer.alloc(0);
  let ended = false;
  sock.on('data', (b) => { buf = Buffer.concat([buf, b]); });
  sock.on('end', () => { ended = true; });
  sock.on('close', () => { ended = true; });
  sock.on('error', () => { ended = true; });
  await sock.ready;
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nConnection: close\r\n${extra}\r\n`);
  await until(() => ended, 5000, `the answer to GET ${path}`);
  sock.destroy();
  const text = buf.toString();
  const split = text.indexOf('\r\n\r\n');
  const head = text.slice(0, split).split('\r\n');
  const hdrs = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    hdrs[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = text.slice(split + 4);
  if ((hdrs['transfer-encoding'] || '').includes('chunked')) {
    let out = '';
    for (let rest = body; ;) {
      const nl = rest.indexOf('\r\n');
      const n = parseInt(rest.slice(0, nl), 16);
      if (!n) break;
      out += rest.slice(nl + 2, nl + 2 + n);
      rest = rest.slice(nl + 2 + n + 2);
    }
    body = out;
  }
  return { status: Number(head[0].split(' ')[1]), headers: hdrs, body };
}

// Prometheus text format 0.0.4, strictly: returns Map name -> [{labels, value}].
function parsePrometheus(text) {
  assert.ok(text.endsWith('\n'), 'the text ends with a newline');
  const metrics = new Map();
  const help = new Set(), type = new Map();
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const labelRe = new RegExp(`^(${name})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`);
  for (const line of text.split('\n').slice(0, -1)) {
    let m;
    if ((m = new RegExp(`^# HELP (${name}) .+$`).exec(line))) { help.add(m[1]); continue; }
    if ((m = new RegExp(`^# TYPE (${name}) (counter|gauge|untyped)$`).exec(line))) {
      assert.ok(!type.has(m[1]), `one TYPE line for ${m[1]}`);
      type.set(m[1], m[2]);
      continue;
    }
    m = new RegExp(`^(${name})(\\{[^}]*\\})? (\\S+)$`).exec(line);
    assert.ok(m, `a sample line: ${JSON.stringify(line)}`);
    const [, metric, labelText, value] = m;
    assert.ok(help.has(metric) && type.has(metric), `${metric} has HELP and TYPE before its samples`);
    assert.ok(metric.startsWith('o2hub_'), `${metric} is o2hub_*`);
    assert.ok(!Number.isNaN(Number(value)), `${metric}: ${value} is a number`);
    const labels = {};
    let rest = labelText ? labelText.slice(1, -1) : '';
    while (rest) {
      const l = labelRe.exec(rest);
      assert.ok(l, `labels of ${line}`);
      labels[l[1]] = l[2];
      rest = rest.slice(l[0].length).replace(/^,/, '');
    }
    if (!metrics.has(metric)) metrics.set(metric, []);
    metrics.get(metric).push({ labels, value: Number(value) });
  }
  return metrics;
}

const value = (metrics, name, labels = {}) => {
  const s = (metrics.get(name) || []).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : undefined;
};

async function scrape(d, path = '/stats', headers = {}) {
  const r = await get(d, path, headers);
  assert.equal(r.status, 200, `GET ${path}: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(r.body);
}

// The counters the daemon prints when it stops, from o2hub.h's o2h_stats.
const ROUTER_COUNTERS = ['delivered', 'forwarded', 'dropped_no_service', 'dropped_no_handler',
  'dropped_bad_types', 'dropped_invalid', 'dropped_no_clock', 'dropped_queue_full',
  'dropped_send_error', 'tapped', 'tap_buffers', 'refused', 'dropped_bad_names', 'held',
  'paused_links'];

test('/stats is Prometheus text with every router counter, per service and per plugin', async () => {
  const m = await scrape(open);
  for (const c of ROUTER_COUNTERS) assert.notEqual(value(m, `o2hub_${c}`), undefined, `o2hub_${c}`);
  assert.equal(value(m, 'o2hub_info', { ensemble: 'wstest' }), 1);
  assert.notEqual(value(m, 'o2hub_plugin_received', { plugin: 'websocket', entry: 'transports[0]' }), undefined);
  assert.notEqual(value(m, 'o2hub_websocket_clients'), undefined);
});

test('counters rise when messages go through', async () => {
  const before = await scrape(open);
  const rx = await connect(open.port);
  const tx = await connect(open.port);
  rx.send('!_o2/ws/sv', 'siisi', 0, true, 'statsink', 1, 1, '', 0);
  rx.send('/_o2/ws/st', 's', 0, true, 'statsink');
  await rx.next((x) => x.address === '!_o2/st');
  const N = 20;
  for (let i = 0; i < N; i++) tx.send('/statsink/n', 'i', 0, true, i);
  await until(() => rx.msgs.filter((x) => x.address === '/statsink/n').length === N, 5000, 'the messages');
  tx.send('/nobody/here', '', 0, true);
  // With "mhd_thread" the page is a snapshot at most a second old.
  let after;
  for (let end = Date.now() + 5000; Date.now() < end;) {
    after = await scrape(open);
    if (value(after, 'o2hub_service_routed', { service: 'statsink' }) >= N &&
        value(after, 'o2hub_dropped_no_service') > value(before, 'o2hub_dropped_no_service')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(value(after, 'o2hub_service_routed', { service: 'statsink' }) >= N, 'routed to statsink');
  assert.ok(value(after, 'o2hub_forwarded') >= value(before, 'o2hub_forwarded') + N, 'forwarded');
  assert.ok(value(after, 'o2hub_dropped_no_service') > value(before, 'o2hub_dropped_no_service'));
  const ws = { plugin: 'websocket' };
  assert.ok(value(after, 'o2hub_plugin_received', ws) >= value(before, 'o2hub_plugin_received', ws) + N);
  assert.ok(value(after, 'o2hub_plugin_forwarded', ws) >= value(before, 'o2hub_plugin_forwarded', ws) + N);
  assert.ok(value(after, 'o2hub_plugin_links_opened', ws) >= value(before, 'o2hub_plugin_links_opened', ws) + 2);
  assert.ok(value(after, 'o2hub_websocket_stats_scrapes') > value(before, 'o2hub_websocket_stats_scrapes'));
  rx.close();
  tx.close();
});

test('the WebSocket\'s rules: another origin gets 403, a token is asked for, "stats": false is 404', async () => {
  assert.equal((await get(open, '/stats', { Origin: 'http://evil.example' })).status, 403);
  assert.equal((await get(open, '/stats', { Origin: origin(open.port) })).status, 200);
  assert.equal((await get(locked, '/stats')).status, 401);
  assert.equal((await get(locked, '/stats?token=wrong-token')).status, 401);
  assert.equal((await get(locked, `/stats?token=${TOKEN}`)).status, 200);
  assert.equal((await get(locked, '/stats', { Authorization: `Bearer ${TOKEN}` })).status, 200);
  assert.equal((await get(off, '/stats')).status, 404);
});
