// o2ws.js — an O2ws client for browsers (and Node with a WebSocket class),
// as an ES module. It reaches an O2 ensemble through an o2hub (or O2) host's
// WebSocket bridge: the host offers this client's services to the whole
// ensemble, routes messages both ways and answers clock pings.
//
//   import { O2ws } from '/sdk/o2ws.js';
//   const o2 = new O2ws();
//   o2.methodNew('/browser/pong', 'is', (msg) => console.log(msg.args));
//   await o2.initialize('demo', { services: 'browser' });   // resolves with the bridge id
//   o2.sendCmd('/echo/ping', 0, 'si', '/browser/pong', 41);
//   o2.watchStatus(['echo'], (name, status) => ...);
//
// Module-level functions (initialize, send, send_cmd, method_new, ...) act
// on one default client, in the style of O2's own o2ws.js.
//
// Wire form (both directions): address ETX types ETX time ETX T|F ETX {value ETX}*

export const ETX = '\x03';

export const STATUS = Object.freeze({
  UNKNOWN: -1, LOCAL_NOTIME: 0, REMOTE_NOTIME: 1, BRIDGE_NOTIME: 2, TO_OSC_NOTIME: 3,
  LOCAL: 4, REMOTE: 5, BRIDGE: 6, TO_OSC: 7, TAP: 8,
});
export const STATUS_NAMES = ['local (no clock)', 'remote (no clock)', 'bridge (no clock)',
  'OSC (no clock)', 'local', 'remote', 'bridge', 'OSC', 'tap'];
export const TAP_KEEP = 0;
export const TAP_RELIABLE = 1;
export const TAP_BEST_EFFORT = 2;

const CLOCK_HISTORY = 5;

function encodeValue(type, v) {
  switch (type) {
    case 'i': return String(Math.trunc(Number(v)) | 0);
    case 'h': return typeof v === 'bigint' ? v.toString() : String(Math.trunc(Number(v)));
    case 'f': case 'd': case 't': {
      const n = Number(v);
      if (Number.isNaN(n) && typeof v !== 'number') throw new TypeError(`not a number: ${v}`);
      return String(n);
    }
    case 'B': case 'T': case 'F': return v ? 'true' : 'false';
    case 'N': case 'I': return '';
    default: {
      const s = String(v);
      if (s.includes(ETX)) throw new TypeError('strings cannot contain ETX (\\x03)');
      return s;
    }
  }
}

function decodeValue(type, s) {
  switch (type) {
    case 'i': case 'f': case 'd': case 't': return Number(s);
    case 'h': try { return BigInt(s); } catch { return NaN; }
    case 'B': case 'T': case 'F': return s === '1' || s === 'true';
    case 'N': return null;
    case 'I': return Infinity;
    default: return s;
  }
}

/** Encode one message as O2ws text. */
export function encodeMessage(address, time, types, values, reliable) {
  if (typeof address !== 'string' || !/^[/!]/.test(address) || address.includes(ETX))
    throw new TypeError(`bad address ${address}`);
  types = types.replace(/^,/, '');
  if (types.length !== values.length)
    throw new TypeError(`types "${types}" need ${types.length} values, got ${values.length}`);
  let s = address + ETX + types + ETX + String(Number(time) || 0) + ETX + (reliable ? 'T' : 'F') + ETX;
  for (let k = 0; k < types.length; k++) s += encodeValue(types[k], values[k]) + ETX;
  return s;
}

/** Decode O2ws text: {address, types, time, reliable, args, raw} or null if malformed. */
export function decodeMessage(text) {
  const f = String(text).split(ETX);
  if (f.length < 5 || f[f.length - 1] !== '') return null;
  f.pop();
  const types = f[1];
  if (types.length !== f.length - 4) return null;
  return {
    address: f[0], types, time: Number(f[2]), reliable: f[3] === 'T',
    args: f.slice(4).map((v, k) => decodeValue(types[k], v)), raw: f.slice(4),
  };
}

export class O2ws {
  constructor() {
    this.ensemble = null;
    this.bridgeId = null;            // from !_o2/id; null while not connected
    this.clockSynchronized = false;
    this.connected = false;
    this.onConnect = null;           // (bridgeId) => void
    this.onDisconnect = null;        // (closeEvent) => void
    // ({code, reason, joined}) => void, on every close, joined or not: a host that
    // refuses the join (code 1008, e.g. "wrong ensemble: this router is in \"x\"")
    // closes before !_o2/id, so only this callback (and lastClose) tells why.
    this.onClose = null;
    this.lastClose = null;
    this.onError = (text) => console.warn('o2ws:', text);
    this._ws = null;
    this._opts = {};
    this._methods = new Map();       // address without its first character -> handler
    this._services = new Map();      // name -> properties string
    this._taps = [];
    this._queue = [];                // texts waiting for the socket to open
    this._pendingStatus = new Map(); // name -> [resolve]
    this._pendingList = [];          // [{items, resolve}]
    this._watchers = new Set();
    this._clock = null;
    this._finished = false;
    this._reconnectTimer = null;
    this._globalMinusLocal = 0;
    this._t0 = Date.now();
    this.localTime = () => (typeof performance !== 'undefined'
      ? performance.now() / 1000 : (Date.now() - this._t0) / 1000);
    this.methodNew('/_o2/id', 'i', (m) => this._onId(m.args[0]));
    this.methodNew('/_o2/cs/put', 'it', (m) => this._onClockReply(m.args[0], m.args[1]));
    this.methodNew('/_o2/st', 'si', (m) => this._onStatus(m.args[0], m.args[1]));
    this.methodNew('/_o2/ls', 'siss', (m) => this._onList(m.args));
  }

  /**
   * Connect and join `ensemble`. Options: url (default ws(s)://<page host>/o2ws,
   * with the page's own ?token= passed on when the server asks for one), token,
   * services ("a,b" offered on every (re)connect), WebSocket (a class, for
   * Node), reconnect (seconds, default 1; 0 = never). Resolves with the bridge id.
   */
  initialize(ensemble, opts = {}) {
    this.ensemble = ensemble;
    this._opts = opts;
    this._finished = false;
    if (opts.services) this.setServices(opts.services);
    return new Promise((resolve, reject) => {
      this._firstId = resolve;
      this._firstFail = reject;
      this._open();
    });
  }

  _url() {
    if (this._opts.url) return this._opts.url;
    const loc = globalThis.location;
    if (!loc) throw new Error('o2ws: give opts.url outside a browser');
    const token = this._opts.token ?? new URLSearchParams(loc.search).get('token');
    const query = token ? `?token=${encodeURIComponent(token)}` : '';
    return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/o2ws${query}`;
  }

  _open() {
    const WS = this._opts.WebSocket || globalThis.WebSocket;
    const ws = new WS(this._url());
    this._ws = ws;
    ws.onopen = () => {
      // dy first; the host refuses anything before it
      ws.send(encodeMessage('/_o2/ws/dy', 0, 's', [this.ensemble], true));
      for (const t of this._queue.splice(0)) ws.send(t);
    };
    ws.onmessage = (ev) => this._receive(typeof ev.data === 'string' ? ev.data : String(ev.data));
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      const was = this.connected;
      this.connected = false;
      this.bridgeId = null;
      this.clockSynchronized = false;
      this._stopClock();
      if (this._ws === ws) this._ws = null;
      if (this._firstFail && !was) {
        const fail = this._firstFail;
        this._firstFail = null;
        if (this._opts.reconnect === 0) fail(new Error(`o2ws: closed (${ev.code})`));
      }
      this.lastClose = { code: ev.code, reason: ev.reason || '', joined: was };
      if (this.onClose) this.onClose(this.lastClose);
      if (was && this.onDisconnect) this.onDisconnect(ev);
      const again = this._opts.reconnect ?? 1;
      if (!this._finished && again > 0)
        this._reconnectTimer = setTimeout(() => this._open(), again * 1000);
    };
  }

  /** Close for good (no reconnection). */
  finish() {
    this._finished = true;
    clearTimeout(this._reconnectTimer);
    this._stopClock();
    for (const w of this._watchers) clearInterval(w);
    this._watchers.clear();
    if (this._ws) this._ws.close(1000, 'finished');
  }

  _sendText(text) {
    if (this._ws && this._ws.readyState === 1) this._ws.send(text);
    else if (!this._finished) this._queue.push(text);
  }

  /** Send best effort: send(address, time, types, ...values); time 0 = now. */
  send(address, time, types, ...values) {
    this._sendText(encodeMessage(address, time, types, values, false));
  }

  /** Send reliably (O2's TCP flag). */
  sendCmd(address, time, types, ...values) {
    this._sendText(encodeMessage(address, time, types, values, true));
  }

  /**
   * Handle messages to `path` (exact, or a prefix ending at a '/'). `types`
   * must match exactly, or null for any. handler(msg) gets
   * {address, types, time, reliable, args}.
   */
  methodNew(path, types, handler) {
    this._methods.set(path.replace(/^[/!]/, ''), { types: types === null ? null : types.replace(/^,/, ''), handler });
  }

  /** Offer services: "a,b" (each re-sent on every connection). */
  setServices(csv) {
    for (const name of String(csv).split(',').map((s) => s.trim()).filter(Boolean)) {
      if (!this._services.has(name)) this._services.set(name, '');
      if (this.connected) this._sendService(name, true);
    }
  }

  /** Set a service's properties ("key:value;key2:value2;"). */
  setProperties(name, props) {
    this._services.set(name, props);
    if (this.connected) this._sendService(name, true);
  }

  /** Stop offering a service. */
  removeService(name) {
    if (this._services.delete(name) && this.connected) this._sendService(name, false);
  }

  _sendService(name, exists) {
    const p = this._services.get(name) ?? '';
    this.sendCmd('!_o2/ws/sv', 0, 'siisi', name, exists ? 1 : 0, 1, p ? ';' + p : '', 0);
  }

  /** Tap `tappee` with our service `tapper` (mode TAP_KEEP/RELIABLE/BEST_EFFORT). */
  tap(tappee, tapper, mode = TAP_KEEP) {
    this._taps.push([tappee, tapper, mode]);
    if (this.connected) this.sendCmd('!_o2/ws/sv', 0, 'siisi', tapper, 1, 0, tappee, mode);
  }

  /** Stop tapping `tappee` with `tapper`. */
  untap(tappee, tapper) {
    this._taps = this._taps.filter(([a, b]) => a !== tappee || b !== tapper);
    if (this.connected) this.sendCmd('!_o2/ws/sv', 0, 'siisi', tapper, 0, 0, tappee, 0);
  }

  /** The status of a service (STATUS.*), asked of the host. */
  status(name) {
    return new Promise((resolve) => {
      if (!this._pendingStatus.has(name)) this._pendingStatus.set(name, []);
      this._pendingStatus.get(name).push(resolve);
      this.sendCmd('/_o2/ws/st', 0, 's', name);
    });
  }

  /** Poll the status of `names` every `ms`; cb(name, status) on each change. Returns stop(). */
  watchStatus(names, cb, ms = 500) {
    const last = new Map();
    const poll = () => {
      if (!this.connected) return;
      for (const n of names)
        this.status(n).then((s) => {
          if (last.get(n) !== s) {
            last.set(n, s);
            cb(n, s);
          }
        });
    };
    const timer = setInterval(poll, ms);
    this._watchers.add(timer);
    poll();
    return () => {
      clearInterval(timer);
      this._watchers.delete(timer);
    };
  }

  /** Every service and tap the host knows: [{name, status, process, properties}]. */
  listServices() {
    return new Promise((resolve) => {
      this._pendingList.push({ items: [], resolve });
      this.sendCmd('/_o2/ws/ls', 0, '');
    });
  }

  /** O2 time in seconds, or -1 before clock sync. */
  timeGet() {
    return this.clockSynchronized ? this.localTime() + this._globalMinusLocal : -1;
  }

  /** The WebSocket while one is open or opening, else null. */
  get socket() {
    return this._ws;
  }

  /**
   * Take local time (seconds) from `fn` from now on, e.g. () => audioContext.currentTime.
   * O2 time stays continuous; clock sync starts its history again in the new time base.
   */
  setTimeReference(fn) {
    const before = this.localTime();
    const o2 = this.timeGet();
    this.localTime = fn;
    const now = fn();
    if (this.clockSynchronized) this._globalMinusLocal = o2 - now;
    const c = this._clock;
    if (c) {
      c.start += now - before;
      c.seq++; // the reply in flight was timed in the old base: ignore it
      c.replies = 0;
      c.rtts = [];
      c.offsets = [];
    }
  }

  // ---- incoming ----

  _receive(text) {
    const msg = decodeMessage(text);
    if (!msg) return this.onError(`malformed message ${JSON.stringify(text)}`);
    const key = msg.address.replace(/^[/!]/, '');
    let h = this._methods.get(key);
    if (!h || (h.types !== null && h.types !== msg.types)) {
      h = null;
      for (const [path, m] of this._methods)
        if (key.startsWith(path) && (key.length === path.length || key[path.length] === '/') &&
            (m.types === null || m.types === msg.types)) {
          h = m;
          break;
        }
    }
    if (!h) return this.onError(`no handler for ${msg.address} (${msg.types})`);
    // Timed messages wait for their time (when we have a clock).
    const now = this.timeGet();
    if (msg.time > 0 && now >= 0 && msg.time > now)
      setTimeout(() => h.handler(msg), (msg.time - now) * 1000);
    else
      h.handler(msg);
  }

  _onId(id) {
    this.bridgeId = id;
    this.connected = true;
    for (const name of this._services.keys()) this._sendService(name, true);
    for (const [tappee, tapper, mode] of this._taps)
      this.sendCmd('!_o2/ws/sv', 0, 'siisi', tapper, 1, 0, tappee, mode);
    this._startClock();
    if (this._firstId) {
      const ok = this._firstId;
      this._firstId = this._firstFail = null;
      ok(id);
    }
    if (this.onConnect) this.onConnect(id);
  }

  _onStatus(name, status) {
    const q = this._pendingStatus.get(name);
    const resolve = q && q.shift();
    if (resolve) resolve(status);
  }

  _onList(args) {
    const pending = this._pendingList[0];
    if (!pending) return;
    if (args[0] === '') {
      this._pendingList.shift();
      pending.resolve(pending.items);
    } else {
      pending.items.push({ name: args[0], status: args[1], process: args[2], properties: args[3] });
    }
  }

  // ---- clock sync, as O2 clients do: pings every 0.1 s, then 0.5 s, then 10 s ----

  _startClock() {
    this._stopClock();
    const c = { seq: 0, sentAt: 0, start: this.localTime(), rtts: [], offsets: [], replies: 0, timer: null };
    this._clock = c;
    const ping = () => {
      if (this._clock !== c || !this.connected) return;
      c.seq++;
      c.sentAt = this.localTime();
      this.send('/_o2/ws/cs/get', 0, 'iis', this.bridgeId, c.seq, '!_o2/cs/put');
      const age = c.sentAt - c.start;
      c.timer = setTimeout(ping, age < 1 ? 100 : age < 5 ? 500 : 10000);
    };
    c.timer = setTimeout(ping, 50);
  }

  _stopClock() {
    if (this._clock) clearTimeout(this._clock.timer);
    this._clock = null;
  }

  _onClockReply(seq, refTime) {
    const c = this._clock;
    if (!c || seq !== c.seq) return; // a late reply
    const now = this.localTime();
    const rtt = now - c.sentAt;
    const i = c.replies++ % CLOCK_HISTORY;
    c.rtts[i] = rtt;
    c.offsets[i] = refTime + rtt / 2 - now;
    if (c.replies < CLOCK_HISTORY) return;
    let best = 0;
    for (let k = 1; k < CLOCK_HISTORY; k++) if (c.rtts[k] < c.rtts[best]) best = k;
    const estimate = c.offsets[best];
    if (!this.clockSynchronized) {
      this._globalMinusLocal = estimate;
      this.clockSynchronized = true;
      this.sendCmd('!_o2/ws/cs/cs', 0, '');
      return;
    }
    const err = estimate - this._globalMinusLocal;
    if (Math.abs(err) > c.rtts[best]) this._globalMinusLocal = estimate; // far off: jump
    else this._globalMinusLocal += Math.max(-0.002, Math.min(0.002, err)); // else slew
  }
}

// ---- one default client, O2 o2ws.js style ----
export const client = new O2ws();
export const initialize = (ensemble, opts) => client.initialize(ensemble, opts);
export const finish = () => client.finish();
export const send = (...a) => client.send(...a);
export const send_cmd = (...a) => client.sendCmd(...a);
export const method_new = (path, types, handler) => client.methodNew(path, types, handler);
export const set_services = (csv) => client.setServices(csv);
export const set_properties = (name, props) => client.setProperties(name, props);
export const tap = (tappee, tapper, mode) => client.tap(tappee, tapper, mode);
export const status = (name) => client.status(name);
export const watch_status = (names, cb, ms) => client.watchStatus(names, cb, ms);
export const list_services = () => client.listServices();
export const time_get = () => client.timeGet();
export const set_time_reference = (fn) => client.setTimeReference(fn);
