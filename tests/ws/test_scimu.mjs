// The whole scimu demo end to end, as separate real processes on 127.0.0.1:
// oscdump (liblo) stands in for the synthesizer; the control program
// (examples/scimu, embedding libo2hub) offers imu and ctrl, delegates
// soundcool to oscdump over OSC and serves the page; the O2lite sensor
// (examples/o2lite-imu) finds it by O2's UDP discovery and streams
// /imu/imu "fffffff" at 20 Hz; headless Chromium opens the page and moves a
// range bar; oscdump must then print /roll values inside the new range.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { until, env, requireDep } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
for (const [what, path] of [['chromium', CHROMIUM], ['scimu-control', env('SCIMU_CONTROL')],
                            ['o2lite-imu', env('IMU_EXE')]])
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

// A child process whose output lines are kept for expect().
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

let dir, oscdump, control, imu, ctx, httpPort;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-scimu-'));
  const [hubPort, oscPort] = [await freeTcp(), await freeUdp()];
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
        mounts: [{ url: '/sdk/', root: join(src, 'sdk', 'js') }] },
    ],
    discovery: [{ type: 'broadcast' }],
  }));
  oscdump = run('oscdump', ['-L', String(oscPort)]);
  control = run(env('SCIMU_CONTROL'), ['--config', config]);
  const listening = await until(() => control.exited || control.find(/http:\/\/127\.0\.0\.1:\d+\//),
                                10000, 'the control program to serve the page');
  assert.ok(!control.exited, `control exited: ${control.lines.join('\n')}`);
  httpPort = Number(/127\.0\.0\.1:(\d+)/.exec(listening)[1]);
  imu = run(env('IMU_EXE'), ['--ensemble', ENSEMBLE, '--service', 'dev', '--to', '/imu/imu',
                             '--seconds', '120']);
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (ctx) await ctx.close();
  for (const p of [imu, control, oscdump]) if (p) await p.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const rolls = () => oscdump.lines.filter((l) => / \/roll f /.test(l))
  .map((l) => Number(l.split(' ').pop()));

test('sensor -> control -> OSC, with the page setting the mapping', { timeout: 120000 }, async () => {
  // The sensor streams through the control program to oscdump (default range 0..1).
  await until(() => rolls().length >= 10, 15000, 'ten /roll values at oscdump');
  assert.ok(rolls().every((v) => v >= 0 && v <= 1), `default range: ${rolls().slice(0, 5)}`);

  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${httpPort}/?ensemble=${ENSEMBLE}`);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                             null, { timeout: 10000 });
  // The page sees the demo's services (imu and ctrl from the control program).
  await page.waitForFunction(() => {
    const st = document.querySelector('#services tr[data-name="ctrl"] .status');
    return st && st.textContent !== '–' && st.textContent !== '-1';
  }, null, { timeout: 10000 });

  // Move the range bars: roll into 300 .. 400.
  for (const [id, v] of [['roll-high', 400], ['roll-low', 300]])
    await page.$eval(`#${id}`, (el, value) => {
      el.value = String(value);
      el.dispatchEvent(new Event('input'));
    }, v);
  await until(() => control.find(/roll maps to 300\.000 \.\. 400\.000/), 10000,
              'the control program to take the new range');
  const before = rolls().length;
  await until(() => rolls().length >= before + 10, 10000, 'ten more /roll values');
  const fresh = rolls().slice(before + 2); // values in flight may use the old range
  assert.ok(fresh.length > 0 && fresh.every((v) => v >= 300 && v <= 400),
            `roll values after the page set 300..400: ${fresh.slice(0, 10)}`);
  assert.ok(oscdump.lines.some((l) => / \/pitch f /.test(l)), 'pitch reaches oscdump too');
  assert.deepEqual(errors, [], 'no errors in the page');
  await page.close();
});
