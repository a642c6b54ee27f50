// The web monitor (examples/monitor) in headless Chromium, served by an
// o2hub daemon, against another O2 process (tests/e2e/peer) whose service
// `echo` gets messages that never pass the daemon (the peer sends them to
// itself). Driven with real pointer events (playwright's mouse) and the
// keyboard. It checks: the ensemble view (the peer's process and services,
// status, clock), internal services hidden until asked for; a rate for echo
// that is true within 20 % although this router routes none of it; the snoop's
// time stamps, filter, pause and clear; the plot; the message of an ensemble
// mismatch and its link; a lost connection and the reconnection. Screenshots
// go to $O2HUB_ARTIFACTS (default build/artifacts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, until, env, requireDep, startPeer, freePort, sleep, artifactPath } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found (Debian: apt-get install chromium)`);
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = `wsmon${process.pid}`;
const RATE = 40; // messages a second the peer sends itself

let d, peer, ctx, dir, hubPort, peerPort, daemonOpts;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-monitor-'));
  [hubPort, peerPort] = [await freePort(), await freePort()];
  const src = env('SOURCE_ROOT');
  daemonOpts = {
    ensemble: ENSEMBLE,
    root: join(src, 'examples', 'monitor'),
    mounts: [{ url: '/sdk/', root: join(src, 'sdk', 'js') }],
    transports: [{ type: 'tcp', host: '127.0.0.1', port: hubPort },
                 { type: 'udp', host: '127.0.0.1', port: hubPort }],
    discovery: [{ type: 'static', peers: [`127.0.0.1:${peerPort}`], interval_max: 1.0 }],
  };
  d = await startDaemon(daemonOpts);
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
  for (const svc of ['echo', 'other']) {
    peer.tell(`offer ${svc}`);
    await peer.expect(new RegExp(`^offered ${svc}$`));
  }
  peer.tell('setprop echo kind test');
  await peer.expect(/^setprop /);
  peer.tell('quiet on'); // the answers to our pings are counted, not printed
  await peer.expect(/^quiet on$/);
  peer.tell('name');
  peer.name = (await peer.expect(/^name @/)).slice(5);
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (ctx) await ctx.close();
  if (peer) {
    peer.tell('quit');
    await until(() => peer.child.exitCode !== null, 5000, 'peer exit').catch(() => peer.child.kill());
  }
  if (d) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

// The peer sends `rate` reliable messages a second to its own `address`
// (delivered in its own process: nothing goes through the daemon), paced on
// what it should have sent by now, so a stalled timer catches up; `sent`
// keeps [time, total] for the true rate over any window.
function pacedSender(address, rate, first = 100000) {
  const start = Date.now();
  const s = { total: 0, log: [[start, 0]] };
  s.timer = setInterval(() => {
    const due = Math.floor(((Date.now() - start) / 1000) * rate) - s.total;
    if (due <= 0) return;
    peer.tell(`pings ${address} tcp ${due} ${first + s.total}`);
    s.total += due;
    s.log.push([Date.now(), s.total]);
  }, 50);
  s.rateOver = (seconds) => {
    const now = Date.now(), from = now - seconds * 1000;
    const before = [...s.log].reverse().find(([t]) => t <= from) ?? s.log[0];
    return (s.total - before[1]) / ((now - Math.max(from, before[0])) / 1000);
  };
  s.stop = () => clearInterval(s.timer);
  return s;
}

// Resolve when the async `pred()` gives a truthy value, asked every 200 ms
// (`until` of lib.mjs takes synchronous predicates only); reject after `ms`.
async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

const row = (name) => `#processes tr[data-name="${name}"]`;

async function openMonitor(query = `?ensemble=${ENSEMBLE}`) {
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`http://127.0.0.1:${d.port}/${query}`);
  return page;
}

let page; // the monitor of the first tests, kept for the later ones

test('the ensemble view: processes, services, status, clock; internal services hidden', { timeout: 90000 }, async () => {
  page = await openMonitor();
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                             null, { timeout: 20000 });
  // The peer's process, with its services, their status and properties.
  const card = `#processes .process[data-process="${peer.name}"]`;
  await page.waitForSelector(`${card} tr[data-name="echo"]`, { timeout: 30000 });
  assert.match(await page.textContent(`${card} .addr`), /^127\.0\.0\.1:\d+$/, 'its address');
  assert.match(await page.textContent(`${card} tr[data-name="echo"] td.status`), /remote/);
  await page.waitForFunction((sel) => /kind:test/.test(document.querySelector(sel)?.textContent),
                             `${card} tr[data-name="echo"] td.props`, { timeout: 10000 });
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'clock synchronised',
                             `${card} .clock`, { timeout: 30000 });
  await page.waitForFunction(() => /^O2 time \d/.test(document.getElementById('clock').textContent),
                             null, { timeout: 10000 });

  // Internal services (_o2, _cs, the peer's @name, the page's own) only with the toggle.
  const internal = () => page.$$eval('#processes tr', (trs) =>
    trs.map((tr) => tr.dataset.name).filter((n) => /^[_@]|^monitor\d/.test(n)));
  assert.deepEqual(await internal(), [], 'no internal service by default');
  await page.click('#show-internal');
  await page.waitForSelector(row('_o2'), { timeout: 5000 });
  await page.waitForSelector(row(peer.name), { timeout: 5000 });
  const me = await page.evaluate(() => window.monitor.me);
  await page.waitForSelector(row(me), { timeout: 5000 });
  assert.match(await page.textContent(`${row('_o2')} td.rate`), /not measured/);
  await page.click('#show-internal');
  await page.waitForFunction(() => !document.querySelector('#processes tr[data-name="_o2"]'), null,
                             { timeout: 5000 });
  assert.deepEqual(await internal(), []);
});

test('a rate for traffic that does not pass the monitor\'s router is true within 20 %', { timeout: 120000 }, async () => {
  const sender = pacedSender('/echo/ping', RATE);
  try {
    // The page's window is 5 s: let the sender fill more than one (it keeps its own time).
    await until(() => sender.total >= RATE * 7, 30000, 'seven seconds of messages');
    // Then the median of five readings a second apart (readings, not synchronisation).
    const readings = [];
    for (let k = 0; k < 5; k++) {
      const shown = await page.getAttribute(`${row('echo')} td.rate`, 'data-rate');
      readings.push({ shown: Number(shown), truth: sender.rateOver(5) });
      await sleep(1000);
    }
    readings.sort((a, b) => a.shown - b.shown);
    console.log('echo rate readings (shown, sent):', JSON.stringify(readings));
    const { shown, truth } = readings[2];
    assert.ok(Math.abs(shown - truth) <= 0.2 * truth,
              `echo shows ${shown.toFixed(1)} msgs/s, sent ${truth.toFixed(1)} (${JSON.stringify(readings)})`);
    // None of it went through this router: the per-router column says so.
    const via = Number(await page.getAttribute(`${row('echo')} td.routed`, 'data-rate'));
    assert.ok(via < 1, `this router routes ${via} msgs/s to echo`);
  } finally {
    sender.stop();
  }
});

test('snoop: time stamps, filter, pause, clear; plot', { timeout: 120000 }, async () => {
  const lines = () => page.$$eval('#snoop li', (lis) => lis.map((li) => li.textContent));
  const addresses = () => page.$$eval('#snoop li', (lis) => lis.map((li) => li.dataset.address));
  // Click the service `other`: the filter becomes /other.
  await page.click(row('other'));
  assert.equal(await page.inputValue('#filter'), '/other');
  await page.click('#clear');
  assert.deepEqual(await lines(), []);
  // Messages to both; only other's are shown, each with its time of day.
  const echoBefore = await page.evaluate(() => window.monitor.taps.get('echo').meter.total);
  let n = 1000;
  await waitFor(async () => {
    peer.tell(`ping /echo/ping tcp ${n++}`);
    peer.tell(`ping /other/ping tcp ${n++}`);
    return (await addresses()).length > 0 &&
      await page.evaluate((b) => window.monitor.taps.get('echo').meter.total > b, echoBefore);
  }, 30000, 'copies of both services');
  assert.ok((await addresses()).every((a) => a === '/other/ping'), (await addresses()).join());
  assert.match(await page.textContent('#snoop li time'), /^\d\d:\d\d:\d\d\.\d{3}$/, 'a time stamp');
  assert.match(await page.textContent('#snoop li'), /\/other\/ping\s*si\s*"\/r\d+\/pong" \d+/);

  // A pattern typed in: /*/ping shows both.
  await page.click('#filter', { clickCount: 3 });
  await page.keyboard.type('/*/ping');
  await page.click('#clear');
  await waitFor(async () => {
    peer.tell(`ping /echo/ping tcp ${n++}`);
    const a = await addresses();
    return a.includes('/echo/ping');
  }, 20000, 'an echo line through /*/ping');

  // Pause: what comes is counted, not shown; resume shows new messages again.
  await page.click('#pause');
  assert.equal(await page.textContent('#pause'), 'Resume');
  const frozen = await lines();
  // Reliable messages and copies: every one sent while paused arrives (and is counted) before
  // we resume, so none of them can show up after.
  let whilePaused = 0;
  await waitFor(async () => {
    if (!whilePaused) peer.tell(`ping /other/ping tcp ${777000 + whilePaused++}`);
    return page.evaluate(() => window.monitor.snoop.missed > 0);
  }, 20000, 'a message while paused');
  for (let k = 0; k < 4; k++) peer.tell(`ping /other/ping tcp ${777000 + whilePaused++}`);
  await page.waitForFunction((n) => window.monitor.snoop.missed === n, whilePaused, { timeout: 20000 });
  await page.waitForFunction(() => /^paused — \d+ matching/.test(document.getElementById('snoop-status').textContent),
                             null, { timeout: 5000 });
  await sleep(300); // past the 100 ms batch, so that a line would have been drawn
  assert.deepEqual(await lines(), frozen, 'nothing new while paused');
  await page.click('#pause');
  await waitFor(async () => {
    peer.tell(`ping /other/ping tcp 777500`);
    return (await lines()).some((l) => / 777500$/.test(l));
  }, 20000, 'a line after resuming');
  assert.ok(!(await lines()).some((l) => / 7770\d\d$/.test(l)), 'what came while paused stays out');

  // Clear, then the plot: click a line, numbers to that address are drawn.
  await page.click('#clear');
  assert.deepEqual(await lines(), []);
  await waitFor(async () => {
    peer.tell(`ping /other/ping tcp ${n++}`);
    return (await lines()).length > 0;
  }, 20000, 'a line to click');
  await page.click('#snoop li');
  assert.equal(await page.inputValue('#plot-address'), '/other/ping');
  const sender = pacedSender('/other/ping', 10, 5000);
  try {
    await page.waitForFunction(() => window.monitor.plot.drawn >= 5, null, { timeout: 30000, polling: 100 });
  } finally {
    sender.stop();
  }
  // The accent colour (light style) is drawn in the canvas: the line and its points.
  const accent = await page.evaluate(() => {
    const c = document.getElementById('plot');
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let k = 0;
    for (let i = 0; i < px.length; i += 4)
      if (Math.abs(px[i] - 0x15) < 8 && Math.abs(px[i + 1] - 0x65) < 8 && Math.abs(px[i + 2] - 0xc0) < 8) k++;
    return k;
  });
  assert.ok(accent > 20, `${accent} accent pixels in the plot`);
  await page.screenshot({ path: artifactPath('monitor.png'), fullPage: true });
  assert.deepEqual(page.errors, [], 'no errors in the page');
});

test('an ensemble mismatch says which ensemble the router is in, and links to it', { timeout: 60000 }, async () => {
  const wrong = await openMonitor('?ensemble=nosuchensemble');
  await wrong.waitForSelector('#problem[data-kind="mismatch"]', { state: 'visible', timeout: 20000 });
  const text = await wrong.textContent('#problem-text');
  assert.match(text, new RegExp(`router is in ensemble "${ENSEMBLE}".*"nosuchensemble"`), text);
  assert.equal(await wrong.textContent('#state'), 'wrong ensemble');
  await wrong.screenshot({ path: artifactPath('monitor-mismatch.png') });
  await wrong.click('#problem-link');
  await wrong.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                              null, { timeout: 20000 });
  assert.ok(await wrong.isHidden('#problem'));
  assert.equal(new URL(wrong.url()).searchParams.get('ensemble'), ENSEMBLE);
  assert.deepEqual(wrong.errors, []);
  await wrong.close();
});

test('a lost connection is shown, and the page reconnects', { timeout: 90000 }, async () => {
  const port = d.port;
  assert.equal((await d.stop()).code, 0);
  d = null;
  await page.waitForSelector('#problem[data-kind="lost"]', { state: 'visible', timeout: 20000 });
  assert.match(await page.textContent('#problem-text'), /Lost the connection.*reconnecting/);
  assert.equal(await page.textContent('#state'), 'reconnecting');
  d = await startDaemon({ ...daemonOpts, wsKeys: { port } });
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                             null, { timeout: 30000 });
  assert.ok(await page.isHidden('#problem'));
  // The peer's services come back in the view, with their taps.
  await page.waitForSelector(row('echo'), { timeout: 30000 });
  await page.waitForFunction(() => window.monitor.taps.has('echo'), null, { timeout: 10000 });
  assert.deepEqual(page.errors, []);
  await page.close();
});
