// o2ws_classic.js — a classic-script form of o2ws_compat.js, for pages written
// for O2's o2ws.js: replace <script src="o2ws.js"></script> with
//
//   <script src="/sdk/o2ws_classic.js"></script>
//
// It loads the module o2ws_compat.js (next to this file) with import(). Until
// the module has arrived, the o2ws_* functions are placeholders that keep each
// call and make it again, in order, when it arrives, so even code that runs
// while the page is parsed (o2ws_initialize(...) in an inline script) works.
// In the meantime o2ws_time_get() is -1, o2ws_local_time() the local time,
// o2ws_clock_synchronized false, o2ws_bridge_id null; the O2_* constants,
// ETX and WSURI are there from the start.
(function () {
  'use strict';
  var g = window;
  var STUBS = Symbol.for('o2ws_compat.stubs');
  var stubs = g[STUBS] || (g[STUBS] = new Map()); // name -> placeholder, for install()
  var calls = [];
  // `keep`: a setting or constant, which the module leaves as the page sets it.
  function put(name, value, keep) {
    if (name in g) return; // the page's own
    g[name] = value;
    if (!keep) stubs.set(name, value);
  }
  [
    'o2ws_initialize', 'o2ws_finish', 'o2ws_set_services', 'o2ws_set_properties', 'o2ws_tap',
    'o2ws_method_new', 'o2ws_send', 'o2ws_send_cmd', 'o2ws_send_start', 'o2ws_send_finish',
    'o2ws_add_string', 'o2ws_add_time', 'o2ws_add_double', 'o2ws_add_float', 'o2ws_add_int',
    'o2ws_add_int32', 'o2ws_set_time_reference',
  ].forEach(function (name) {
    put(name, function () { calls.push([name, Array.prototype.slice.call(arguments)]); });
  });
  // No message can be handled before the module is here: nothing to read yet.
  ['o2ws_get_time', 'o2ws_get_double', 'o2ws_get_float', 'o2ws_get_int32', 'o2ws_get_int',
   'o2ws_get_int64', 'o2ws_get_string'].forEach(function (name) {
    put(name, function () { return undefined; });
  });
  put('o2ws_time_get', function () { return -1; });
  // The same time base as O2ws's (performance.now()), so it continues unchanged.
  put('o2ws_local_time', function () { return performance.now() / 1000; });
  put('o2ws_clock_synchronized', false);
  put('o2ws_bridge_id', null);
  put('o2ws_ensemble', null);
  put('o2ws_websocket', false);
  put('o2ws_message_fields', null);
  put('o2ws_status_msgs_enable', false, true);
  put('o2ws_console_enable', true, true);
  var constants = {
    O2_UNKNOWN: -1, O2_LOCAL_NOTIME: 0, O2_REMOTE_NOTIME: 1, O2_BRIDGE_NOTIME: 2,
    O2_TO_OSC_NOTIME: 3, O2_LOCAL: 4, O2_REMOTE: 5, O2_BRIDGE: 6, O2_TO_OSC: 7, O2_TAP: 8,
    TAP_KEEP: 0, TAP_RELIABLE: 1, TAP_BEST_EFFORT: 2, ETX: '\x03',
  };
  Object.keys(constants).forEach(function (name) { put(name, constants[name], true); });
  var token = new URLSearchParams(location.search).get('token');
  put('WSURI', (location.protocol === 'https:' ? 'wss' : 'ws') + '://' + location.host + '/o2ws' +
      (token ? '?token=' + encodeURIComponent(token) : ''), true);

  var here = (document.currentScript && document.currentScript.src) || location.href;
  import(new URL('o2ws_compat.js', here).href).then(function (m) {
    m.install(g); // replaces the placeholders the page has not replaced itself
    calls.splice(0).forEach(function (c) { g[c[0]].apply(g, c[1]); });
  }, function (e) {
    var text = 'cannot load o2ws_compat.js: ' + e;
    if (typeof g.o2ws_on_error === 'function') g.o2ws_on_error(text);
    else if (typeof g.o2ws_error === 'function') g.o2ws_error(text);
    else console.error(text);
  });
})();
