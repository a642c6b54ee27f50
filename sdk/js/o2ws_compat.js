// o2ws_compat.js — the browser API of O2's own o2ws.js (the global o2ws_*
// functions and variables that O2's test and demo pages call), as a thin layer
// over o2hub's O2ws client (./o2ws.js). A plain ES module; importing it also
// installs the API as globals, so page scripts can keep calling o2ws_send(...):
//
//   <script type="module" src="/sdk/o2ws_compat.js"></script>   <!-- or -->
//   <script src="/sdk/o2ws_classic.js"></script>   <!-- drop-in for <script src="o2ws.js"> -->
//
//   function o2ws_status_msg(text) { ... }       // the page's own, as with O2
//   window.addEventListener("load", () => {
//       o2ws_status_msgs_enable = true;
//       o2ws_initialize("demo");
//       o2ws_set_services("browser");
//       o2ws_method_new("/browser/pong", "is", true, (timestamp, address, typespec, info) => {
//           const n = o2ws_get_int32(), from = o2ws_get_string(); ...
//       }, null);
//       o2ws_send_cmd("/echo/ping", 0, "si", "/browser/pong", 41);
//   });
//
// The names are also exported (import { o2ws_send } from '/sdk/o2ws_compat.js'),
// and install(target) puts them on another object. Everything acts on the
// default client of ./o2ws.js (its `client` export), so a page may use both APIs.
//
// Where this differs from O2's o2ws.js (see also docs/js-client.md):
// - The connection comes back by itself after a loss (o2hub's default, 1 s),
//   offering the page's services and taps again; o2ws_initialize(ens, {reconnect: 0})
//   gives O2's behaviour (closed for good; call o2ws_initialize again).
// - Messages sent before the connection is up wait in a queue and go out right
//   after the ensemble name (O2 also queues them, but could send them before it).
// - After a disconnection o2ws_clock_synchronized is false and o2ws_bridge_id null
//   until the host answers again (O2 kept the old values).
// - A handler of a timed message is called at its time with that message's
//   arguments (O2 rounded the delay to whole seconds and let o2ws_get_* read the
//   latest message received instead).
// - o2ws_get_float on a float ('f') argument gives the shortest decimal that is
//   the same float: o2hub's host writes floats with 9 digits ("123.400002"),
//   O2's with 6 ("123.4"), so a page comparing with 123.4 gets true on both.
// - o2ws_initialize's optional second argument is a host ("host:port", as in O2's
//   web monitor) or an options object of O2ws.initialize (url, token, reconnect,
//   WebSocket); wss:// is used on https pages, and ?token= of the page is passed on.
// - Sending checks what O2's does (types i h f d t s S; numbers and strings), plus
//   a BigInt for 'h'; o2ws_send_start/o2ws_add_*/o2ws_send_finish take any type
//   o2hub knows (B T F N I as well), coerced as O2ws.send does; a string with ETX
//   or a wrong count of values is refused with o2ws_on_error instead of being sent.
// - Without a page-defined o2ws_status_msg / o2ws_on_error / o2ws_error, the text
//   goes to the console (O2 would throw a ReferenceError).

import { client, decodeMessage, ETX } from './o2ws.js';

export { client };

const g = globalThis;

// ---- constants, with O2's names and values ----

export const O2_UNKNOWN = -1;
export const O2_LOCAL_NOTIME = 0;
export const O2_REMOTE_NOTIME = 1;
export const O2_BRIDGE_NOTIME = 2;
export const O2_TO_OSC_NOTIME = 3;
export const O2_LOCAL = 4;
export const O2_REMOTE = 5;
export const O2_BRIDGE = 6;
export const O2_TO_OSC = 7;
export const O2_TAP = 8;
export const TAP_KEEP = 0;
export const TAP_RELIABLE = 1;
export const TAP_BEST_EFFORT = 2;

function defaultUrl(host) {
  const loc = g.location;
  if (!loc || !loc.host) return undefined;
  const token = new URLSearchParams(loc.search).get('token');
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${host || loc.host}/o2ws` +
    (token ? `?token=${encodeURIComponent(token)}` : '');
}

// ---- the page's callbacks and switches, looked up on each use ----

function consoleOn() {
  return g.o2ws_console_enable !== false;
}

function statusMsg(text) {
  if (typeof g.o2ws_status_msg === 'function') g.o2ws_status_msg(text);
  else if (consoleOn()) console.log('o2ws:', text);
}

function statusOn() {
  return !!g.o2ws_status_msgs_enable;
}

// API misuse goes to o2ws_on_error (O2's name in its API notes), socket trouble
// to o2ws_error (what O2 calls then); each falls back on the other.
function reportError(text, socketTrouble = false) {
  const order = socketTrouble ? ['o2ws_error', 'o2ws_on_error'] : ['o2ws_on_error', 'o2ws_error'];
  for (const name of order)
    if (typeof g[name] === 'function') return g[name](text);
  if (consoleOn()) console.error('o2ws:', text);
}

/** The text with each ETX shown as " ¦ ", as O2's status messages print messages. */
export function o2ws_printable(s) {
  return String(s).split(ETX).join(' ¦ ');
}

/** address@time,TCP|UDP,types,arg,arg... of a message's fields. */
export function o2wsMsgFieldsToString(fields) {
  let s = `${fields[0]}@${fields[2]},${fields[3] === 'T' ? 'TCP' : 'UDP'},${fields[1]}`;
  for (let k = 4; k < fields.length; k++) s += ',' + fields[k];
  return s;
}

/** o2wsMsgFieldsToString of an O2ws text. */
export function o2wsMessageToString(text) {
  return o2wsMsgFieldsToString(String(text).split(ETX));
}

function dropMessage(fields) {
  statusMsg('Dropped incoming O2 message: ' + o2wsMsgFieldsToString(fields));
}

// ---- the socket, watched: status messages for what goes out and comes in ----

const traced = new Map(); // WebSocket class -> its traced subclass

function tracedClass(Base) {
  if (traced.has(Base)) return traced.get(Base);
  const T = class extends Base {
    constructor(...args) {
      super(...args);
      // Listeners added here run before the ones O2ws sets afterwards (onopen,
      // onmessage): "CONNECTED" comes before the first "SENT", and a message is
      // shown and handled before O2ws handles it.
      this.addEventListener('open', () => { if (statusOn()) statusMsg('CONNECTED'); });
      this.addEventListener('close', () => { if (statusOn()) statusMsg('DISCONNECTED'); });
      this.addEventListener('error', () =>
        reportError('Websocket to O2 host was closed abnormally by the host', true));
      this.addEventListener('message', (ev) =>
        receive(typeof ev.data === 'string' ? ev.data : String(ev.data)));
    }

    send(text) {
      super.send(text);
      if (statusOn()) statusMsg(`SENT: ${text.length} bytes, ${o2ws_printable(text)}`);
      if (text.startsWith('!_o2/ws/cs/cs' + ETX) && consoleOn())
        console.log('Clock sync obtained. global - local = ' + (client.timeGet() - client.localTime()));
    }
  };
  traced.set(Base, T);
  return T;
}

// ---- handlers ----

const exact = new Map(); // path without its first character -> method
let prefixed = [];       // methods with full = false, in the order they came
let current = null;      // {fields, types}: the arguments of the message being handled

/**
 * Handle messages to `path`: exactly, or (full false) also any address below it.
 * `typespec` null takes any types, else they must be the same. The handler is
 * called as handler(timestamp, address, typespec, info), the address without
 * its first '/' or '!', and reads the arguments in order with o2ws_get_*().
 */
export function o2ws_method_new(path, typespec, full, handler, info) {
  const m = { address: String(path).substring(1), typespec: typespec ?? null, full: !!full,
              handler, info };
  exact.set(m.address, m);
  prefixed = prefixed.filter((p) => p.address !== m.address);
  if (!m.full) prefixed.push(m);
}

function find(key, types) {
  const m = exact.get(key);
  if (m) return m.typespec === null || m.typespec === types ? [m, m.address] : null;
  for (const p of prefixed)
    if (key.startsWith(p.address) && (key.length === p.address.length || key[p.address.length] === '/') &&
        (p.typespec === null || p.typespec === types))
      return [p, key];
  return null;
}

function receive(text) {
  if (statusOn()) statusMsg('RECEIVED: ' + o2ws_printable(text));
  const msg = decodeMessage(text);
  const fields = text.split(ETX);
  if (fields[fields.length - 1] === '') fields.pop();
  if (!msg) return dropMessage(fields);
  const key = msg.address.substring(1);
  // O2ws itself handles these (bridge id, clock replies).
  if (key === '_o2/id' && msg.types === 'i') {
    return statusMsg(`Our ID is ${msg.args[0]}; starting clock sync.`);
  }
  if (key === '_o2/cs/put') return;
  const found = find(key, msg.types);
  // Replies to O2ws.status() and listServices() need no page handler.
  if (!found && (key === '_o2/st' || key === '_o2/ls')) return;
  if (!found) {
    if (consoleOn()) console.log('o2ws_message_handler did not find ' + key);
    return dropMessage(fields);
  }
  const [m, address] = found;
  const deliver = () => {
    current = { fields: msg.raw.slice(), types: msg.types };
    m.handler(msg.time, address, msg.types, m.info);
  };
  if (msg.time > 0) {
    if (!client.clockSynchronized) {
      // a time before we have a clock: the sender should not have sent it
      if (consoleOn()) console.log('o2ws_message_handler timestamp >0, but not synced yet.');
      return dropMessage(fields);
    }
    const wait = msg.time - client.timeGet();
    if (wait > 0) return void setTimeout(deliver, wait * 1000);
  }
  deliver();
}

// ---- reading the arguments of the message being handled ----

function nextArg() {
  if (!current) return [undefined, undefined];
  const type = current.types[current.types.length - current.fields.length];
  return [current.fields.shift(), type];
}

// The shortest decimal that is the same 32-bit float as x.
function shortFloat(x) {
  if (!Number.isFinite(x)) return x;
  const f = Math.fround(x);
  for (let p = 1; p < 10; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === f) return y;
  }
  return x;
}

export function o2ws_get_float() {
  const [s, type] = nextArg();
  const x = parseFloat(s);
  return type === 'f' ? shortFloat(x) : x;
}
export const o2ws_get_double = () => o2ws_get_float();
export const o2ws_get_time = () => o2ws_get_float();
/** An integer (parseInt of the text: a float argument comes truncated). */
export function o2ws_get_int32() {
  return parseInt(nextArg()[0]);
}
export const o2ws_get_int = () => o2ws_get_int32();
export const o2ws_get_int64 = () => o2ws_get_int32();
export function o2ws_get_string() {
  return nextArg()[0];
}

// ---- sending ----

let building = null; // {address, time, types, tcp, values} between send_start and send_finish

/** Start a message; add its values with o2ws_add_*, send it with o2ws_send_finish. */
export function o2ws_send_start(address, time, types, tcp = true) {
  if (typeof address !== 'string' || typeof time !== 'number' || typeof types !== 'string' ||
      typeof tcp !== 'boolean')
    reportError('Bad parameter to o2ws_send_start');
  building = { address, time, types: String(types), tcp: !!tcp, values: [] };
}

function add(x) {
  if (building) building.values.push(x);
}
export const o2ws_add_string = add;
export const o2ws_add_time = add;
export const o2ws_add_double = add;
export const o2ws_add_float = add;
export const o2ws_add_int = add;
export const o2ws_add_int32 = add;

export function o2ws_send_finish() {
  const b = building;
  building = null;
  if (!b) return;
  try {
    if (b.tcp) client.sendCmd(b.address, b.time, b.types, ...b.values);
    else client.send(b.address, b.time, b.types, ...b.values);
  } catch (e) {
    reportError(`cannot send ${b.address}: ${e.message}`);
  }
}

function sendArgs(tcp, address, time, types, values) {
  o2ws_send_start(address, time, types, tcp);
  if (typeof types !== 'string' || types.length !== values.length) {
    building = null;
    return reportError('o2ws_send[_cmd] called with mismatched arguments.');
  }
  for (let k = 0; k < types.length; k++) {
    const v = values[k];
    const ok = 'ihfdt'.includes(types[k]) ? typeof v === 'number' || (types[k] === 'h' && typeof v === 'bigint')
      : 'sS'.includes(types[k]) ? typeof v === 'string' : null;
    if (ok === null) {
      building = null;
      return reportError(`o2ws_send[_cmd] called with bad type '${types[k]}'.`);
    }
    if (!ok) {
      building = null;
      return reportError(`o2ws_send[_cmd] called with bad arg ${v}.`);
    }
    add(v);
  }
  o2ws_send_finish();
}

/** Send best effort: o2ws_send(address, time, types, value, ...); time 0 = now. */
export function o2ws_send(address, time, types, ...values) {
  sendArgs(false, address, time, types, values);
}

/** Send reliably (O2's TCP). */
export function o2ws_send_cmd(address, time, types, ...values) {
  sendArgs(true, address, time, types, values);
}

// ---- connection, services, taps, time ----

let started = false;
let reconnects = true;

/**
 * Connect to the host that served the page and join `ensemble`. A second call
 * does nothing while connected or reconnecting (as O2's does while it has a socket).
 */
export function o2ws_initialize(ensemble, where) {
  if (started && (client.socket || reconnects)) return;
  const opts = typeof where === 'object' && where !== null ? { ...where } : {};
  if (typeof where === 'string' && where && !opts.url) opts.url = defaultUrl(where);
  const Base = opts.WebSocket || g.WebSocket;
  if (typeof Base !== 'function') return reportError('o2ws_initialize: no WebSocket class here');
  opts.WebSocket = tracedClass(Base);
  started = true;
  reconnects = (opts.reconnect ?? 1) > 0;
  if (g.location && !opts.url) g.WSURI = defaultUrl();
  else if (opts.url) g.WSURI = opts.url;
  // Messages nobody handles are reported here ("Dropped incoming O2 message").
  client.onError = () => {};
  client.initialize(String(ensemble), opts).catch((e) => reportError(e.message, true));
}

/** Close the connection (for good: no reconnection). */
export function o2ws_finish() {
  started = false;
  client.finish();
}

/** Offer services, "a,b,c", to the ensemble (again on each reconnection). */
export function o2ws_set_services(services) {
  client.setServices(String(services));
}

/** Set a service's whole property string "attr:value;attr2:value2;" (offering it). */
export function o2ws_set_properties(service, properties) {
  client.setProperties(service, String(properties));
}

/** Set taps: "tappee:tapper:mode,..." with mode K (keep), R (reliable) or B (best effort). */
export function o2ws_tap(taps) {
  for (const t of String(taps).split(',')) {
    const f = t.split(':');
    if (f.length !== 3) {
      statusMsg('Bad tap description: ' + taps);
      continue;
    }
    let mode = { K: TAP_KEEP, R: TAP_RELIABLE, B: TAP_BEST_EFFORT }[f[2]];
    if (mode === undefined) {
      statusMsg(`Bad tap mode: '${f[2]}'`);
      mode = TAP_KEEP;
    }
    client.tap(f[0], f[1], mode);
  }
}

/** O2 time in seconds, or -1 before the clock is synchronized. */
export function o2ws_time_get() {
  return client.timeGet();
}

/** Local time in seconds (replaceable: o2ws_set_time_reference, or assign o2ws_local_time). */
export function o2ws_local_time() {
  return client.localTime();
}

/** Take local time from time_fn (seconds, e.g. Web Audio's), O2 time staying continuous. */
export function o2ws_set_time_reference(time_fn) {
  client.setTimeReference(time_fn);
}

/** The page's default for o2ws_status_msg when it defines none: the console. */
function o2ws_status_msg_default(text) {
  if (consoleOn()) console.log('o2ws:', text);
}

// ---- globals ----

const functions = {
  o2ws_initialize, o2ws_finish, o2ws_set_services, o2ws_set_properties, o2ws_tap,
  o2ws_method_new, o2ws_send, o2ws_send_cmd, o2ws_send_start, o2ws_send_finish,
  o2ws_add_string, o2ws_add_time, o2ws_add_double, o2ws_add_float, o2ws_add_int, o2ws_add_int32,
  o2ws_get_time, o2ws_get_double, o2ws_get_float, o2ws_get_int32, o2ws_get_int, o2ws_get_int64,
  o2ws_get_string, o2ws_time_get, o2ws_set_time_reference, o2ws_printable,
  o2wsMessageToString, o2wsMsgFieldsToString, o2ws_status_msg: o2ws_status_msg_default,
};

const constants = {
  O2_UNKNOWN, O2_LOCAL_NOTIME, O2_REMOTE_NOTIME, O2_BRIDGE_NOTIME, O2_TO_OSC_NOTIME, O2_LOCAL,
  O2_REMOTE, O2_BRIDGE, O2_TO_OSC, O2_TAP, TAP_KEEP, TAP_RELIABLE, TAP_BEST_EFFORT, ETX,
};

// Read-only views of the client's state, under O2's variable names.
const live = {
  o2ws_clock_synchronized: () => client.clockSynchronized,
  o2ws_bridge_id: () => client.bridgeId,
  o2ws_ensemble: () => client.ensemble,
  o2ws_websocket: () => client.socket || false,
  o2ws_message_fields: () => (current ? current.fields : null), // what o2ws_get_* reads next
};

// Placeholders that o2ws_classic.js put in place before this module arrived.
const STUBS = Symbol.for('o2ws_compat.stubs');

/**
 * Put the API on `target` (default globalThis). Names the page already has are
 * left alone (its own o2ws_status_msg, o2ws_status_msgs_enable = true, ...),
 * except the placeholders of o2ws_classic.js.
 */
export function install(target = g) {
  const stubs = target[STUBS] || new Map(); // name -> placeholder
  const free = (name) => !(name in target) || (stubs.has(name) && target[name] === stubs.get(name));
  // a page that said o2ws_local_time = fn before the module came
  const ownClock = stubs.has('o2ws_local_time') && !free('o2ws_local_time') ? target.o2ws_local_time : null;
  for (const [name, fn] of Object.entries(functions)) if (free(name)) target[name] = fn;
  for (const [name, v] of Object.entries(constants)) if (free(name)) target[name] = v;
  if (free('WSURI')) target.WSURI = defaultUrl();
  if (free('o2ws_status_msgs_enable')) target.o2ws_status_msgs_enable = false;
  if (free('o2ws_console_enable')) target.o2ws_console_enable = true;
  for (const [name, get] of Object.entries(live))
    if (free(name)) Object.defineProperty(target, name, { get, configurable: true, enumerable: true });
  if (free('o2ws_local_time') || ownClock)
    Object.defineProperty(target, 'o2ws_local_time', {
      get: () => o2ws_local_time,
      // O2's pages may redirect it: o2ws_local_time = fn (without keeping O2 time continuous)
      set: (fn) => { client.localTime = fn; },
      configurable: true, enumerable: true,
    });
  if (typeof ownClock === 'function') client.localTime = ownClock;
  stubs.clear();
}

install();
