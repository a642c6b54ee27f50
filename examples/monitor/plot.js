// A live plot on a canvas: the numeric arguments (i h f d t) of the
// messages to one address over the last `seconds`, one line per argument,
// the y axis fitted to what is shown. At most `maxPoints` messages kept.

const NUMERIC = new Set(['i', 'h', 'f', 'd', 't']);
const COLORS = ['--accent', '--on', '#43a047', '#8e24aa', '#00897b', '#f4511e', '#6d4c41', '#3949ab'];

/** The numbers among a message's arguments (null if it has none). */
export function numericArgs(msg) {
  const out = [];
  for (let k = 0; k < msg.types.length; k++) if (NUMERIC.has(msg.types[k])) out.push(Number(msg.args[k]));
  return out.length ? out : null;
}

export class Plot {
  constructor(canvas, { seconds = 10, maxPoints = 5000 } = {}) {
    this.canvas = canvas;
    this.seconds = seconds;
    this.maxPoints = maxPoints;
    this.address = null;
    this.points = []; // [t (s), [values]]
    this.frozenAt = null; // while paused: the time the plot stopped at
    this.dirty = true;
    this.drawn = 0;   // points drawn by the last draw (for the tests)
  }

  setAddress(address) {
    this.address = address;
    this.points = [];
    this.dirty = true;
  }

  add(address, t, values) {
    if (address !== this.address || this.frozenAt !== null) return;
    this.points.push([t, values]);
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    this.dirty = true;
  }

  setPaused(paused, now) {
    this.frozenAt = paused ? now : null;
    this.dirty = true;
  }

  _color(k, style) {
    const c = COLORS[k % COLORS.length];
    return c.startsWith('--') ? style.getPropertyValue(c).trim() || '#1565c0' : c;
  }

  /** Draw the window ending at `now` (seconds, the clock of `add`). */
  draw(now) {
    const end = this.frozenAt ?? now;
    const start = end - this.seconds;
    const cv = this.canvas;
    const dpr = globalThis.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(cv.clientWidth * dpr)), h = Math.max(1, Math.round(cv.clientHeight * dpr));
    if (cv.width !== w || cv.height !== h) { cv.width = w; cv.height = h; }
    const g = cv.getContext('2d');
    const style = getComputedStyle(cv);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const W = w / dpr, H = h / dpr, left = 56, right = 8, top = 8, bottom = 22;
    g.fillStyle = style.getPropertyValue('--panel').trim() || '#fff';
    g.fillRect(0, 0, W, H);
    while (this.points.length && this.points[0][0] < start - 1 && this.frozenAt === null) this.points.shift();
    const shown = this.points.filter(([t]) => t >= start && t <= end);
    let lo = Infinity, hi = -Infinity;
    for (const [, vs] of shown) for (const v of vs) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const fg = style.getPropertyValue('--muted').trim() || '#666';
    g.font = '12px system-ui, sans-serif';
    g.fillStyle = fg;
    g.strokeStyle = style.getPropertyValue('--line').trim() || '#bbb';
    g.lineWidth = 1;
    g.strokeRect(left, top, W - left - right, H - top - bottom);
    g.textBaseline = 'top';
    g.fillText(`−${this.seconds} s`, left, H - bottom + 4);
    g.textAlign = 'right';
    g.fillText(this.frozenAt === null ? 'now' : 'paused', W - right, H - bottom + 4);
    this.drawn = shown.length;
    this.dirty = false;
    if (!shown.length) {
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillText(this.address ? `no numbers to ${this.address} in the last ${this.seconds} s` : 'choose an address to plot',
                 (left + W - right) / 2, (top + H - bottom) / 2);
      g.textAlign = 'left';
      return;
    }
    if (hi === lo) { hi += 1; lo -= 1; }
    const pad = (hi - lo) * 0.05;
    hi += pad; lo -= pad;
    const x = (t) => left + ((t - start) / this.seconds) * (W - left - right);
    const y = (v) => top + ((hi - v) / (hi - lo)) * (H - top - bottom);
    g.textBaseline = 'top';
    g.fillText(label(hi), left - 4, top);
    g.textBaseline = 'bottom';
    g.fillText(label(lo), left - 4, H - bottom);
    g.textAlign = 'left';
    const series = Math.max(...shown.map(([, vs]) => vs.length));
    g.lineWidth = 2;
    for (let k = 0; k < series; k++) {
      g.strokeStyle = g.fillStyle = this._color(k, style);
      g.beginPath();
      let first = true;
      for (const [t, vs] of shown) {
        if (!Number.isFinite(vs[k])) continue;
        if (first) g.moveTo(x(t), y(vs[k])); else g.lineTo(x(t), y(vs[k]));
        first = false;
      }
      g.stroke();
      if (shown.length < 200) for (const [t, vs] of shown) if (Number.isFinite(vs[k])) g.fillRect(x(t) - 2, y(vs[k]) - 2, 4, 4);
    }
  }
}

function label(v) {
  const a = Math.abs(v);
  return a >= 1e5 || (a < 1e-3 && a > 0) ? v.toExponential(2) : String(Math.round(v * 1000) / 1000);
}
