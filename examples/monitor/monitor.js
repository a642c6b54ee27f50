// The o2hub web monitor (docs/demos.md#the-web-monitor), served by a
// router's websocket transport: the ensemble's processes and their
// services with status and clock; each service's true message rate,
// counted from the copies a tap on it brings (its provider copies every
// message it delivers, so traffic that never passes this router counts),
// beside what this router alone routes (/_o2/hub/counts); a snoop on the
// copies with pause, an address filter, clear and time stamps; a plot of
// an address's numbers. Internal services (_o2, _cs, @process, the
// monitors' own) are hidden unless asked for.
//   ?ensemble=demo   the ensemble (default demo)
//   ?token=...       passed on to the WebSocket when the router wants one
import { O2ws, STATUS_NAMES, TAP_KEEP } from '/sdk/o2ws.js';
import { RateMeter, RoutedRates, formatRate } from './rates.js';
import { Snoop } from './snoop.js';
import { Plot, numericArgs } from './plot.js';
import { themeSelector } from './theme.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'demo';
const me = `monitor${Math.floor(Math.random() * 1e6)}`;
const MONITOR_PROP = 'o2hub-monitor'; // marks this page's services (and other monitors')
const PLOT_ADDRESSES = 200;
const now = () => performance.now() / 1000;

const o2 = new O2ws();
const routed = new RoutedRates();
const taps = new Map();       // tappee -> {tapper, meter}
const tapperNames = new Map(); // tappee -> tapper, kept so a service that comes back gets the same one
let services = [];            // from the last list, taps left out
let selected = null;          // the service clicked (snooped on when rates are not measured)
let failures = 0;             // closes since the last join
let everJoined = false;

const snoop = new Snoop($('snoop'), { onChange: snoopStatus });
const plot = new Plot($('plot'));
const plotAddresses = new Set();
window.monitor = { o2, snoop, plot, taps, routed, me }; // for the browser console (and the tests)

// ---- connection, and why it fails ----

function setState(text, cls) {
  $('state').textContent = text;
  $('state').className = cls;
}

function problem(kind, text, link) {
  const box = $('problem');
  box.hidden = !kind;
  box.dataset.kind = kind || '';
  $('problem-text').textContent = text || '';
  $('problem-link').hidden = !link;
  if (link) {
    $('problem-link').href = link.href;
    $('problem-link').textContent = link.text;
  }
  $('retry').hidden = kind !== 'mismatch';
}

o2.onConnect = () => {
  failures = 0;
  everJoined = true;
  setState('connected', 'up');
  problem(null);
  const t = now();
  for (const tap of taps.values()) tap.meter = new RateMeter(t); // the copies stopped meanwhile
  refresh();
};

o2.onClose = ({ code, reason, joined }) => {
  failures++;
  const wrong = /^wrong ensemble(?:: this router is in "(.*)")?/.exec(reason);
  if (code === 1008 && wrong) {
    // Asking again cannot help until someone changes a name: stop, say which name would work.
    o2.finish();
    setState('wrong ensemble', 'down');
    if (wrong[1] !== undefined) {
      const p = new URLSearchParams(location.search);
      p.set('ensemble', wrong[1]);
      problem('mismatch', `This router is in ensemble "${wrong[1]}", but the page asked to join "${ensemble}".`,
              { href: `?${p}`, text: `Open the monitor of "${wrong[1]}"` });
    } else {
      problem('mismatch', `The router refused ensemble "${ensemble}": it is in another ensemble.`);
    }
    return;
  }
  if (joined || everJoined) {
    setState('reconnecting', 'down');
    problem('lost', `Lost the connection to the router at ${location.host}${code ? ` (WebSocket close ${code}${reason ? `: ${reason}` : ''})` : ''}` +
            ` — reconnecting every second${failures > 1 ? ` (attempt ${failures})` : ''}.`);
  } else {
    setState('connecting', 'down');
    problem('unreachable', `Cannot join through the router at ${location.host}${reason ? ` (${reason})` : ''}` +
            ` — retrying every second (attempt ${failures}). Is it running? Does it want ?token=…?`);
  }
};

$('retry').addEventListener('click', () => {
  failures = 0;
  setState('connecting', 'down');
  problem(null);
  o2.initialize(ensemble);
});

// ---- taps: one tapper service per service, so each copy says whose it is ----

function tapperFor(name) {
  let t = tapperNames.get(name);
  if (!t) {
    t = `${me}x${tapperNames.size}`;
    tapperNames.set(name, t);
    o2.methodNew(`/${t}`, null, (msg) => onCopy(name, t, msg));
  }
  return t;
}

function onCopy(tappee, tapper, msg) {
  const tap = taps.get(tappee);
  if (!tap) return;
  const t = now();
  tap.meter.count(t);
  const address = `/${tappee}${msg.address.slice(tapper.length + 1)}`;
  snoop.add(address, msg, Date.now(), o2.timeGet());
  const nums = numericArgs(msg);
  if (!nums) return;
  if (!plotAddresses.has(address) && plotAddresses.size < PLOT_ADDRESSES) {
    plotAddresses.add(address);
    const opt = document.createElement('option');
    opt.value = opt.textContent = address;
    $('plot-address').append(opt);
  }
  plot.add(address, t, nums);
}

function reconcileTaps() {
  const want = new Set($('measure').checked
    ? services.filter((s) => !isInternal(s)).map((s) => s.name)
    : selected && services.some((s) => s.name === selected && !isInternal(s)) ? [selected] : []);
  for (const [name, tap] of taps)
    if (!want.has(name)) {
      o2.untap(name, tap.tapper);
      o2.removeService(tap.tapper);
      taps.delete(name);
    }
  for (const name of want)
    if (!taps.has(name)) {
      const tapper = tapperFor(name);
      o2.setProperties(tapper, `${MONITOR_PROP}:tap;`);
      o2.tap(name, tapper, TAP_KEEP);
      taps.set(name, { tapper, meter: new RateMeter(now()) });
    }
}

// ---- the ensemble view ----

const isInternal = (s) => /^[_@]/.test(s.name) || new RegExp(`(^|;)${MONITOR_PROP}:`).test(s.properties);
const clockOk = (status) => status >= 4 && status <= 7;

/** "@pppppppp:iiiiiiii:port" (hex) as "192.168.0.2:54321", or the name unchanged. */
function processAddress(name) {
  const m = /^@([0-9a-f]{8}):([0-9a-f]{8}):([0-9a-f]{1,4})$/.exec(name);
  if (!m) return '';
  const ip = (h) => [0, 2, 4, 6].map((i) => parseInt(h.slice(i, i + 2), 16)).join('.');
  const pub = m[1] === '00000000' ? '' : ` (public ${ip(m[1])})`;
  return `${ip(m[2])}:${parseInt(m[3], 16)}${pub}`;
}

function processClock(proc, list) {
  if (proc === '_o2') return routed.routerTime === null ? null : routed.routerTime >= 0;
  const self = list.find((s) => s.name === proc);
  return self ? clockOk(Number(self.status)) : list.some((s) => clockOk(Number(s.status)));
}

function cell(tr, cls) {
  let td = tr.querySelector(`td.${cls.split(' ')[0]}`);
  if (!td) {
    td = document.createElement('td');
    td.className = cls;
    tr.append(td);
  }
  return td;
}

function renderRow(tr, s) {
  const status = Number(s.status);
  tr.classList.toggle('snooped', s.name === selected);
  tr.classList.toggle('internal', isInternal(s));
  cell(tr, 'name').textContent = s.name;
  const st = cell(tr, 'status');
  st.textContent = STATUS_NAMES[status] ?? String(status);
  st.className = `status ${clockOk(status) ? 'up' : status >= 0 ? 'warn' : 'down'}`;
  const rate = cell(tr, 'rate num');
  const tap = taps.get(s.name);
  const r = tap ? tap.meter.rate(now()) : null;
  rate.classList.toggle('unmeasured', r === null);
  if (r !== null) {
    rate.textContent = formatRate(r);
    rate.dataset.rate = String(r);
    rate.title = `${tap.meter.total} messages since the tap began; rate over the last ${tap.meter.windowS} s`;
  } else {
    rate.textContent = tap ? 'measuring…' : 'not measured';
    delete rate.dataset.rate;
    rate.title = tap ? 'the tap has just begun' : isInternal(s)
      ? 'internal services are not tapped' : 'tick "measure rates" (or click the service)';
  }
  const via = cell(tr, 'routed num');
  const vr = routed.rates.get(s.name);
  via.textContent = vr === undefined ? '–' : formatRate(vr);
  via.dataset.rate = vr === undefined ? '' : String(vr);
  via.title = `${routed.counts.get(s.name) ?? 0} messages routed by this router in all`;
  cell(tr, 'props').textContent = s.properties;
}

function render() {
  const showInternal = $('show-internal').checked;
  const byProcess = new Map();
  for (const s of services) {
    if (!showInternal && isInternal(s)) continue;
    if (!byProcess.has(s.process)) byProcess.set(s.process, []);
    byProcess.get(s.process).push(s);
  }
  const procs = [...byProcess.keys()].sort((a, b) => (a === '_o2' ? -1 : b === '_o2' ? 1 : a.localeCompare(b)));
  const box = $('processes');
  const old = new Map([...box.children].map((el) => [el.dataset.process, el]));
  const cards = procs.map((proc) => {
    let card = old.get(proc);
    if (!card) {
      card = document.createElement('article');
      card.className = 'process';
      card.dataset.process = proc;
      card.innerHTML = '<h3><span class="pname"></span><span class="meta addr"></span><span class="meta clock"></span></h3>' +
        '<table><thead><tr><th>service</th><th>status</th><th class="num">msgs/s</th>' +
        '<th class="num">via this router /s</th><th>properties</th></tr></thead><tbody></tbody></table>';
    }
    card.querySelector('.pname').textContent = proc === '_o2' ? 'this router (and its browser and O2lite clients)' : proc;
    card.querySelector('.addr').textContent = processAddress(proc);
    const ok = processClock(proc, services.filter((s) => s.process === proc));
    const clock = card.querySelector('.clock');
    clock.textContent = ok === null ? '' : ok ? 'clock synchronised' : 'no clock yet';
    clock.className = `meta clock ${ok ? 'up' : 'warn'}`;
    const body = card.querySelector('tbody');
    const rows = new Map([...body.children].map((tr) => [tr.dataset.name, tr]));
    body.replaceChildren(...byProcess.get(proc).map((s) => {
      let tr = rows.get(s.name);
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.name = s.name;
        tr.addEventListener('click', () => select(s.name));
      }
      renderRow(tr, s);
      return tr;
    }));
    return card;
  });
  box.replaceChildren(...cards);
  if (!cards.length) box.textContent = o2.connected ? 'No services.' : '';
  const t = routed.routerTime;
  $('clock').textContent = t === null ? '–' : t >= 0 ? `O2 time ${t.toFixed(3)} s` : 'not synchronised yet';
}

function select(name) {
  selected = name;
  $('filter').value = `/${name}`;
  onFilter();
  reconcileTaps();
  render();
}

async function refresh() {
  if (!o2.connected) return;
  o2.send('/_o2/hub/counts', 0, 's', `/${me}/counts`);
  const all = await o2.listServices();
  // Taps (status 8) are listed under their tappee; keep services only.
  services = all.filter((s) => Number(s.status) !== 8).sort((a, b) => a.name.localeCompare(b.name));
  reconcileTaps();
  render();
}

o2.methodNew(`/${me}/counts`, null, (msg) => routed.answer(msg.args));

// ---- snoop and plot controls ----

function snoopStatus() {
  const s = snoop;
  const err = s.filter.error;
  $('filter').classList.toggle('bad', Boolean(err));
  $('snoop-status').textContent = err ? `bad pattern: ${err}`
    : s.paused ? `paused — ${s.missed} matching message${s.missed === 1 ? '' : 's'} not shown`
      : `${$('snoop').children.length} shown${s.filterText ? ` (filter ${s.filterText})` : ''}, ${s.seen} copies received`;
}

function setPaused(p) {
  snoop.setPaused(p);
  plot.setPaused(p, now());
  $('pause').textContent = p ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(p));
}

function onFilter() {
  snoop.setFilter($('filter').value);
}

function choosePlot(address) {
  if (address && !plotAddresses.has(address)) return;
  $('plot-address').value = address;
  plot.setAddress(address || null);
}

$('pause').addEventListener('click', () => setPaused(!snoop.paused));
$('clear').addEventListener('click', () => snoop.clear());
$('filter').addEventListener('input', onFilter);
$('plot-address').addEventListener('change', () => choosePlot($('plot-address').value));
$('snoop').addEventListener('click', (ev) => {
  const li = ev.target.closest('li');
  if (li) choosePlot(li.dataset.address);
});
$('show-internal').addEventListener('change', () => { reconcileTaps(); render(); });
$('measure').addEventListener('change', () => { reconcileTaps(); render(); });
setInterval(() => plot.draw(now()), 100);

// ---- style ----

themeSelector($('theme'), 'o2hub-monitor-theme', () => { plot.dirty = true; });

// ---- start ----

$('ensemble').textContent = ensemble;
o2.setProperties(me, `${MONITOR_PROP}:page;`);
snoopStatus();
setInterval(refresh, 1000);
o2.initialize(ensemble);
