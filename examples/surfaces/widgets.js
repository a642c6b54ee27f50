// The widgets of a surface: each draws itself from its spec (layout.js),
// turns pointer input into values it sends (play mode), and moves when a
// message sets its values from outside, without sending them back.
//
// Every pointer is followed on its own (setPointerCapture), so two fingers
// on two sliders move both.

const clamp01 = (t) => Math.min(1, Math.max(0, t));

function el(tag, cls, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (parent) parent.append(e);
  return e;
}

function format(v, type) {
  if (type === 'i') return String(Math.round(v));
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

export class Widget {
  /** `send(spec, values)` is called with the values to send. */
  constructor(spec, send) {
    this.spec = spec;
    this.send = send;
    this.playing = false;
    this.t = spec.kind === 'xy' ? [0.5, 0.5] : [0]; // positions in 0..1, one per value
    this.text = spec.label;
    this.on = false;
    this.el = el('div', `widget ${spec.kind}`);
    this.el.dataset.id = spec.id;
    this.el.dataset.kind = spec.kind;
    this._build();
    this._render();
    this.el.addEventListener('pointerdown', (e) => this._down(e));
    this.el.addEventListener('pointermove', (e) => this._move(e));
    this.el.addEventListener('pointerup', (e) => this._up(e));
    this.el.addEventListener('pointercancel', (e) => this._up(e));
    this.el.addEventListener('lostpointercapture', (e) => this._up(e));
  }

  _build() {
    const { kind, orientation } = this.spec;
    this.caption = el('div', 'caption', this.el);
    this.readout = el('div', 'readout', this.el);
    if (kind === 'slider' || kind === 'meter') {
      this.el.classList.add(orientation);
      this.track = el('div', 'track', this.el);
      this.fill = el('div', 'fill', this.track);
    } else if (kind === 'knob') {
      this.dial = el('div', 'dial', this.el);
    } else if (kind === 'xy') {
      this.pad = el('div', 'pad', this.el);
      this.dot = el('div', 'dot', this.pad);
    } else if (kind === 'button') {
      this.cap = el('div', 'cap', this.el);
    }
  }

  /** Values (numbers) from the positions, in the widget's range and types. */
  values() {
    const { min, max, types } = this.spec;
    if (this.spec.kind === 'button') return [this.on ? max : min];
    return this.t.map((t, k) => {
      const v = min + t * (max - min);
      return types[k] === 'i' ? Math.round(v) : v;
    });
  }

  _render() {
    const { kind, types, label } = this.spec;
    this.caption.textContent = kind === 'label' ? this.text : label;
    if (kind === 'label') {
      this.el.dataset.value = this.text;
      return;
    }
    const vals = this.values();
    this.el.dataset.value = vals.map((v, k) => format(v, types[k] || types[0])).join(' ');
    this.readout.textContent = kind === 'button' ? (this.on ? 'on' : 'off') : this.el.dataset.value;
    if (this.fill) this.fill.style.setProperty('--t', this.t[0]);
    if (this.dial) this.dial.style.setProperty('--t', this.t[0]);
    if (this.dot) {
      this.dot.style.left = `${this.t[0] * 100}%`;
      this.dot.style.top = `${(1 - this.t[1]) * 100}%`;
    }
    this.el.classList.toggle('on', this.on);
  }

  /** Values from a message (to /SERVICE<address>): move, do not send. */
  setFromMessage(args) {
    const { kind, min, max } = this.spec;
    if (kind === 'label') {
      if (args.length) this.text = String(args[0]);
    } else if (kind === 'button') {
      const v = Number(args[0]);
      this.on = Number.isFinite(v) ? Math.abs(v - max) < Math.abs(v - min) : Boolean(args[0]);
    } else {
      for (let k = 0; k < this.t.length && k < args.length; k++) {
        const v = Number(args[k]);
        if (Number.isFinite(v)) this.t[k] = clamp01((v - min) / (max - min));
      }
    }
    this._render();
  }

  _emit() {
    const vals = this.values();
    const key = vals.join(',');
    if (key === this._lastSent) return; // the same value twice says nothing new
    this._lastSent = key;
    this.send(this.spec, vals);
  }

  _positionFrom(e) {
    const { kind, orientation } = this.spec;
    const box = (this.track || this.pad || this.el).getBoundingClientRect();
    const tx = clamp01((e.clientX - box.left) / box.width);
    const ty = clamp01(1 - (e.clientY - box.top) / box.height);
    if (kind === 'xy') this.t = [tx, ty];
    else if (kind === 'slider') this.t = [orientation === 'horizontal' ? tx : ty];
  }

  _down(e) {
    const { kind, mode } = this.spec;
    if (!this.playing || kind === 'label' || kind === 'meter') return;
    e.preventDefault();
    this.el.setPointerCapture(e.pointerId);
    this._pointer = e.pointerId;
    if (kind === 'button') {
      this.on = mode === 'toggle' ? !this.on : true;
    } else if (kind === 'knob') {
      this._knobFrom = { y: e.clientY, t: this.t[0] };
    } else {
      this._positionFrom(e);
    }
    this._render();
    this._emit();
  }

  _move(e) {
    if (!this.playing || e.pointerId !== this._pointer) return;
    const { kind } = this.spec;
    if (kind === 'button') return;
    if (kind === 'knob') {
      // vertical drag: 200 px from end to end, whatever the knob's size
      this.t = [clamp01(this._knobFrom.t + (this._knobFrom.y - e.clientY) / 200)];
    } else {
      this._positionFrom(e);
    }
    this._render();
    this._emit();
  }

  _up(e) {
    if (e.pointerId !== this._pointer) return;
    this._pointer = undefined;
    if (this.spec.kind === 'button' && this.spec.mode === 'momentary' && this.on) {
      this.on = false;
      this._render();
      this._emit();
    }
  }
}
