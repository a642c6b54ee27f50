// The control-surface designer (docs/surfaces.md). Edit mode places widgets
// on a grid and sets what each sends; play mode sends on pointer input and
// moves widgets from messages to the surface's own service:
// /SERVICE/synth/freq f 440 moves the widgets bound to /synth/freq.
//   ?ensemble=demo  the ensemble (default demo)
//   ?layout=NAME    load the router's layouts/NAME.json at start
//   ?token=...      passed on to the WebSocket and to /layouts/
import { O2ws } from '/sdk/o2ws.js';
import { KINDS, emptyLayout, newWidget, normaliseLayout, validName, listLayouts, loadLayout,
         saveLayout, exportLayout, importLayout } from './layout.js';
import { Widget } from './widgets.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ensemble = params.get('ensemble') || 'demo';

let layout = emptyLayout();
let widgets = new Map(); // id -> Widget
let selected = null;     // a widget id, in edit mode
let mode = 'edit';
const offered = new Set();

const o2 = new O2ws();
window.o2 = o2; // for the browser console (and the tests)
o2.onConnect = (id) => setState(`connected (bridge ${id})`, true);
o2.onDisconnect = () => setState('disconnected', false);
o2.onError = (text) => console.warn('o2ws:', text);

function setState(text, up) {
  $('state').textContent = text;
  $('state').className = up ? 'up' : 'down';
}

function say(text, bad = false) {
  $('message').textContent = text;
  $('message').className = bad ? 'bad' : '';
}

// ---- the surface's service: messages to it move widgets ----

function offerService(name) {
  for (const old of offered) if (old !== name) { o2.removeService(old); offered.delete(old); }
  if (offered.has(name)) return;
  offered.add(name);
  o2.methodNew(`/${name}`, null, (msg) => {
    if (name !== layout.service) return;
    const address = msg.address.slice(name.length + 1);
    for (const w of widgets.values()) if (w.spec.address === address) w.setFromMessage(msg.args);
  });
  o2.setServices(name);
}

function send(spec, values) {
  if (!spec.address) return;
  if (spec.reliable) o2.sendCmd(spec.address, 0, spec.types, ...values);
  else o2.send(spec.address, 0, spec.types, ...values);
}

// ---- drawing ----

function applyTheme() {
  const dark = layout.theme === 'dark' ||
    (layout.theme === 'auto' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  $('theme').value = layout.theme;
}

function render() {
  const grid = $('surface');
  grid.style.setProperty('--columns', layout.grid.columns);
  grid.style.setProperty('--rows', layout.grid.rows);
  const keep = new Map([...widgets].map(([id, w]) => [id, w]));
  grid.replaceChildren();
  widgets = new Map();
  for (const spec of layout.widgets) {
    const w = new Widget(spec, send);
    const old = keep.get(spec.id);
    if (old && old.spec.kind === spec.kind) { w.t = old.t.slice(0, w.t.length); w.on = old.on; w._render(); }
    w.playing = mode === 'play';
    w.el.style.gridColumn = `${spec.x + 1} / span ${spec.w}`;
    w.el.style.gridRow = `${spec.y + 1} / span ${spec.h}`;
    if (mode === 'edit') {
      w.el.classList.toggle('selected', spec.id === selected);
      const handle = document.createElement('div');
      handle.className = 'handle';
      handle.title = 'resize';
      w.el.append(handle);
      w.el.addEventListener('pointerdown', (e) => startEditDrag(e, spec, e.target === handle));
    }
    grid.append(w.el);
    widgets.set(spec.id, w);
  }
  document.body.dataset.mode = mode;
  $('mode').textContent = mode === 'edit' ? 'Play' : 'Edit';
  $('service').value = layout.service;
  $('columns').value = layout.grid.columns;
  $('rows').value = layout.grid.rows;
  applyTheme();
  showInspector();
}

// ---- edit mode: move, resize, inspect ----

function startEditDrag(e, spec, resizing) {
  if (mode !== 'edit') return;
  e.preventDefault();
  selected = spec.id;
  const target = e.currentTarget;
  target.setPointerCapture(e.pointerId);
  // whole cells from where the pointer went down, in the grid's size then
  const box = $('surface').getBoundingClientRect();
  const { columns, rows } = layout.grid;
  const cellW = box.width / columns, cellH = box.height / rows;
  const start = { x: spec.x, y: spec.y, w: spec.w, h: spec.h, px: e.clientX, py: e.clientY };
  const move = (ev) => {
    const dx = Math.round((ev.clientX - start.px) / cellW), dy = Math.round((ev.clientY - start.py) / cellH);
    if (resizing) {
      spec.w = Math.max(1, Math.min(columns - spec.x, start.w + dx));
      spec.h = Math.max(1, Math.min(rows - spec.y, start.h + dy));
    } else {
      spec.x = Math.max(0, Math.min(columns - spec.w, start.x + dx));
      spec.y = Math.max(0, Math.min(rows - spec.h, start.y + dy));
    }
    target.style.gridColumn = `${spec.x + 1} / span ${spec.w}`;
    target.style.gridRow = `${spec.y + 1} / span ${spec.h}`;
  };
  const up = () => {
    target.removeEventListener('pointermove', move);
    target.removeEventListener('pointerup', up);
    target.removeEventListener('pointercancel', up);
    render();
  };
  target.addEventListener('pointermove', move);
  target.addEventListener('pointerup', up);
  target.addEventListener('pointercancel', up);
  for (const el of $('surface').children) el.classList.toggle('selected', el === target);
  showInspector();
}

// The first free cell for a w x h widget (else the top left corner).
function freeSpot(w, h) {
  const { columns, rows } = layout.grid;
  const taken = (x, y) => layout.widgets.some((s) =>
    x < s.x + s.w && s.x < x + w && y < s.y + s.h && s.y < y + h);
  for (let y = 0; y + h <= rows; y++)
    for (let x = 0; x + w <= columns; x++) if (!taken(x, y)) return { x, y };
  return { x: 0, y: 0 };
}

function addWidget(kind) {
  const spec = newWidget(kind, layout.widgets);
  Object.assign(spec, freeSpot(spec.w, spec.h));
  layout.widgets.push(spec);
  selected = spec.id;
  render();
}

const FIELDS = ['label', 'address', 'types', 'min', 'max', 'reliable', 'mode', 'orientation', 'w', 'h'];

function showInspector() {
  // always there in edit mode, so that the grid keeps its size while a widget is dragged
  const spec = layout.widgets.find((s) => s.id === selected);
  $('inspector').hidden = mode !== 'edit';
  $('prop-id').textContent = spec ? `${spec.kind} ${spec.id}` : 'Select a widget';
  $('remove').hidden = !spec;
  for (const f of FIELDS) {
    const input = $(`prop-${f}`);
    const row = input.closest('label');
    row.hidden = !spec || !(f in spec);
    if (row.hidden) continue;
    if (input.type === 'checkbox') input.checked = spec[f];
    else if (document.activeElement !== input) input.value = spec[f];
  }
}

function updateSelected() {
  const i = layout.widgets.findIndex((s) => s.id === selected);
  if (i < 0) return;
  const spec = { ...layout.widgets[i] };
  for (const f of FIELDS) {
    if (!(f in spec)) continue;
    const input = $(`prop-${f}`);
    spec[f] = input.type === 'checkbox' ? input.checked : input.type === 'number' ? Number(input.value) : input.value;
  }
  try {
    const widgets2 = layout.widgets.slice();
    widgets2[i] = spec;
    layout = normaliseLayout({ ...layout, widgets: widgets2 });
    say('');
    render();
  } catch (err) {
    say(err.message, true);
  }
}

function removeSelected() {
  layout.widgets = layout.widgets.filter((s) => s.id !== selected);
  selected = null;
  render();
}

function setLayout(doc, name) {
  layout = normaliseLayout(doc);
  selected = null;
  if (name) $('name').value = name;
  offerService(layout.service);
  render();
}

// ---- saving, loading, files ----

async function refreshList() {
  try {
    const names = await listLayouts();
    $('layouts').replaceChildren(...names.map((n) => new Option(n, n)));
  } catch (err) {
    say(`cannot list the layouts: ${err.message}`, true);
  }
}

async function save() {
  const name = $('name').value.trim();
  try {
    await saveLayout(name, layout);
    const url = new URL(location.href);
    url.searchParams.set('layout', name);
    history.replaceState(null, '', url);
    say(`saved ${name}`);
    document.body.dataset.saved = name;
    await refreshList();
  } catch (err) {
    say(`not saved: ${err.message}`, true);
  }
}

async function load(name) {
  try {
    setLayout(await loadLayout(name), name);
    say(`loaded ${name}`);
    document.body.dataset.loaded = name;
  } catch (err) {
    say(`cannot load ${name}: ${err.message}`, true);
  }
}

// ---- the toolbar ----

for (const kind of KINDS) {
  const b = document.createElement('button');
  b.textContent = `+ ${kind}`;
  b.dataset.add = kind;
  b.addEventListener('click', () => addWidget(kind));
  $('palette').append(b);
}
$('mode').addEventListener('click', () => {
  mode = mode === 'edit' ? 'play' : 'edit';
  render();
});
for (const f of FIELDS) $(`prop-${f}`).addEventListener('change', updateSelected);
$('remove').addEventListener('click', removeSelected);
$('service').addEventListener('change', () => {
  try {
    setLayout({ ...layout, service: $('service').value.trim() });
    say('');
  } catch (err) {
    say(err.message, true);
  }
});
for (const id of ['columns', 'rows'])
  $(id).addEventListener('change', () => {
    layout.grid[id] = Math.max(1, Math.min(48, Number($(id).value) || 1));
    render();
  });
$('theme').addEventListener('change', () => { layout.theme = $('theme').value; applyTheme(); });
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme);
$('save').addEventListener('click', save);
$('load').addEventListener('click', () => $('layouts').value && load($('layouts').value));
$('export').addEventListener('click', () => exportLayout($('name').value.trim(), layout));
$('import').addEventListener('change', async () => {
  const file = $('import').files[0];
  if (!file) return;
  try {
    setLayout(await importLayout(file), file.name.replace(/\.json$/, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64));
    say(`imported ${file.name}`);
  } catch (err) {
    say(`cannot import ${file.name}: ${err.message}`, true);
  }
  $('import').value = '';
});

// ---- start ----

$('ensemble').textContent = ensemble;
offerService(layout.service);
render();
const start = params.get('layout');
if (start && validName(start)) {
  await load(start);
  mode = 'play';
  render();
}
refreshList();
setState('connecting', false);
o2.initialize(ensemble).catch((err) => setState(`cannot connect: ${err.message || err}`, false));
document.body.dataset.ready = '1';
