// The example page: lists the ensemble's services and their status live,
// offers a service of its own and sends messages. Query parameters:
// ?ensemble=demo&service=browser
import { O2ws, STATUS_NAMES } from '/sdk/o2ws.js';

const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'demo';
const service = params.get('service') || 'browser';
const $ = (id) => document.getElementById(id);
const o2 = new O2ws();
window.o2 = o2; // for the console (and tests)

$('ensemble').textContent = ensemble;
$('myservice').textContent = service;

function log(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('log').prepend(li);
}

// Everything sent to our service is shown.
o2.methodNew('/' + service, null, (msg) => {
  log(`${msg.address} ${msg.types} ${msg.raw.join(' ')}`);
});

o2.onConnect = (id) => {
  $('state').textContent = 'connected';
  $('state').className = 'up';
  $('bridge').textContent = id;
};
o2.onDisconnect = () => {
  $('state').textContent = 'disconnected (retrying)';
  $('state').className = 'down';
  $('bridge').textContent = '–';
};

setInterval(() => {
  const t = o2.timeGet();
  $('time').textContent = t < 0 ? 'no clock yet' : t.toFixed(3);
}, 100);

async function refresh() {
  if (!o2.connected) return;
  const items = (await o2.listServices()).sort((a, b) => a.name.localeCompare(b.name));
  const body = $('services').tBodies[0];
  body.replaceChildren(...items.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.name = s.name;
    tr.dataset.status = s.status;
    for (const [text, cls] of [[s.name], [STATUS_NAMES[s.status] ?? String(s.status), `st-${s.status}`],
                               [s.process], [s.properties]]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
}
setInterval(refresh, 1000);

$('sendform').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const types = $('types').value.trim();
  const text = $('args').value;
  const values = types.length ? text.split(',').map((s) => s.trim()) : [];
  try {
    const send = $('reliable').checked ? o2.sendCmd : o2.send;
    send.call(o2, $('address').value.trim(), 0, types, ...values);
    log(`sent ${$('address').value} ${types} ${values.join(' ')}`);
  } catch (e) {
    log(`not sent: ${e.message}`);
  }
});

o2.initialize(ensemble, { services: service }).then(refresh);
