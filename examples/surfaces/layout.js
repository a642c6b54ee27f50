// The layout of a surface as JSON (docs/surfaces.md): checked and completed
// with defaults here, saved to and loaded from the router's /layouts/, and
// exported or imported as a file.

export const FORMAT = 'o2hub-surface';
export const KINDS = ['button', 'slider', 'knob', 'xy', 'label', 'meter'];
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ADDRESS_RE = /^\/[^\s\x03#*?[\]{}]+$/;

// Per kind: the default size in grid cells, types, range and options.
const DEFAULTS = {
  button: { w: 2, h: 2, types: 'i', min: 0, max: 1, mode: 'momentary' },
  slider: { w: 1, h: 4, types: 'f', min: 0, max: 1, orientation: 'vertical' },
  knob: { w: 2, h: 2, types: 'f', min: 0, max: 1 },
  xy: { w: 4, h: 4, types: 'ff', min: 0, max: 1 },
  label: { w: 3, h: 1, types: 's' },
  meter: { w: 1, h: 4, types: 'f', min: 0, max: 1, orientation: 'vertical' },
};

export const validName = (name) => NAME_RE.test(name);

/** A new, empty layout. */
export function emptyLayout() {
  return { format: FORMAT, version: 1, service: 'surface', theme: 'auto',
           grid: { columns: 12, rows: 8 }, widgets: [] };
}

/** A widget of `kind` at (x, y) with a fresh id among `widgets`. */
export function newWidget(kind, widgets, x = 0, y = 0) {
  let n = widgets.length + 1;
  while (widgets.some((w) => w.id === `${kind}${n}`)) n++;
  const id = `${kind}${n}`;
  return normaliseWidget({ id, kind, x, y, label: id, address: `/${id}` });
}

function num(v, fallback) {
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

function normaliseWidget(w) {
  if (!w || typeof w !== 'object' || !KINDS.includes(w.kind))
    throw new Error(`a widget needs a kind, one of ${KINDS.join(', ')}`);
  const d = DEFAULTS[w.kind];
  const out = {
    id: String(w.id || `${w.kind}`),
    kind: w.kind,
    x: Math.max(0, Math.trunc(num(w.x, 0))),
    y: Math.max(0, Math.trunc(num(w.y, 0))),
    w: Math.max(1, Math.trunc(num(w.w, d.w))),
    h: Math.max(1, Math.trunc(num(w.h, d.h))),
    label: String(w.label ?? w.id ?? ''),
    address: String(w.address || ''),
    types: String(w.types || d.types),
    reliable: Boolean(w.reliable),
  };
  if (out.address && !ADDRESS_RE.test(out.address))
    throw new Error(`widget ${out.id}: bad O2 address ${JSON.stringify(out.address)}`);
  if ('min' in d) {
    out.min = num(w.min, d.min);
    out.max = num(w.max, d.max);
    if (out.min === out.max) throw new Error(`widget ${out.id}: min and max are equal`);
    if (!/^[ifd]+$/.test(out.types) || out.types.length !== (w.kind === 'xy' ? 2 : 1))
      throw new Error(`widget ${out.id}: types "${out.types}" (i, f or d; two for an XY pad)`);
  }
  if (d.mode) out.mode = w.mode === 'toggle' ? 'toggle' : 'momentary';
  if (d.orientation) out.orientation = w.orientation === 'horizontal' ? 'horizontal' : 'vertical';
  return out;
}

/** A checked copy of `doc` with every default filled in; throws with a reason. */
export function normaliseLayout(doc) {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('a layout is a JSON object');
  if (doc.format !== undefined && doc.format !== FORMAT) throw new Error(`not an ${FORMAT} layout`);
  const base = emptyLayout();
  const service = String(doc.service || base.service);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(service)) throw new Error(`bad service name ${service}`);
  const grid = {
    columns: Math.min(48, Math.max(1, Math.trunc(num(doc.grid?.columns, 12)))),
    rows: Math.min(48, Math.max(1, Math.trunc(num(doc.grid?.rows, 8)))),
  };
  const widgets = (Array.isArray(doc.widgets) ? doc.widgets : []).map(normaliseWidget);
  const ids = new Set();
  for (const w of widgets) {
    if (ids.has(w.id)) throw new Error(`two widgets are called ${w.id}`);
    ids.add(w.id);
  }
  return { format: FORMAT, version: 1, service, grid, widgets,
           theme: ['light', 'dark'].includes(doc.theme) ? doc.theme : 'auto' };
}

// The page's own ?token= goes with every request when the server asks for one.
function withToken(path) {
  const token = new URLSearchParams(location.search).get('token');
  return token ? `${path}?token=${encodeURIComponent(token)}` : path;
}

async function failure(res) {
  const text = (await res.text()).trim();
  return new Error(`HTTP ${res.status}${text ? `: ${text}` : ''}`);
}

/** The names of the layouts the router keeps (empty when it keeps none). */
export async function listLayouts() {
  const res = await fetch(withToken('/layouts/'));
  if (res.status === 404) return [];
  if (!res.ok) throw await failure(res);
  return res.json();
}

export async function loadLayout(name) {
  if (!validName(name)) throw new Error(`bad layout name ${JSON.stringify(name)}`);
  const res = await fetch(withToken(`/layouts/${name}.json`));
  if (!res.ok) throw await failure(res);
  return normaliseLayout(await res.json());
}

export async function saveLayout(name, layout) {
  if (!validName(name)) throw new Error('a layout name is 1 to 64 of A-Z a-z 0-9 _ -');
  const res = await fetch(withToken(`/layouts/${name}.json`), {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(layout, null, 1),
  });
  if (!res.ok) throw await failure(res);
}

/** Download `layout` as NAME.json. */
export function exportLayout(name, layout) {
  const blob = new Blob([JSON.stringify(layout, null, 1)], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${validName(name) ? name : 'surface'}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** A layout from a File the user chose. */
export async function importLayout(file) {
  return normaliseLayout(JSON.parse(await file.text()));
}
