// A range bar: an axis min..max with two draggable ends (low, high) and a
// live value drawn on it. Ends move with pointer events (mouse, pen, touch:
// each pointer drags the end it pressed), by the arrow keys, or by a press
// on the track, which brings the nearer end there. A drag moves an end by as
// much as the pointer moves (the offset at the press is kept), so a press
// alone changes nothing. Ends may cross: low above high inverts a mapping.
//
//   const bar = new RangeBar(el, { min: -90, max: 90, step: 0.5, unit: '°',
//                                  onChange: (low, high) => ..., onEnd: () => ... });
//   bar.set(low, high); bar.setValue(v); bar.setAxis(min, max);

const decimalsOf = (step) => Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));

export class RangeBar {
  constructor(el, { min, max, step, unit = '', label = '', onChange = () => {}, onEnd = () => {} }) {
    this.el = el;
    this.unit = unit;
    this.onChange = onChange;
    this.onEnd = onEnd;
    this.low = min;
    this.high = max;
    this.value = null;
    this.dragging = new Map(); // pointerId -> {end, offset}
    el.classList.add('rangebar');
    el.innerHTML = `
      <div class="labels"><span data-end="low"></span><span data-end="high"></span></div>
      <div class="track" aria-label="${label}">
        <div class="span"></div>
        <div class="marker" hidden></div>
        <div class="end" data-end="low" role="slider" tabindex="0" aria-label="${label} low"></div>
        <div class="end" data-end="high" role="slider" tabindex="0" aria-label="${label} high"></div>
      </div>
      <div class="scale"><span class="min"></span><span class="value"></span><span class="max"></span></div>`;
    this.track = el.querySelector('.track');
    this.ends = { low: el.querySelector('.end[data-end="low"]'), high: el.querySelector('.end[data-end="high"]') };
    this.labels = { low: el.querySelector('.labels [data-end="low"]'),
                    high: el.querySelector('.labels [data-end="high"]') };
    new ResizeObserver(() => this._placeLabels()).observe(this.track);
    this.setAxis(min, max, step);
    this.track.addEventListener('pointerdown', (ev) => this._down(ev));
    this.track.addEventListener('pointermove', (ev) => this._move(ev));
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture'])
      this.track.addEventListener(type, (ev) => this._up(ev));
    for (const end of ['low', 'high'])
      this.ends[end].addEventListener('keydown', (ev) => this._key(ev, end));
  }

  /** The axis (and the step values are rounded to, default a thousandth of it). */
  setAxis(min, max, step = (max - min) / 1000) {
    this.min = min;
    this.max = max;
    this.step = step;
    this.decimals = decimalsOf(step);
    this.el.querySelector('.min').textContent = this.format(min);
    this.el.querySelector('.max').textContent = this.format(max);
    this._draw();
  }

  format(v) {
    return `${v.toFixed(this.decimals)}${this.unit}`;
  }

  /** Place both ends (from the program being controlled); ignored for an end being dragged. */
  set(low, high) {
    const held = new Set([...this.dragging.values()].map((d) => d.end));
    if (!held.has('low')) this.low = low;
    if (!held.has('high')) this.high = high;
    this._draw();
  }

  /** The live value (null hides it). */
  setValue(v) {
    this.value = v;
    const m = this.el.querySelector('.marker');
    m.hidden = v === null;
    if (v !== null) m.style.left = `${this._t(v) * 100}%`;
    this.el.querySelector('.scale .value').textContent = v === null ? '' : this.format(v);
  }

  get busy() {
    return this.dragging.size > 0;
  }

  _t(v) {
    return Math.min(1, Math.max(0, (v - this.min) / (this.max - this.min)));
  }

  _round(v) {
    const r = Math.round((v - this.min) / this.step) * this.step + this.min;
    return Number(Math.min(this.max, Math.max(this.min, r)).toFixed(this.decimals));
  }

  _at(ev) {
    const box = this.track.getBoundingClientRect();
    return this.min + ((ev.clientX - box.left) / box.width) * (this.max - this.min);
  }

  _draw() {
    for (const end of ['low', 'high']) {
      const e = this.ends[end];
      e.style.left = `${this._t(this[end]) * 100}%`;
      this.labels[end].textContent = this.format(this[end]);
      e.setAttribute('aria-valuemin', this.min);
      e.setAttribute('aria-valuemax', this.max);
      e.setAttribute('aria-valuenow', this[end]);
    }
    const a = this._t(this.low), b = this._t(this.high);
    const span = this.el.querySelector('.span');
    span.style.left = `${Math.min(a, b) * 100}%`;
    span.style.width = `${Math.abs(b - a) * 100}%`;
    this.el.classList.toggle('inverted', this.high < this.low);
    this._placeLabels();
  }

  // Each end's label above it, kept inside the bar and clear of the other one.
  _placeLabels() {
    const width = this.track.clientWidth, gap = 8, pad = 22; // pad: the bar's own margin
    if (!width) return;
    const [a, b] = ['low', 'high'].map((end) => {
      const w = this.labels[end].offsetWidth;
      return { end, w, left: this._t(this[end]) * width - w / 2 };
    }).sort((x, y) => x.left + x.w / 2 - (y.left + y.w / 2));
    const overlap = a.left + a.w + gap - b.left;
    if (overlap > 0) {
      a.left -= overlap / 2;
      b.left += overlap / 2;
    }
    const clamp = (l) => l.left = Math.min(width + pad - l.w, Math.max(-pad, l.left));
    clamp(a);
    clamp(b);
    if (a.left + a.w + gap > b.left) {
      if (a.left <= -pad) b.left = a.left + a.w + gap;
      else a.left = b.left - gap - a.w;
    }
    for (const l of [a, b]) this.labels[l.end].style.left = `${l.left}px`;
  }

  _moveEnd(end, v) {
    v = this._round(v);
    if (v === this[end]) return;
    this[end] = v;
    this._draw();
    this.onChange(this.low, this.high);
  }

  _down(ev) {
    if (this.el.classList.contains('disabled') || (ev.pointerType === 'mouse' && ev.button !== 0)) return;
    const hit = ev.target.closest('.end');
    const at = this._at(ev);
    let end, offset = 0;
    if (hit) {
      end = hit.dataset.end;
      offset = this[end] - at; // keep the grip: no jump at the press
    } else {
      end = Math.abs(at - this.low) <= Math.abs(at - this.high) ? 'low' : 'high';
    }
    if ([...this.dragging.values()].some((d) => d.end === end)) return; // another finger has it
    if (!hit) this._moveEnd(end, at);
    ev.preventDefault();
    this.track.setPointerCapture(ev.pointerId);
    this.dragging.set(ev.pointerId, { end, offset });
    this.ends[end].classList.add('held');
    this.ends[end].focus({ preventScroll: true });
  }

  _move(ev) {
    const d = this.dragging.get(ev.pointerId);
    if (d) this._moveEnd(d.end, this._at(ev) + d.offset);
  }

  _up(ev) {
    const d = this.dragging.get(ev.pointerId);
    if (!d) return;
    this.dragging.delete(ev.pointerId);
    this.ends[d.end].classList.remove('held');
    this.onEnd();
  }

  _key(ev, end) {
    if (this.el.classList.contains('disabled')) return;
    const big = ev.shiftKey || ev.key === 'PageUp' || ev.key === 'PageDown' ? 10 : 1;
    const dir = { ArrowLeft: -1, ArrowDown: -1, PageDown: -1, ArrowRight: 1, ArrowUp: 1, PageUp: 1 }[ev.key];
    if (!dir) return;
    ev.preventDefault();
    this._moveEnd(end, this[end] + dir * big * this.step * 10);
    this.onEnd();
  }
}
