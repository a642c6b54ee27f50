// The scimu page: range bars that set how the control program maps the
// sensor's roll and pitch (/ctrl/map "sff": name, low, high), and the status
// of the demo's services. ?ensemble=scimu
import { O2ws, STATUS_NAMES } from '/sdk/o2ws.js';

const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'scimu';
const $ = (id) => document.getElementById(id);
const o2 = new O2ws();
window.o2 = o2; // for the console (and tests)
$('ensemble').textContent = ensemble;

o2.onConnect = () => {
  $('state').textContent = 'connected';
  $('state').className = 'up';
};
o2.onDisconnect = () => {
  $('state').textContent = 'disconnected (retrying)';
  $('state').className = 'down';
};

function sendMap(name) {
  const low = Number($(`${name}-low`).value);
  const high = Number($(`${name}-high`).value);
  $(`${name}-low-v`).textContent = low;
  $(`${name}-high-v`).textContent = high;
  o2.sendCmd('/ctrl/map', 0, 'sff', name, low, high);
  $(`${name}-sent`).textContent = `sent ${low} .. ${high}`;
}

for (const name of ['roll', 'pitch'])
  for (const end of ['low', 'high'])
    $(`${name}-${end}`).addEventListener('input', () => sendMap(name));

const names = ['imu', 'ctrl', 'soundcool'];
for (const name of names) {
  const tr = document.createElement('tr');
  tr.dataset.name = name;
  tr.innerHTML = `<td>${name}</td><td class="status">–</td>`;
  $('services').append(tr);
}
o2.watchStatus(names, (name, status) => {
  const cell = document.querySelector(`#services tr[data-name="${name}"] .status`);
  cell.textContent = STATUS_NAMES[status] ?? String(status);
}, 500);

setInterval(() => {
  const t = o2.timeGet();
  $('time').textContent = t < 0 ? 'no clock yet' : t.toFixed(3);
}, 250);

await o2.initialize(ensemble);
