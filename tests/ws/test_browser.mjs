// End to end in headless Chromium (Debian's, driven by npm playwright-core):
// the example page (examples/www, with sdk/js/o2ws.js) is served by an o2hub
// daemon's websocket transport, connects, offers its service "browser",
// which appears in another o2hub process (tests/e2e/peer, over tcp/udp with
// static discovery); a message typed into the page goes browser -> router ->
// peer -> router -> browser, and the peer reaches the browser's service.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, until, env, requireDep, origin, useTls, freePort, startPeer } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} not found (Debian: apt-get install chromium)`);
  process.exit(77);
}
const { chromium } = requireDep('playwright-core');
const ENSEMBLE = 'wsbrowser';

let d, peer, ctx, dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'o2hub-browser-'));
  const [hubPort, peerPort] = [await freePort(), await freePort()];
  const src = env('SOURCE_ROOT');
  d = await startDaemon({
    ensemble: ENSEMBLE,
    root: join(src, 'examples', 'www'),
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
  if (peer) {
    peer.tell('quit');
    await until(() => peer.child.exitCode !== null, 5000, 'peer exit').catch(() => peer.child.kill());
  }
  if (d) assert.equal((await d.stop()).code, 0, 'the daemon stops cleanly');
  rmSync(dir, { recursive: true, force: true });
});

test('the example page joins, its service reaches another process, messages round-trip',
  { timeout: 120000 }, async () => {
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${origin(d.port)}/?ensemble=${ENSEMBLE}&service=browser`);
    await page.waitForFunction(() => document.getElementById('state').textContent === 'connected',
                               null, { timeout: 10000 });
    const id = Number(await page.textContent('#bridge'));
    assert.ok(id > 0, `bridge id ${id}`);

    // The browser's service appears in the other process (its /_o2/si).
    const si = await peer.expect(/^si browser \d+ @/, 20000);
    assert.match(si, /^si browser [15] @/, si); // REMOTE(_NOTIME) there, provided by the hub
    // and the peer's service in the page's list, live
    await page.waitForSelector('#services tr[data-name="echo"]', { timeout: 20000 });

    // The page's clock syncs with the host; then the host reports its service as
    // BRIDGE (6) rather than BRIDGE_NOTIME (2).
    await page.waitForFunction(() => window.o2.timeGet() > 0, null, { timeout: 10000 });
    await page.waitForFunction(async () => (await window.o2.status('browser')) === 6, null,
                               { timeout: 10000, polling: 100 });

    // browser -> router -> peer -> router -> browser, through the page's form
    await page.fill('#address', '/echo/ping');
    await page.fill('#types', 'si');
    await page.fill('#args', '/browser/pong,41');
    await page.click('#send');
    const echo = await page.waitForSelector('#log li:has-text("/browser/pong is 42")', { timeout: 10000 });
    assert.match(await echo.textContent(), /^\/browser\/pong is 42 @/);

    // best effort too (UDP between the processes)
    await page.uncheck('#reliable');
    await page.fill('#args', '/browser/pong,99');
    await page.click('#send');
    await page.waitForSelector('#log li:has-text("/browser/pong is 100")', { timeout: 10000 });

    // the peer sends to the browser's service on its own
    peer.tell('ping /browser/hello tcp 7');
    await page.waitForSelector('#log li:has-text("/browser/hello si")', { timeout: 10000 });

    if (process.env.WS_SCREENSHOT) await page.screenshot({ path: process.env.WS_SCREENSHOT, fullPage: true });
    assert.deepEqual(errors, [], 'no errors in the page');

    // Closing the page removes the service from the other process.
    await page.close();
    for (const end = Date.now() + 10000; ; await new Promise((r) => setTimeout(r, 100))) {
      peer.tell('status browser');
      const st = await peer.expect(/^status browser /);
      if (st === 'status browser -1') break;
      assert.ok(Date.now() < end, `the service stayed: ${st}`);
    }
  });
