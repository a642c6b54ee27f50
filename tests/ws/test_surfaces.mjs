// The control-surface designer (examples/surfaces) in headless Chromium,
// served by an o2hub daemon with a "layouts" folder: a surface built in the
// page (a slider bound to /synth/freq f 20..2000, a toggle) is saved to the
// router and comes back on reload; dragging the slider with the mouse sends
// values that `o2ctl dump synth` prints in range and in order; o2ctl's
// /surface/... messages move the widgets. Then the endpoint's refusals:
// a name with ../, a bad name, a body over layouts_max_bytes, a foreign
// Origin, a missing token, a read-only folder (HTTP status checked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync,
         rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, until, env, requireDep, freePort, useTls, origin, certificateFiles,
         artifactPath } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found (Debian: apt-get install chromium)`);
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = `wssurf${process.pid}`;
const O2CTL = env('O2CTL_EXE') || `${env('SOURCE_ROOT')}build/tools/o2ctl`;
const MAX_BYTES = 4096;

let d, dir, layouts, hubPort, ctx;
const children = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-surfaces-'));
  layouts = join(dir, 'layouts');
  mkdirSync(layouts);
  hubPort = await freePort();
  const src = env('SOURCE_ROOT');
  d = await startDaemon({
    ensemble: ENSEMBLE,
    root: join(src, 'examples', 'surfaces'),
    mounts: [{ url: '/sdk/', root: join(src, 'sdk', 'js') }],
    wsKeys: { layouts, layouts_max_bytes: MAX_BYTES },
    transports: [{ type: 'tcp', host: '127.0.0.1', port: hubPort },
                 { type: 'udp', host: '127.0.0.1', port: hubPort }],
  });
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: useTls,
    viewport: { width: 1200, height: 800 },
    hasTouch: true,
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  if (ctx) await ctx.close();
  if (d) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

// o2ctl joined to the daemon by static discovery; stdout lines and stderr kept.
function o2ctl(...args) {
  const child = spawn(O2CTL, ['-e', ENSEMBLE, '-H', '127.0.0.1', '-p', `127.0.0.1:${hubPort}`,
                              ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const p = { child, out: '', err: '', exited: null };
  child.stdout.on('data', (b) => { p.out += b; });
  child.stderr.on('data', (b) => { p.err += b; });
  child.on('exit', (code) => { p.exited = { code }; });
  p.lines = () => p.out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return p;
}

// One HTTP request as written (node does not normalise "../" in a path).
function request(method, path, { body, headers = {} } = {}) {
  const lib = useTls ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request({ host: '127.0.0.1', port: d.port, method, path, headers,
                              ...(useTls ? { ca: certificateFiles().ca } : {}) }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Fill a widget's properties in the inspector, then one change event applies them all.
async function setProps(page, props) {
  for (const [k, v] of Object.entries(props)) {
    const sel = `#prop-${k}`;
    if (typeof v === 'boolean') await page.setChecked(sel, v);
    else if ((await page.$eval(sel, (e) => e.tagName)) === 'SELECT') await page.selectOption(sel, v);
    else await page.fill(sel, String(v));
  }
  await page.$eval('#prop-label', (e) => e.dispatchEvent(new Event('change')));
}

const widgetsOf = (page) => page.$$eval('#surface .widget', (els) =>
  els.map((e) => ({ id: e.dataset.id, kind: e.dataset.kind, value: e.dataset.value })));

test('build, save, reload, play and receive with a surface', { timeout: 150000 }, async () => {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin(d.port)}/?ensemble=${ENSEMBLE}`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 10000 });
  await page.waitForSelector('#state.up', { timeout: 10000 });

  // edit mode: a vertical slider and a toggle, bound with the inspector
  await page.click('button[data-add="slider"]');
  await setProps(page, { label: 'freq', address: '/synth/freq', types: 'f', min: 20, max: 2000,
                         reliable: true, h: 6 });
  await page.click('button[data-add="button"]');
  await setProps(page, { label: 'gate', address: '/synth/gate', types: 'i', mode: 'toggle' });
  assert.equal(await page.textContent('#message'), '', 'the inspector accepted the properties');
  const built = await widgetsOf(page);
  assert.deepEqual(built.map((w) => [w.id, w.kind]), [['slider1', 'slider'], ['button2', 'button']]);

  await page.fill('#name', 'synthtest');
  await page.click('#save');
  await page.waitForSelector('body[data-saved="synthtest"]', { timeout: 5000 });
  const saved = JSON.parse(readFileSync(join(layouts, 'synthtest.json'), 'utf8'));
  assert.equal(saved.format, 'o2hub-surface');
  assert.deepEqual(saved.widgets.map((w) => [w.id, w.kind, w.address, w.types, w.min, w.max]),
                   [['slider1', 'slider', '/synth/freq', 'f', 20, 2000],
                    ['button2', 'button', '/synth/gate', 'i', 0, 1]]);
  assert.equal(saved.widgets[1].mode, 'toggle');
  assert.equal(saved.widgets[0].h, 6);
  assert.deepEqual(readdirSync(layouts), ['synthtest.json'], 'no temporary file is left');

  // reload: ?layout=synthtest brings the same layout back, in play mode
  assert.match(page.url(), /[?&]layout=synthtest/);
  await page.reload();
  await page.waitForSelector('body[data-loaded="synthtest"][data-mode="play"]', { timeout: 10000 });
  await page.waitForSelector('#state.up', { timeout: 10000 });
  assert.deepEqual((await widgetsOf(page)).map((w) => [w.id, w.kind]),
                   built.map((w) => [w.id, w.kind]));
  assert.ok((await page.$$eval('#layouts option', (os) => os.map((o) => o.value))).includes('synthtest'));

  // o2ctl offers "synth"; the page's router must know it before the drag
  const dump = o2ctl('-j', '-d', '60', 'dump', 'synth');
  await until(() => dump.err.includes('offering synth') || dump.exited, 10000, 'o2ctl dump to offer synth');
  assert.equal(dump.exited, null, dump.err);
  await pageKnows(page, 'synth');

  // drag the slider from bottom to top with the mouse (pointer events)
  const track = await (await page.$('.widget[data-id="slider1"] .track')).boundingBox();
  const x = track.x + track.width / 2;
  await page.mouse.move(x, track.y + track.height - 2);
  await page.mouse.down();
  await page.mouse.move(x, track.y + 2, { steps: 25 });
  await page.mouse.up();
  const shown = Number(await page.getAttribute('.widget[data-id="slider1"]', 'data-value'));
  assert.ok(shown > 1900, `the slider is near its top after the drag (${shown})`);
  await until(() => {
    const l = dump.lines().filter((m) => m.address === '/synth/freq');
    return l.length && Math.abs(l[l.length - 1].args[0] - shown) < 1;
  }, 10000, 'o2ctl to print the last slider value');
  const freqs = dump.lines().filter((m) => m.address === '/synth/freq');
  assert.ok(freqs.length >= 10, `many values during the drag (${freqs.length})`);
  for (const [i, m] of freqs.entries()) {
    assert.equal(m.types, 'f');
    assert.equal(m.reliable, true);
    const v = m.args[0];
    assert.ok(v >= 20 && v <= 2000, `value ${v} in 20..2000`);
    if (i) assert.ok(v > freqs[i - 1].args[0], `values rise in order: ${freqs.map((f) => f.args[0])}`);
  }
  assert.ok(freqs[0].args[0] < 100, `the drag starts near the bottom (${freqs[0].args[0]})`);

  // the toggle: one click on, one click off
  await page.click('.widget[data-id="button2"]');
  await page.click('.widget[data-id="button2"]');
  await until(() => dump.lines().filter((m) => m.address === '/synth/gate').length >= 2, 10000,
              'the toggle\'s two messages');
  assert.deepEqual(dump.lines().filter((m) => m.address === '/synth/gate').map((m) => m.args[0]), [1, 0]);

  // two-way: o2ctl moves the widgets through the surface's service
  const countBefore = dump.lines().length;
  for (const args of [['/surface/synth/freq', 'f', '440'], ['/surface/synth/gate', 'i', '1']]) {
    const s = o2ctl('send', ...args);
    await until(() => s.exited, 15000, `o2ctl send ${args[0]}`);
    assert.equal(s.exited.code, 0, s.err);
  }
  await page.waitForSelector('.widget[data-id="slider1"][data-value="440"]', { timeout: 5000 });
  await page.waitForSelector('.widget[data-id="button2"].on', { timeout: 5000 });
  const fill = await page.$eval('.widget[data-id="slider1"] .fill', (e) => e.style.getPropertyValue('--t'));
  assert.ok(Math.abs(Number(fill) - (440 - 20) / 1980) < 1e-6, `the fill follows (${fill})`);
  assert.equal(dump.lines().length, countBefore, 'a widget moved by a message sends nothing back');

  // the dark style, and a screenshot as the test's artifact
  await page.selectOption('#theme', 'dark');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
  await page.screenshot({ path: artifactPath('surfaces.png') });
  assert.deepEqual(errors, [], 'no page errors');
  dump.child.kill('SIGTERM');
  await page.close();
});

// Until the page knows `service` (its router routes to it).
async function pageKnows(page, service) {
  const end = Date.now() + 10000;
  while ((await page.evaluate((s) => window.o2.status(s), service)) < 0) {
    assert.ok(Date.now() < end, `the page sees service ${service}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('every kind of widget, two fingers at once, edit moves, export and import', { timeout: 150000 }, async () => {
  copyFileSync(join(env('SOURCE_ROOT'), 'examples', 'surfaces-layouts', 'demo.json'), join(layouts, 'demo.json'));
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin(d.port)}/?ensemble=${ENSEMBLE}&layout=demo`);
  await page.waitForSelector('body[data-loaded="demo"][data-mode="play"]', { timeout: 10000 });
  assert.deepEqual((await widgetsOf(page)).map((w) => w.kind).sort(),
                   ['button', 'knob', 'label', 'meter', 'slider', 'slider', 'xy']);
  const dump = o2ctl('-j', '-d', '60', 'dump', 'synth');
  await until(() => dump.err.includes('offering synth') || dump.exited, 10000, 'o2ctl dump to offer synth');
  await pageKnows(page, 'synth');
  const of = (address) => dump.lines().filter((m) => m.address === address);
  const box = async (sel) => (await page.$(sel)).boundingBox();

  // two touch points at once: freq (vertical) up and pan (horizontal) right
  const freq = await box('.widget[data-id="freq"] .track');
  const pan = await box('.widget[data-id="pan"] .track');
  const cdp = await ctx.newCDPSession(page);
  const points = (k) => [
    { x: freq.x + freq.width / 2, y: freq.y + freq.height * (0.9 - 0.08 * k), id: 1 },
    { x: pan.x + pan.width * (0.1 + 0.08 * k), y: pan.y + pan.height / 2, id: 2 },
  ];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: points(0) });
  for (let k = 1; k <= 10; k++)
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: points(k) });
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await until(() => of('/synth/freq').length >= 8 && of('/synth/pan').length >= 8, 10000,
              'both sliders\' values');
  const f = of('/synth/freq').map((m) => m.args[0]), p = of('/synth/pan').map((m) => m.args[0]);
  assert.ok(f.every((v) => v >= 20 && v <= 2000) && f[f.length - 1] > f[0], `freq ${f}`);
  assert.ok(p.every((v) => v >= -1 && v <= 1) && p[p.length - 1] > p[0], `pan ${p}`);

  // a knob turns by vertical dragging: 100 px is half its range
  const gain = await box('.widget[data-id="gain"] .dial');
  await page.mouse.move(gain.x + gain.width / 2, gain.y + gain.height / 2);
  await page.mouse.down();
  await page.mouse.move(gain.x + gain.width / 2, gain.y + gain.height / 2 - 100, { steps: 10 });
  await page.mouse.up();
  assert.equal(await page.getAttribute('.widget[data-id="gain"]', 'data-value'), '0.50');
  await until(() => of('/synth/gain').some((m) => Math.abs(m.args[0] - 0.5) < 1e-6), 10000, 'gain 0.5');

  // an XY pad sends both values, y upwards
  const pad = await box('.widget[data-id="filter"] .pad');
  await page.mouse.click(pad.x + pad.width * 0.75, pad.y + pad.height * 0.25);
  const xy = await until(() => of('/synth/filter')[0], 10000, 'the pad\'s message');
  assert.equal(xy.types, 'ff');
  assert.ok(Math.abs(xy.args[0] - 0.75) < 0.02 && Math.abs(xy.args[1] - 0.75) < 0.02, `${xy.args}`);

  // a meter and a label only display what arrives
  for (const args of [['/surface/synth/level', 'f', '0.7'], ['/surface/synth/title', 's', 'hello']]) {
    const s = o2ctl('send', ...args);
    await until(() => s.exited, 15000, `o2ctl send ${args[0]}`);
    assert.equal(s.exited.code, 0, s.err);
  }
  await page.waitForSelector('.widget[data-id="level"][data-value="0.70"]', { timeout: 5000 });
  await page.waitForSelector('.widget[data-id="title"][data-value="hello"]', { timeout: 5000 });
  const level = await box('.widget[data-id="level"] .track');
  await page.mouse.click(level.x + level.width / 2, level.y + 2);
  assert.equal(await page.getAttribute('.widget[data-id="level"]', 'data-value'), '0.70', 'a meter takes no input');
  assert.equal(of('/synth/level').length, 0);

  // edit mode: drag the meter one cell to the right, then export the layout
  await page.click('#mode');
  await page.waitForSelector('body[data-mode="edit"]');
  const grid = await box('#surface');
  const cell = grid.width / 12;
  const meter = await box('.widget[data-id="level"]');
  await page.mouse.move(meter.x + meter.width / 2, meter.y + meter.height / 2);
  await page.mouse.down();
  await page.mouse.move(meter.x + meter.width / 2 + cell, meter.y + meter.height / 2, { steps: 5 });
  await page.mouse.up();
  // ... and its corner one cell right and one row down: 2 x 5 cells
  const rowH = grid.height / 8;
  const corner = await box('.widget[data-id="level"] .handle');
  await page.mouse.move(corner.x + corner.width / 2, corner.y + corner.height / 2);
  await page.mouse.down();
  await page.mouse.move(corner.x + corner.width / 2 + cell, corner.y + corner.height / 2 + rowH, { steps: 5 });
  await page.mouse.up();
  const resized = await box('.widget[data-id="level"]');
  assert.ok(Math.abs(resized.width - 2 * meter.width) < cell / 2, `width ${resized.width} from ${meter.width}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const exported = join(dir, 'exported.json');
  await download.saveAs(exported);
  const doc = JSON.parse(readFileSync(exported, 'utf8'));
  const moved = doc.widgets.find((w) => w.id === 'level');
  assert.equal(moved.x, 9, 'the meter moved from column 8 to 9');
  assert.deepEqual([moved.y, moved.w, moved.h], [0, 2, 5], 'its corner resized it from 1 x 4 to 2 x 5');

  // import: a file with one more widget replaces the layout; a bad one is refused
  doc.widgets.push({ id: 'extra', kind: 'knob', x: 10, y: 6, address: '/synth/extra' });
  writeFileSync(join(dir, 'more.json'), JSON.stringify(doc));
  await page.setInputFiles('#import', join(dir, 'more.json'));
  await page.waitForSelector('.widget[data-id="extra"][data-kind="knob"]', { timeout: 5000 });
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ widgets: [{ kind: 'slider', min: 1, max: 1 }] }));
  await page.setInputFiles('#import', join(dir, 'bad.json'));
  await page.waitForSelector('#message.bad', { timeout: 5000 });
  assert.match(await page.textContent('#message'), /min and max are equal/);
  assert.ok(await page.$('.widget[data-id="extra"]'), 'the layout stays as it was');

  // the light style
  await page.selectOption('#theme', 'light');
  assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
  await page.screenshot({ path: artifactPath('surfaces-demo-edit.png') });
  assert.deepEqual(errors, [], 'no page errors');
  dump.child.kill('SIGTERM');
  await page.close();
});

test('the layouts endpoint refuses bad names, large bodies, foreign origins', async () => {
  const ok = await request('PUT', '/layouts/a_b-1.json', { body: '{"widgets": []}' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await request('GET', '/layouts/a_b-1.json')).text, '{"widgets": []}');
  assert.deepEqual(JSON.parse((await request('GET', '/layouts/')).text).sort(), ['a_b-1', 'demo', 'synthtest']);
  for (const path of ['/layouts/../evil.json', '/layouts/..%2fevil.json', '/layouts/%2e%2e%2fevil.json',
                      '/layouts/sub/evil.json']) {
    const r = await request('PUT', path, { body: '{}' });
    assert.equal(r.status, 403, `${path}: ${r.text}`);
    assert.equal((await request('GET', path)).status, 403, `GET ${path}`);
  }
  for (const path of [`/layouts/${'x'.repeat(65)}.json`, '/layouts/a!b.json', '/layouts/a.txt',
                      '/layouts/.json', '/layouts/a.json.json']) {
    const r = await request('PUT', path, { body: '{}' });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
  }
  assert.equal((await request('PUT', `/layouts/${'x'.repeat(64)}.json`, { body: '{}' })).status, 200);
  const big = JSON.stringify({ pad: 'x'.repeat(MAX_BYTES) });
  assert.equal((await request('PUT', '/layouts/big.json', { body: big })).status, 413);
  assert.equal((await request('PUT', '/layouts/big.json', {
    body: big, headers: { 'Transfer-Encoding': 'chunked' } })).status, 413, 'chunked, no length');
  assert.equal((await request('PUT', '/layouts/notjson.json', { body: '[1, 2]' })).status, 400);
  assert.equal((await request('PUT', '/layouts/foreign.json', {
    body: '{}', headers: { Origin: 'http://evil.example' } })).status, 403);
  assert.equal((await request('GET', '/layouts/a_b-1.json', {
    headers: { Origin: 'http://evil.example' } })).status, 403);
  assert.equal((await request('GET', '/layouts/nosuch.json')).status, 404);
  const del = await request('DELETE', '/layouts/a_b-1.json');
  assert.equal(del.status, 405);
  assert.equal(del.headers.allow, 'GET, HEAD, PUT');
  assert.equal(del.headers['cache-control'], 'no-store');
  const files = readdirSync(layouts).sort();
  assert.deepEqual(files, ['a_b-1.json', 'demo.json', 'synthtest.json', `${'x'.repeat(64)}.json`]);
  assert.ok(!existsSync(join(dir, 'evil.json')), 'nothing was written outside the folder');
});

test('with a token and read-only', async () => {
  const ro = join(dir, 'ro');
  mkdirSync(ro);
  const t = await startDaemon({ ensemble: `${ENSEMBLE}ro`,
                                wsKeys: { layouts: ro, layouts_read_only: true, token: 'sekrit-token' } });
  try {
    const get = (path, headers) => new Promise((resolve, reject) => {
      const lib = useTls ? https : http;
      const req = lib.request({ host: '127.0.0.1', port: t.port, method: path[0], path: path[1], headers,
                                ...(useTls ? { ca: certificateFiles().ca } : {}) },
                              (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end(path[0] === 'PUT' ? '{}' : undefined);
    });
    assert.equal(await get(['GET', '/layouts/']), 403, 'no token');
    assert.equal(await get(['GET', '/layouts/?token=wrong-token']), 403, 'a wrong token');
    assert.equal(await get(['GET', '/layouts/?token=sekrit-token']), 200);
    assert.equal(await get(['GET', '/layouts/'], { Authorization: 'Bearer sekrit-token' }), 200);
    assert.equal(await get(['PUT', '/layouts/x.json']), 403, 'PUT without a token');
    assert.equal(await get(['PUT', '/layouts/x.json?token=sekrit-token']), 403, 'read-only');
    assert.deepEqual(readdirSync(ro), []);
  } finally {
    assert.equal((await t.stop()).code, 0);
  }
});

// An installed example's folder belongs to root: it is served read-only, with a warning that
// says what to do, instead of a 500 on every Save. As root, a read-only bind mount in a mount
// namespace of the daemon's own stands for it.
test('a layouts folder this user cannot write is served read-only', async (t) => {
  const folder = join(dir, 'unwritable');
  mkdirSync(folder);
  writeFileSync(join(folder, 'shipped.json'), '{"widgets": []}');
  let wrap = [];
  if (process.getuid() === 0) {
    if (spawnSync('unshare', ['-m', 'true']).status !== 0) return t.skip('root without mount namespaces');
    wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c',
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
            'sh', folder];
  } else {
    chmodSync(folder, 0o555);
  }
  const u = await startDaemon({ ensemble: `${ENSEMBLE}uw`, wsKeys: { layouts: folder }, wrap });
  try {
    assert.match(u.log(), /layouts folder .*unwritable is not writable .*served read-only/);
    const ask = (method, path, body) => new Promise((resolve, reject) => {
      const lib = useTls ? https : http;
      const req = lib.request({ host: '127.0.0.1', port: u.port, method, path,
                                ...(useTls ? { ca: certificateFiles().ca } : {}) }, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal((await ask('GET', '/layouts/shipped.json')).text, '{"widgets": []}');
    const put = await ask('PUT', '/layouts/mine.json', '{}');
    assert.equal(put.status, 403, put.text);
    assert.match(put.text, /read-only/);
  } finally {
    chmodSync(folder, 0o755);
    assert.equal((await u.stop()).code, 0);
  }
});
