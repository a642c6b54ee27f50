// The o2hub web monitor, served by a router's websocket transport: the
// ensemble's services with their status, provider process and properties,
// the messages per second this router routes to each (from its
// /_o2/hub/counts answers), the clock, and a live snoop of the messages to
// a chosen service through a tap. ?ensemble=demo
import { O2ws, STATUS_NAMES } from '/sdk/o2ws.js';

const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'demo';
const $ = (id) => document.getElementById(id);
const o2 = new O2ws();
window.o2 = o2; // for the console (and tests)
const me = `monitor${Math.floor(Math.random() * 1e6)}`;
const SNOOP_LINES = 200;
let snooped = null;
let lastCounts = null; // {time, counts: Map}
let rates = new Map();
let routed = new Map();

$('ensemble').textContent = ensemble;
o2.onConnect = (id) => {
  $('state').textContent = 'connected';
  $('state').className = 'up';
  $('bridge').textContent = id;
};
o2.onDisconnect = () => {
  $('state').textContent = 'disconnected (retrying)';
  $('state').className = 'down';
};

// /_o2/hub/counts answers: "t" + ("sh")*.
o2.methodNew(`/${me}/counts`, null, (msg) => {
  const now = Math.abs(Number(msg.args[0]));
  const counts = new Map();
  for (let i = 1; i + 1 < msg.args.length; i += 2) counts.set(msg.args[i], Number(msg.args[i + 1]));
  if (lastCounts && now > lastCounts.time) {
    const dt = now - lastCounts.time;
    rates = new Map([...counts].map(([name, n]) => [name, (n - (lastCounts.counts.get(name) ?? n)) / dt]));
  }
  routed = counts;
  lastCounts = { time: now, counts };
});

// Copies of the snooped service's messages arrive as /<me>/...
o2.methodNew(`/${me}`, null, (msg) => {
  const li = document.createElement('li');
  const rest = msg.address.slice(msg.address.indexOf('/', 1));
  li.textContent = `/${snooped}${rest} ${msg.types} ${msg.args.join(' ')}`;
  $('snoop').prepend(li);
  while ($('snoop').children.length > SNOOP_LINES) $('snoop').lastChild.remove();
});

function snoop(name) {
  if (snooped === name) return;
  if (snooped) o2.untap(snooped, me);
  snooped = name;
  $('snooped').textContent = name;
  $('snoop').replaceChildren();
  o2.tap(name, me);
  render();
}

let services = [];
function render() {
  const body = $('services').tBodies[0];
  body.replaceChildren(...services.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.name = s.name;
    if (s.name === snooped) tr.className = 'snooped';
    const rate = rates.get(s.name);
    const cells = [[s.name], [STATUS_NAMES[s.status] ?? String(s.status)], [s.process],
                   [s.properties], [rate === undefined ? '' : rate.toFixed(1), 'num rate'],
                   [String(routed.get(s.name) ?? ''), 'num routed']];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    tr.addEventListener('click', () => snoop(s.name));
    return tr;
  }));
}

async function refresh() {
  if (!o2.connected) return;
  o2.send(`/_o2/hub/counts`, 0, 's', `/${me}/counts`);
  const all = await o2.listServices();
  // Taps (status 8) are listed under their tappee; show services only, our own hidden.
  services = all.filter((s) => Number(s.status) !== 8 && s.name !== me)
    .sort((a, b) => a.name.localeCompare(b.name));
  render();
  const t = o2.timeGet();
  $('clock').textContent = t < 0 ? 'not synchronised yet' : `O2 time ${t.toFixed(3)} s`;
}
setInterval(refresh, 1000);

await o2.initialize(ensemble, { services: me });
refresh();
