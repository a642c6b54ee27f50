// The snoop: a live list of tapped messages, newest first, with a time
// stamp, an address filter, pause and clear. Lines are added in batches
// (every 100 ms) and at most `maxLines` are kept.
import { addressFilter } from './pattern.js';

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time of day, HH:MM:SS.mmm. */
export function clockTime(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function argText(types, args) {
  return args.map((v, k) => (types[k] === 's' || types[k] === 'S' ? JSON.stringify(v)
    : types[k] === 'f' && typeof v === 'number' ? String(Math.round(v * 1e6) / 1e6) : String(v))).join(' ');
}

export class Snoop {
  constructor(list, { maxLines = 500, onChange = () => {} } = {}) {
    this.list = list;
    this.maxLines = maxLines;
    this.onChange = onChange; // after each batch, pause, clear or filter change
    this.paused = false;
    this.filter = addressFilter('');
    this.filterText = '';
    this.pending = [];
    this.seen = 0;      // copies received
    this.shown = 0;     // lines put in the list since the last clear
    this.missed = 0;    // matching copies that came while paused
    this.timer = null;
  }

  /** A tapped message, `address` already put back under the tappee's name. */
  add(address, msg, wallMs, o2Time) {
    this.seen++;
    if (!this.filter.match(address)) return;
    if (this.paused) {
      this.missed++;
      return;
    }
    this.pending.push({ address, msg, wallMs, o2Time });
    if (this.pending.length > this.maxLines) this.pending.shift();
    if (!this.timer) this.timer = setTimeout(() => this._flush(), 100);
  }

  _flush() {
    this.timer = null;
    const lines = this.pending.splice(0).reverse().map(({ address, msg, wallMs, o2Time }) => {
      const li = document.createElement('li');
      li.dataset.address = address;
      const ts = document.createElement('time');
      ts.textContent = clockTime(wallMs);
      ts.title = o2Time >= 0 ? `O2 time ${o2Time.toFixed(3)} s on arrival` : 'no O2 clock yet';
      const addr = document.createElement('span');
      addr.className = 'addr';
      addr.textContent = address;
      const types = document.createElement('span');
      types.className = 'types';
      types.textContent = msg.types || '-';
      const args = document.createElement('span');
      args.className = 'args';
      args.textContent = argText(msg.types, msg.args);
      li.append(ts, addr, types, args);
      if (msg.time > 0) {
        const at = document.createElement('span');
        at.className = 'at';
        at.textContent = `@${msg.time.toFixed(3)}`;
        at.title = 'the O2 time the message was sent for';
        li.append(at);
      }
      return li;
    });
    this.list.prepend(...lines);
    this.shown += lines.length;
    while (this.list.children.length > this.maxLines) this.list.lastChild.remove();
    this.onChange();
  }

  setPaused(paused) {
    if (paused && this.timer) { // what came before the pause is shown at once, the rest held
      clearTimeout(this.timer);
      this._flush();
    }
    this.paused = paused;
    if (!paused) this.missed = 0;
    this.onChange();
  }

  setFilter(text) {
    this.filterText = text;
    this.filter = addressFilter(text);
    this.onChange();
    return this.filter.error;
  }

  clear() {
    this.pending = [];
    this.list.replaceChildren();
    this.shown = 0;
    this.missed = 0;
    this.onChange();
  }
}
