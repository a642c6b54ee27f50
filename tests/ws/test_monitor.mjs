// The web monitor (examples/monitor) in headless Chromium, served by an
// o2hub daemon: it lists the ensemble's services with status and provider
// (one offered by another process, tests/e2e/peer), shows the message rate
// this router routes to a service, and snoops on a service's messages
// through a tap (copies of messages the other process delivers to itself).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, until, env, requireDep, startPeer } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found (Debian: apt-get install chromium)`);
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = `wsmon${process.pid}`;

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

let d, peer, ctx, dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-monitor-'));
  const [hubPort, peerPort] = [await freePort(), await freePort()];
  const src = env('SOURCE_ROOT');
  d = await startDaemon({
    ensemble: ENSEMBLE,
    root: join(src, 'examples', 'monitor'),
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
  await peer.expect(/^ready$/);
  peer.tell('offer echo');
  await peer.expect(/^offered echo$/);
  peer.tell('setprop echo kind test');
  await peer.expect(/^setprop /);
  peer.tell('name');
  peer.name = (await peer.expect(/^name @/)).slice(5);
  ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
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

const cell = (page, name, col) =>
  page.textContent(`#services tr[data-name="${name}"] td:nth-child(${col})`);

test('the monitor lists services, shows rates and snoops through a tap', { timeout: 120000 }, async () => {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${d.port}/?ensemble=${ENSEMBLE}`);
  await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                             null, { timeout: 10000 });

  // The other process's service, with its status, provider and properties.
  await page.waitForSelector('#services tr[data-name="echo"]', { timeout: 20000 });
  assert.equal(await cell(page, 'echo', 3), peer.name, 'provider process');
  assert.match(await cell(page, 'echo', 2), /remote/, 'status');
  await until(async () => /kind:test/.test(await cell(page, 'echo', 4)), 10000, 'properties');

  // Rates: the page sends 50 messages a second to echo through this router.
  const sender = setInterval(() => page.evaluate(() => window.o2.send('/echo/ping', 0, 'si', '/nobody/x', 1)), 20);
  try {
    await page.waitForFunction(() => {
      const td = document.querySelector('#services tr[data-name="echo"] td.rate');
      return td && Number(td.textContent) > 10;
    }, null, { timeout: 15000, polling: 200 });
  } finally {
    clearInterval(sender);
  }
  const routed = Number(await cell(page, 'echo', 6));
  assert.ok(routed >= 20, `routed count ${routed}`);

  // Snoop: click echo; the peer's own messages to echo appear in the page.
  await page.click('#services tr[data-name="echo"]');
  await page.waitForFunction(() => document.getElementById('snooped').textContent === 'echo');
  await until(async () => {
    peer.tell('ping /echo/ping tcp 4242');
    return page.$('#snoop li:has-text("/echo/ping si")');
  }, 15000, 'a snooped message');
  const line = await page.textContent('#snoop li');
  assert.match(line, /^\/echo\/ping si .*4242/, line);
  assert.deepEqual(errors, [], 'no errors in the page');
  await page.close();
});
