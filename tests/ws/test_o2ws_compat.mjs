// O2's own browser API (sdk/js/o2ws_compat.js, o2ws_classic.js) in headless
// Chromium: tests/ws/pages/o2ws_compat.htm, written against O2's o2ws_*
// functions only, is served by an o2hub daemon. It sends messages of several
// types through the router to a Node O2ws client (service "nodeans") that
// answers; the answers reach its o2ws_method_new handlers, read with
// o2ws_get_*; it pings "echo" of another O2 process (tests/e2e/peer), gets
// copies through a tap, a timed message at its time, status messages in its
// own o2ws_status_msg. tests/ws/pages/o2ws_module.htm does the same API from a
// module script, sharing the client of o2ws.js.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, connect, until, env, requireDep, origin, useTls, ETX, freePort, startPeer } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found (Debian: apt-get install chromium)`);
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = 'wscompat';

let d, peer, ctx, dir, node;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-compat-'));
  const [hubPort, peerPort] = [await freePort(), await freePort()];
  const src = env('SOURCE_ROOT');
  d = await startDaemon({
    ensemble: ENSEMBLE,
    root: join(src, 'tests', 'ws', 'pages'),
    mounts: [{ url: '/sdk/', root: join(src, 'sdk', 'js') }],
    transports: [{ type: 'tcp', host: '127.0.0.1', port: hubPort },
                 { type: 'udp', host: '127.0.0.1', port: hubPort }],
    discovery: [{ type: 'static', peers: [`127.0.0.1:${peerPort}`], interval_max: 1.0 }],
  });
  const peerCfg = join(dir, 'peer.json');
  writeFileSync(peerCfg, JSON.stringify({
    ensemble: ENSEMBLE,
    plugin_path: [env('TRANSPORT_DIR'), env('DISCOVERY_DIR')],
    transports: [{ type: 'tcp', host: '127.0.0.1', port: peerPort },
                 { type: 'udp', host: '127.0.0.1', port: peerPort }],
    discovery: [{ type: 'static', peers: [`127.0.0.1:${hubPort}`], interval_max: 1.0 }],
  }));
  peer = startPeer(peerCfg);
  await peer.expect(/^ready$/, 30000); // the peer starts slowly on a loaded machine
  peer.tell('offer echo');
  await peer.expect(/^offered echo$/);

  // The Node client: offers "nodeans", and the host knows it before any page comes.
  node = await connect(d.port, { ensemble: ENSEMBLE });
  node.send('!_o2/ws/sv', 'siisi', 0, true, 'nodeans', 1, 1, '', 0);
  node.send('/_o2/ws/st', 's', 0, true, 'nodeans');
  const st = await node.next((m) => m.address === '!_o2/st', 5000, 'status of nodeans');
  assert.deepEqual(st.args, ['nodeans', '2'], 'nodeans: a bridge service (no clock)');

  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: useTls, /* WS_TLS: the test's own self-signed certificate */
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (ctx) await ctx.close();
  if (node) node.close();
  if (peer) {
    peer.tell('quit');
    await until(() => peer.child.exitCode !== null, 5000, 'peer exit').catch(() => peer.child.kill());
  }
  if (d) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

const results = async (page) => JSON.parse((await page.textContent('#results')) || '{}');

test('a page written for O2\'s o2ws.js runs on o2hub through o2ws_classic.js',
  { timeout: 120000 }, async () => {
    const page = await ctx.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${origin(d.port)}/o2ws_compat.htm?ensemble=${ENSEMBLE}`);

    // Sent before the connection was up: delivered once it is.
    const early = await node.next((m) => m.address === '/nodeans/early', 10000, '/nodeans/early');
    assert.deepEqual([early.types, early.reliable, early.args], ['s', true, ['sent before the connection']]);

    // o2ws_send_cmd with each type O2's o2ws_send takes, through the router
    const args = await node.next((m) => m.address === '/nodeans/args', 10000, '/nodeans/args');
    assert.equal(args.types, 'ihfdtsS');
    assert.equal(args.reliable, true);
    const [i, h, f, dbl, t, s, S] = args.args;
    assert.equal(i, '1234');
    assert.equal(h, '12884901888');
    assert.equal(Math.fround(Number(f)), Math.fround(123.4)); // a float on the way
    assert.equal(Number(dbl), 567.89);
    assert.equal(Number(t), 12.5);
    assert.equal(s, 'héllo ✓');
    assert.equal(S, 'sym');
    // answered with values made from them
    node.send('/o2wspage/answer', 'ifdhtsS', 0, true, Number(i) + 1, f, dbl,
              String(BigInt(h) + 1n), Number(t) + 1, s.toUpperCase(), S + '!');

    // o2ws_send_start / o2ws_add_* / o2ws_send_finish, best effort
    const built = await node.next((m) => m.address === '/nodeans/built', 10000, '/nodeans/built');
    assert.deepEqual([built.types, built.reliable], ['sifd', false]);
    assert.deepEqual(built.args.map((v, k) => (k ? Number(v) : v)), ['built', -7, 0.25, 0.001]);
    node.send('/o2wspage/any/deep/path', 'si', 0, false, built.args[0] + '!', Number(built.args[1]) + 1);
    // neither has a handler: a full path does not take what is below it, types must match
    node.send('/o2wspage/pong/extra', 'i', 0, true, 5);
    node.send('/o2wspage/pong', 's', 0, true, 'wrong types');

    // A timed message, stamped 0.5 s ahead on the host's clock.
    await node.next((m) => m.address === '/nodeans/timeme', 30000, '/nodeans/timeme');
    node.send('/_o2/ws/cs/get', 'iis', 0, false, node.id, 1, '!_o2/cs/put');
    const put = await node.next((m) => m.address === '!_o2/cs/put', 5000, 'the host\'s time');
    const stamp = Number(put.args[1]) + 0.5;
    node.send('/o2wspage/timed', 'd', stamp, true, stamp);

    const quiet = await node.next((m) => m.address === '/nodeans/quiet', 10000, '/nodeans/quiet');
    assert.deepEqual(quiet.args, ['1']);
    await page.waitForFunction(() => document.getElementById('wsResult').textContent === 'SUCCESS',
                               null, { timeout: 10000 });
    const r = await results(page);

    assert.equal(r.parse_time, -1, 'o2ws_time_get() while the page is parsed');
    assert.deepEqual(r.before, { bridge_id: null, time: -1, synchronized: false });
    assert.ok(r.bridge_id > 0, `bridge id ${r.bridge_id}`);
    // registered while the page was parsed, called with O2's handler arguments
    assert.deepEqual(r.answer, {
      timestamp: 0, address: 'o2wspage/answer', typespec: 'ifdhtsS', info: 'answer-info',
      i: 1235, f: 123.4, d: 567.89, h: 12884901889, t: 13.5, s: 'HÉLLO ✓', S: 'sym!',
    }); // past_end (undefined) is not in the JSON
    assert.deepEqual(r.any, {
      address: 'o2wspage/any/deep/path', typespec: 'si', info: 'prefix',
      fields: ['built!', '-6'], s: 'built!', i: -6,
    });
    assert.equal(r.pong.address, 'o2wspage/pong');
    assert.equal(r.pong.info, 7);
    assert.equal(r.pong.n, 42);
    assert.match(r.pong.from, /^@/, 'the name of the other process');
    // the stamp travels with microseconds (the host's %.6f), the argument in full
    assert.ok(r.timed.timestamp > 0 && Math.abs(r.timed.stamp - r.timed.timestamp) < 1e-6,
              JSON.stringify(r.timed));
    assert.ok(r.timed.delivered_at >= r.timed.timestamp - 0.05,
              `handled at ${r.timed.delivered_at}, stamped ${r.timed.timestamp}`);
    assert.ok(r.timed.delivered_at < r.timed.timestamp + 1, JSON.stringify(r.timed));
    assert.equal(r.own_status, 6, 'the page\'s service: BRIDGE once its clock is synchronized');
    assert.ok(r.taps.includes('o2wsspy/args'), `tap copies: ${r.taps}`);
    assert.deepEqual(r.errors, [
      'o2ws_send[_cmd] called with bad arg abc.',
      'o2ws_send[_cmd] called with mismatched arguments.',
      "o2ws_send[_cmd] called with bad type 'B'.",
    ]);
    assert.equal(node.msgs.filter((m) => m.address === '/nodeans/bad').length, 0, 'refused: not sent');

    // Status messages, in the page's own o2ws_status_msg.
    const status = await page.$$eval('#wsStatus p', (ps) => ps.map((p) => p.textContent));
    const ws = `${useTls ? 'wss' : 'ws'}://127.0.0.1:${d.port}/o2ws`;
    assert.equal(status[0], `Initializing O2ws with ${ws}`);
    assert.equal(status[1], 'CONNECTED');
    // "SENT: <length> bytes, " and the text with " ¦ " for each ETX
    const sent = (...f) => `SENT: ${f.join(ETX).length + 1} bytes, ${f.join(' ¦ ')} ¦ `;
    assert.equal(status[2], sent('/_o2/ws/dy', 's', '0', 'T', ENSEMBLE));
    assert.ok(status.includes(sent('/nodeans/early', 's', '0', 'T', 'sent before the connection')),
              'the waiting message, sent after the ensemble name');
    const id = status.find((l) => l.startsWith('RECEIVED: !_o2/id'));
    assert.equal(id, `RECEIVED: !_o2/id ¦ i ¦ 0 ¦ T ¦ ${r.bridge_id} ¦ `);
    assert.equal(status[status.indexOf(id) + 1], `Our ID is ${r.bridge_id}; starting clock sync.`);
    assert.ok(status.some((l) => /^SENT: \d+ bytes, !_o2\/ws\/sv ¦ siisi ¦ 0 ¦ T ¦ o2wspage ¦ 1 ¦ 1 ¦ ;kind:compat; ¦ 0 ¦ $/.test(l)),
              'the service with its properties');
    assert.ok(status.some((l) => l.startsWith('RECEIVED: /o2wspage/answer ¦ ifdhtsS ¦ 0 ¦ T ¦ 1235 ¦ ')));
    assert.ok(status.includes('Dropped incoming O2 message: /o2wspage/pong/extra@0,TCP,i,5'));
    assert.ok(status.includes('Dropped incoming O2 message: /o2wspage/pong@0,TCP,s,wrong types'));
    assert.ok(!status.some((l) => l.includes('/nodeans/quiet')), 'o2ws_status_msgs_enable = false: none');

    // The service and its properties, in the other process.
    const si = await peer.expect(/^si o2wspage \d+ @/, 20000);
    assert.match(si, /^si o2wspage [1256] @/, si);
    peer.tell('getprop o2wspage kind');
    assert.equal(await peer.expect(/^prop o2wspage kind /), 'prop o2wspage kind compat');
    assert.deepEqual(pageErrors, [], 'no errors in the page');
    await page.close();
  });

test('the same API from a module script, sharing o2ws.js\'s client', { timeout: 60000 }, async () => {
  const page = await ctx.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${origin(d.port)}/o2ws_module.htm?ensemble=${ENSEMBLE}`);
  await page.waitForFunction(() => {
    const t = document.getElementById('results').textContent;
    return t && JSON.parse(t).pong && JSON.parse(t).clock;
  }, null, { timeout: 30000 });
  const r = await results(page);
  assert.equal(r.globals, true, 'importing the module installed the globals');
  assert.equal(r.pong.address, 'o2wsmod/pong');
  assert.equal(r.pong.n, 100);
  assert.match(r.pong.from, /^@/);
  assert.equal(r.pong.same_client, true, 'o2ws_bridge_id is the O2ws client\'s bridgeId');
  assert.ok(Math.abs(r.clock.jump) < 0.05, `o2ws_set_time_reference kept O2 time: ${r.clock.jump}`);
  assert.ok(r.clock.local > 1000, `o2ws_local_time() from the new reference: ${r.clock.local}`);
  assert.deepEqual(pageErrors, [], 'no errors in the page');
  await page.close();
});
