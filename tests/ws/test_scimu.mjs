// The whole scimu demo end to end, as separate real processes on 127.0.0.1:
// oscdump (liblo) stands in for the synthesizer; the control program
// (examples/scimu, embedding libo2hub) offers imu and ctrl, delegates
// soundcool to oscdump over OSC and serves the page; the O2lite sensor
// (examples/o2lite-imu) finds it by O2's UDP discovery and streams
// /imu/imu "fffffff" at 20 Hz; o2ctl sets a mapping before the page opens;
// headless Chromium opens the page, which must start from that mapping,
// show the sensor streaming and the live values (the same values oscdump
// prints), and send /ctrl/map "sff" when an end of an output bar is dragged
// (mouse, then touch) — a small drag changes the mapping a little, and
// oscdump's values follow the new range — and /ctrl/input "sff" when an end
// of an input bar moves (keyboard). The sensor stopped, the page says
// so. Screenshots: scimu.png, scimu-dark.png (artifactPath).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { until, env, requireDep, artifactPath } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const O2CTL = env('O2CTL_EXE') || `${env('SOURCE_ROOT')}build/tools/o2ctl`;
for (const [what, path] of [['chromium', CHROMIUM], ['scimu-control', env('SCIMU_CONTROL')],
                            ['o2lite-imu', env('IMU_EXE')], ['o2ctl', O2CTL]])
  if (!path || !existsSync(path)) {
    console.log(`SKIP: ${what} not found (${path})`);
    process.exit(77);
  }
try {
  execFileSync('sh', ['-c', 'command -v oscdump']);
} catch {
  console.log('SKIP: oscdump not found (Debian: apt-get install liblo-tools)');
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = `scimu${process.pid}`;

const freeTcp = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
const freeUdp = () => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

// A child process whose output lines are kept for find().
function run(exe, args) {
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { child, lines: [], partial: '', exited: null };
  const take = (d) => {
    p.partial += d;
    let i;
    while ((i = p.partial.indexOf('\n')) >= 0) {
      p.lines.push(p.partial.slice(0, i));
      p.partial = p.partial.slice(i + 1);
    }
    if (process.env.WS_TEST_DEBUG) process.stderr.write(d);
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  child.on('exit', (code, sig) => { p.exited = { code, sig }; });
  p.find = (re) => p.lines.find((l) => re.test(l));
  p.stop = async () => {
    if (p.exited) return;
    child.kill('SIGTERM');
    await until(() => p.exited, 5000, `${exe} to stop`).catch(() => child.kill('SIGKILL'));
  };
  return p;
}

let dir, oscdump, control, imu, ctx, httpPort, hubPort;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-scimu-'));
  let oscPort;
  [hubPort, oscPort] = [await freeTcp(), await freeUdp()];
  const src = env('SOURCE_ROOT');
  const config = join(dir, 'control.json');
  writeFileSync(config, JSON.stringify({
    ensemble: ENSEMBLE,
    log_level: 'info',
    clock: { reference: true },
    plugin_path: [env('TRANSPORT_DIR'), env('WS_PLUGIN_DIR'), env('DISCOVERY_DIR')],
    transports: [
      { type: 'tcp', host: '127.0.0.1', port: hubPort },
      { type: 'udp', host: '127.0.0.1', port: hubPort },
      { type: 'osc', delegates: [{ service: 'soundcool', address: `127.0.0.1:${oscPort}` }] },
      { type: 'websocket', host: '127.0.0.1', port: 0, root: join(src, 'examples', 'scimu', 'www'),
        mounts: [{ url: '/sdk/', root: join(src, 'sdk', 'js') },
                 { url: '/monitor/', root: join(src, 'examples', 'monitor') }] },
    ],
    discovery: [{ type: 'broadcast' }],
  }));
  oscdump = run('oscdump', ['-L', String(oscPort)]);
  control = run(env('SCIMU_CONTROL'), ['--config', config]);
  const listening = await until(() => control.exited || control.find(/http:\/\/127\.0\.0\.1:\d+\//),
                                10000, 'the control program to serve the page');
  assert.ok(!control.exited, `control exited: ${control.lines.join('\n')}`);
  httpPort = Number(/127\.0\.0\.1:(\d+)/.exec(listening)[1]);
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 760 },
    hasTouch: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (ctx) await ctx.close();
  for (const p of [imu, control, oscdump]) if (p) await p.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (control) assert.deepEqual(control.exited, { code: 0, sig: null },
                                `the control program stops cleanly: ${control.lines.slice(-5).join('\n')}`);
});

// o2ctl send, joined to the control program by static discovery; resolves when it exits.
async function o2ctlSend(...args) {
  const p = run(O2CTL, ['-e', ENSEMBLE, '-H', '127.0.0.1', '-p', `127.0.0.1:${hubPort}`, 'send', ...args]);
  await until(() => p.exited, 20000, `o2ctl send ${args.join(' ')}`);
  assert.equal(p.exited.code, 0, p.lines.join('\n'));
}

const values = (name) => oscdump.lines.filter((l) => l.includes(` /${name} f `))
  .map((l) => Number(l.split(' ').pop()));
// control's "roll maps to LOW .. HIGH" lines from index `from` on, as [low, high]
const maps = (name, from = 0) => control.lines.slice(from)
  .map((l) => new RegExp(`^control: ${name} maps to (\\S+) \\.\\. (\\S+)$`).exec(l))
  .filter(Boolean).map((m) => [Number(m[1]), Number(m[2])]);
const near = (a, b, eps = 1e-6) => Math.abs(a - b) <= eps;
// what control.c computes from a roll angle
const mapped = (m, deg) => m.low + Math.min(1, Math.max(0, (deg - m.inLow) / (m.inHigh - m.inLow))) * (m.high - m.low);

test('the page starts from the mapping, shows the sensor and sets the range it maps to',
  { timeout: 150000 }, async () => {
    // A mapping other than the defaults before any page opens; bad ones are refused.
    await o2ctlSend('/ctrl/map', 'sff', 'roll', '0.2', '0.8');
    await o2ctlSend('/ctrl/input', 'sff', 'roll', '-10', '10');
    await o2ctlSend('/ctrl/input', 'sff', 'roll', '5', '5');
    await o2ctlSend('/ctrl/map', 'sff', 'yaw', '0', '1');
    await until(() => control.find(/roll reads -10\.0 \.\. 10\.0 degrees/) &&
                control.find(/unknown parameter "yaw"/) && control.find(/two angles must differ/),
                10000, 'the control program to take the mapping and refuse the bad ones');
    assert.deepEqual(maps('roll'), [[0.2, 0.8]]);

    // The sensor streams through the control program to oscdump.
    imu = run(env('IMU_EXE'), ['--ensemble', ENSEMBLE, '--service', 'dev', '--to', '/imu/imu',
                               '--seconds', '140']);
    await until(() => values('roll').length >= 10, 20000, 'ten /roll values at oscdump');
    assert.ok(values('roll').every((v) => v >= 0.2 && v <= 0.8), `roll in 0.2..0.8: ${values('roll')}`);
    assert.ok(values('pitch').every((v) => v >= 0 && v <= 1), `pitch in 0..1: ${values('pitch')}`);

    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${httpPort}/?ensemble=${ENSEMBLE}&sensor=dev`);
    await page.waitForSelector('#state.up', { timeout: 10000 });
    await page.waitForSelector('body[data-ready="1"]', { timeout: 10000 });
    await page.waitForSelector('body[data-sensor="streaming"]', { timeout: 10000 });
    await page.waitForFunction(() => window.scimu.state.sensorStatus >= 0, null, { timeout: 10000 });
    assert.match(await page.textContent('#sensor'), /^streaming, \d+ readings\/s$/);
    assert.match(await page.textContent('#services tr[data-name="dev"] .status'), /bridge/);

    // The bars are the control program's mapping, where a user sees them.
    const st = await page.evaluate(() => window.scimu.state.map);
    assert.deepEqual(st.roll, { inLow: -10, inHigh: 10, low: 0.2, high: 0.8 });
    assert.deepEqual(st.pitch, { inLow: -90, inHigh: 90, low: 0, high: 1 });
    const box = async (sel) => (await page.$(sel)).boundingBox();
    const centre = (b) => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 });
    const rollOut = '.param[data-name="roll"] .out';
    const track = await box(`${rollOut} .track`);
    for (const [end, t] of [['low', 0.2], ['high', 0.8]]) {
      const c = centre(await box(`${rollOut} .end[data-end="${end}"]`));
      assert.ok(Math.abs(c.x - (track.x + t * track.width)) < 2, `the ${end} end sits at ${t} of the bar`);
    }
    assert.equal(await page.textContent(`${rollOut} .labels [data-end="high"]`), '0.800');
    assert.equal(await page.textContent('.param[data-name="roll"] .in .labels [data-end="low"]'), '-10.0°');

    // The live values: the page shows what the control program sent to soundcool.
    await page.waitForFunction(() => window.scimu.state.readings >= 5, null, { timeout: 10000 });
    const r = await page.evaluate(() => window.scimu.state.reading);
    assert.ok(near(r.rollOut, mapped(st.roll, r.roll), 1e-4), `roll ${r.roll} -> ${r.rollOut}`);
    await until(() => values('roll').some((v) => near(v, r.rollOut, 2e-6)), 5000,
                `oscdump to have printed the roll value the page shows (${r.rollOut})`);
    assert.match(await page.textContent('.param[data-name="roll"] .live'), /^-?\d+\.\d° → \d\.\d{3}$/);
    const marker = centre(await box(`${rollOut} .marker`));
    assert.ok(marker.x > track.x + 0.2 * track.width - 2 && marker.x < track.x + 0.8 * track.width + 2,
              'the output marker is inside the range');

    // A small mouse drag of the output's high end, held 10 px right of its centre: the
    // mapping moves a little (by the 15 px moved, not to where the pointer is), no jump.
    const mark = control.lines.length;
    const high = centre(await box(`${rollOut} .end[data-end="high"]`));
    await page.mouse.move(high.x + 10, high.y);
    await page.mouse.down();
    await page.mouse.move(high.x + 10 - 15, high.y, { steps: 5 });
    await page.mouse.up();
    const shown = await page.evaluate(() => [window.scimu.bars.roll.output.low, window.scimu.bars.roll.output.high]);
    await until(() => { const m = maps('roll', mark); return m.length && near(m.at(-1)[1], shown[1]); },
                10000, `the control program to map roll to ${shown}`);
    const during = maps('roll', mark);
    assert.ok(during.length >= 2, `several /ctrl/map during the drag: ${JSON.stringify(during)}`);
    assert.ok(during.every(([lo]) => near(lo, 0.2)), `the low end stays: ${JSON.stringify(during)}`);
    assert.ok(near(during[0][1], 0.8, 0.01) && during[0][1] < 0.8,
              `the first /ctrl/map is next to the mapping it started from: ${during[0]}`);
    assert.ok(shown[1] < 0.8 && shown[1] > 0.77, `15 px of a ${track.width} px bar: ${shown}`);
    assert.equal(control.lines.slice(mark).filter((l) => / reads | pitch maps /.test(l)).length, 0,
                 'nothing else was sent');

    // A touch drag of the low end up to 0.7: oscdump's values follow the new range.
    const mark2 = control.lines.length;
    const low = centre(await box(`${rollOut} .end[data-end="low"]`));
    const target = track.x + 0.7 * track.width;
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: low.x, y: low.y, id: 1 }] });
    for (let k = 1; k <= 10; k++)
      await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove',
        touchPoints: [{ x: low.x + ((target - low.x) * k) / 10, y: low.y, id: 1 }] });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    const final = await page.evaluate(() => [window.scimu.bars.roll.output.low, window.scimu.bars.roll.output.high]);
    assert.ok(near(final[0], 0.7, 0.005) && near(final[1], shown[1]), `after the touch drag: ${final}`);
    await until(() => { const m = maps('roll', mark2); return m.length && near(m.at(-1)[0], final[0]); },
                10000, `the control program to map roll to ${final}`);
    const rising = maps('roll', mark2).map(([lo]) => lo);
    assert.ok(rising.every((v, i) => i === 0 || v > rising[i - 1]), `in order: ${rising}`);
    // Values sent before the change may still be on their way: from the first value in the
    // new range on, every one is in it (UDP on loopback keeps their order).
    const before = values('roll').length;
    const inRange = (v) => v >= final[0] - 1e-6 && v <= final[1] + 1e-6;
    await until(() => { const f = values('roll').slice(before), i = f.findIndex(inRange);
                        return i >= 0 && f.length - i >= 12; }, 15000, 'twelve /roll values in the new range');
    const fresh = values('roll').slice(before);
    const first = fresh.findIndex(inRange);
    assert.ok(first <= 10, `at most a few values in flight from the old range: ${fresh}`);
    assert.ok(fresh.slice(first).every(inRange), `roll values after the page set ${final}: ${fresh}`);
    assert.ok(values('roll').slice(0, before).some((v) => v < final[0]), 'the old range gave other values');
    await page.waitForFunction((lo) => window.scimu.state.reading.rollOut >= lo - 1e-6, final[0],
                               { timeout: 5000 });
    assert.deepEqual(await page.evaluate(() => window.scimu.state.map.roll),
                     { inLow: -10, inHigh: 10, low: final[0], high: final[1] },
                     'the control program told the page the mapping it now uses');

    // The input bar, by keyboard: roll's high angle one degree down.
    const mark3 = control.lines.length;
    await page.focus('.param[data-name="roll"] .in .end[data-end="high"]');
    await page.keyboard.press('ArrowLeft');
    await until(() => control.lines.slice(mark3).includes('control: roll reads -10.0 .. 9.0 degrees'),
                10000, 'the control program to take /ctrl/input from the page');
    await page.waitForFunction(() => window.scimu.state.map.roll.inHigh === 9, null, { timeout: 5000 });
    assert.deepEqual(maps('roll', mark3), [], 'the output range stays');

    await page.screenshot({ path: artifactPath('scimu.png') });
    await page.selectOption('#theme', 'dark');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    await page.screenshot({ path: artifactPath('scimu-dark.png') });

    // The sensor stops: the page says it is gone.
    await imu.stop();
    await page.waitForSelector('body[data-sensor="disconnected"]', { timeout: 15000 });
    assert.match(await page.textContent('#sensor'), /^disconnected/);
    assert.equal(await page.textContent('.param[data-name="roll"] .live'), '–');
    assert.deepEqual(errors, [], 'no errors in the page');
    await page.close();
  });
