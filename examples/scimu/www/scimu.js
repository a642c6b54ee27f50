// The scimu page (docs/demos.md#scimu-sensor--control--osc--browser): for
// roll and pitch, an input range in degrees (upper bar) and the output range
// it maps to (lower bar), each with two draggable ends and the live value;
// whether the sensor is streaming; the demo's services.
//
// It talks to the control program (examples/scimu/control.c, service ctrl):
//   /ctrl/watch "s" VIEW            on every connection (and again while nothing comes):
//                                   the control program answers /VIEW/map for each
//                                   parameter and sends /VIEW/reading for every reading
//   /VIEW/map "sffff"               parameter, input low, high (degrees), output low, high:
//                                   the mapping the control program uses now; the bars
//                                   start from it (they are disabled until it comes)
//   /VIEW/reading "ffff"            roll, pitch (degrees), the roll and pitch values it
//                                   has just sent to soundcool
//   /ctrl/map "sff", /ctrl/input "sff"  sent while an end of an output / input bar moves
//
//   ?ensemble=scimu   the ensemble (default scimu)
//   ?sensor=dev       the sensor's service, whose status tells whether it is connected
//   ?token=...        passed on to the WebSocket when the router wants one
import { O2ws, STATUS_NAMES } from '/sdk/o2ws.js';
import { themeSelector } from '/monitor/theme.js';
import { RangeBar } from './rangebar.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'scimu';
const sensor = params.get('sensor') || 'dev';
const view = `scimuview${Math.floor(Math.random() * 1e6)}`;
const PARAMS = ['roll', 'pitch'];
const SILENT_AFTER = 1.0; // seconds without a reading before the sensor counts as silent
const RETRY_WATCH = 2.0;  // seconds between /ctrl/watch while no mapping or no reading comes
const now = () => performance.now() / 1000;

const o2 = new O2ws();
// What the page knows, for the console (and the tests).
const state = {
  view, sensor, ready: false, connectedAt: 0,
  map: {},               // name -> {inLow, inHigh, low, high}, as the control program last said
  reading: null,         // {roll, pitch, rollOut, pitchOut}, the last one
  lastReading: -Infinity, recent: [], readings: 0,
  sensorStatus: -1, sensorState: 'disconnected',
};
const bars = {};
window.scimu = { o2, state, bars };

// ---- the bars ----

// An axis that holds [low, high]: 0..1 (soundcool's usual range) widened to round numbers.
function outputAxis(low, high, [min, max] = [0, 1]) {
  const nice = (x) => {
    const p = 10 ** Math.floor(Math.log10(x));
    return [1, 2, 5, 10].map((k) => k * p).find((v) => v >= x);
  };
  const lo = Math.min(low, high), hi = Math.max(low, high);
  if (lo < min) min = -nice(-lo);
  if (hi > max) max = nice(hi);
  return [min, max];
}

function setReady(ready) {
  state.ready = ready;
  document.body.dataset.ready = ready ? '1' : '0';
  for (const b of Object.values(bars)) {
    b.input.el.classList.toggle('disabled', !ready);
    b.output.el.classList.toggle('disabled', !ready);
  }
}

for (const name of PARAMS) {
  const div = document.createElement('div');
  div.className = 'param';
  div.dataset.name = name;
  div.innerHTML = `<h3>${name} <span class="live">–</span></h3>
    <p class="which">input: ${name} in degrees</p><div class="in"></div>
    <p class="which">output: sent as /soundcool/${name}</p><div class="out"></div>`;
  $('params').append(div);
  const input = new RangeBar(div.querySelector('.in'), {
    min: -90, max: 90, step: 0.1, unit: '°', label: `${name} input`,
    onChange: (low, high) => {
      if (low === high) return; // the control program refuses equal angles
      o2.sendCmd('/ctrl/input', 0, 'sff', name, low, high);
      bars[name].input.pending = { low, high, at: now() };
    },
  });
  const output = new RangeBar(div.querySelector('.out'), {
    min: 0, max: 1, label: `${name} output`,
    onChange: (low, high) => {
      o2.sendCmd('/ctrl/map', 0, 'sff', name, low, high);
      bars[name].output.pending = { low, high, at: now() };
    },
  });
  bars[name] = { input, output, live: div.querySelector('.live') };
}
setReady(false);

// While this page's own changes are on their way, the control program's echoes of earlier
// ones would pull the ends back: a bar takes a mapping once its last change has come back.
const PENDING_FOR = 2.0; // seconds; then the bar asks again (another page may have won)
const same = (a, b) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a));
function settled(bar, low, high) {
  const p = bar.pending;
  if (!p) return true;
  if (!same(p.low, low) || !same(p.high, high)) return false;
  bar.pending = null;
  return true;
}

// The control program keeps 32-bit floats: 0.8 arrives as 0.800000012; 7 digits are all it has.
const f32 = (v) => Number(v.toPrecision(7));

o2.methodNew(`/${view}/map`, 'sffff', ({ args }) => {
  const [name, inLow, inHigh, low, high] = [args[0], ...args.slice(1).map(f32)];
  const b = bars[name];
  if (!b) return;
  state.map[name] = { inLow, inHigh, low, high };
  if (settled(b.input, inLow, inHigh)) b.input.set(inLow, inHigh);
  if (!b.output.busy) {
    const [min, max] = outputAxis(low, high, [b.output.min, b.output.max]);
    if (min !== b.output.min || max !== b.output.max) b.output.setAxis(min, max);
  }
  if (settled(b.output, low, high)) b.output.set(low, high);
  if (!state.ready && PARAMS.every((n) => state.map[n])) setReady(true);
});

o2.methodNew(`/${view}/reading`, 'ffff', ({ args: [roll, pitch, rollOut, pitchOut] }) => {
  const t = now();
  state.reading = { roll, pitch, rollOut, pitchOut };
  state.lastReading = t;
  state.readings++;
  state.recent.push(t);
  while (state.recent.length && state.recent[0] < t - 2) state.recent.shift();
  for (const [name, deg, out] of [['roll', roll, rollOut], ['pitch', pitch, pitchOut]]) {
    const b = bars[name];
    b.input.setValue(deg);
    b.output.setValue(out);
    b.live.textContent = `${b.input.format(deg)} → ${b.output.format(out)}`;
  }
});

// ---- connection, sensor, services ----

o2.setServices(view);
const watch = () => o2.sendCmd('/ctrl/watch', 0, 's', view);
o2.onConnect = () => {
  $('state').textContent = 'connected';
  $('state').className = 'up';
  state.connectedAt = now();
  watch();
};
o2.onDisconnect = () => {
  $('state').textContent = 'disconnected (retrying)';
  $('state').className = 'down';
  setReady(false); // the control program may come back with another mapping
  for (const b of Object.values(bars)) b.input.pending = b.output.pending = null;
};

function showProblem(text) {
  $('problem').hidden = !text;
  $('problem-text').textContent = text || '';
}

function sensorState() {
  const t = now();
  const age = t - state.lastReading;
  let s, text, cls;
  if (age < SILENT_AFTER) {
    s = 'streaming';
    text = `streaming, ${(state.recent.length / 2).toFixed(0)} readings/s`;
    cls = 'up';
  } else if (state.sensorStatus >= 0) {
    s = 'silent';
    text = state.readings ? `connected, no reading for ${age.toFixed(0)} s` : 'connected, no readings yet';
    cls = 'warn';
  } else {
    s = 'disconnected';
    text = state.readings ? `disconnected (last reading ${age.toFixed(0)} s ago)` : 'not connected';
    cls = 'down';
  }
  if (s !== 'streaming' && state.sensorState === 'streaming')
    for (const b of Object.values(bars)) {
      b.input.setValue(null);
      b.output.setValue(null);
      b.live.textContent = '–';
    }
  state.sensorState = s;
  document.body.dataset.sensor = s;
  $('sensor').textContent = text;
  $('sensor').className = cls;
  // Nothing from the control program, or a change of ours not answered: ask again (a
  // repeated /ctrl/watch is harmless; its answer is the mapping in use).
  let stale = false;
  for (const b of Object.values(bars))
    for (const bar of [b.input, b.output])
      if (bar.pending && !bar.busy && t - bar.pending.at > PENDING_FOR) {
        bar.pending = null;
        stale = true;
      }
  if (stale) state.lastWatch = 0;
  const quiet = stale || !state.ready || (s !== 'streaming' && age > RETRY_WATCH);
  if (o2.connected && quiet && t - (state.lastWatch || 0) > RETRY_WATCH) {
    state.lastWatch = t;
    watch();
  }
  showProblem(o2.connected && !state.ready && t - state.connectedAt > 5
    ? 'The control program (service ctrl) has not told its mapping: is it running in this ensemble?'
    : null);
  const clock = o2.timeGet();
  $('time').textContent = clock < 0 ? 'no clock yet' : clock.toFixed(1);
}
setInterval(sensorState, 250);

const names = ['ctrl', 'imu', 'soundcool', sensor];
for (const name of new Set(names)) {
  const tr = document.createElement('tr');
  tr.dataset.name = name;
  tr.innerHTML = `<td>${name}${name === sensor ? ' (sensor)' : ''}</td><td class="status">–</td>`;
  document.querySelector('#services tbody').append(tr);
}
o2.watchStatus([...new Set(names)], (name, status) => {
  if (name === sensor) {
    state.sensorStatus = status;
    sensorState();
  }
  const cell = document.querySelector(`#services tr[data-name="${name}"] .status`);
  cell.textContent = status < 0 ? 'unknown' : (STATUS_NAMES[status] ?? String(status));
  cell.className = `status ${status < 0 ? 'down' : 'up'}`;
}, 500);

themeSelector($('theme'), 'o2hub-scimu-theme');
$('ensemble').textContent = ensemble;
$('sensor-name').textContent = sensor;
sensorState();
await o2.initialize(ensemble);
