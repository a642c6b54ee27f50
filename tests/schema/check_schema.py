#!/usr/bin/env python3
"""The config schema (sdk/schema/o2hub-config.schema.json) against the router.

- Every example router config validates.
- Configs the router refuses are refused by the schema too, and the router
  really refuses them (`o2hub --check` exits non-zero): the two agree.
- The keys of each built-in plugin in the schema are exactly the keys its
  source reads (string literals in its host->cfg calls), so neither can drift.

Usage: check_schema.py SCHEMA SOURCE_ROOT O2HUB_EXE PLUGIN_DIR... (exit 77: skipped)
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed")
    sys.exit(77)

schema_path, root, o2hub, *plugin_dirs = sys.argv[1:]
plugin_dirs = [os.path.abspath(d) for d in plugin_dirs]
schema = json.load(open(schema_path))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def schema_errors(cfg):
    return [e.message for e in validator.iter_errors(cfg)]


def router_accepts(cfg):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.json")
        json.dump(cfg, open(path, "w"))
        r = subprocess.run([o2hub, "--config", path, "--check"], capture_output=True, text=True,
                           timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).strip()


# 1. the examples
for f in sorted(glob.glob(os.path.join(root, "examples", "**", "*.json"), recursive=True)):
    cfg = json.load(open(f))
    if "ensemble" not in cfg:
        continue
    errs = schema_errors(cfg)
    check(not errs, f"{os.path.relpath(f, root)} validates {errs if errs else ''}")

# 2. refused by both
base = {"ensemble": "schema", "plugin_path": plugin_dirs}
# what is wrong, the config, and a word the router's error must name
bad = {
    "an unknown top-level key": ({**base, "plugin_pth": []}, "plugin_pth"),
    "a bad log level": ({**base, "log_level": "loud"}, "log_level"),
    "no ensemble": ({"plugin_path": plugin_dirs}, "ensemble"),
    "an ensemble with a space": ({**base, "ensemble": "my ens"}, "ensemble"),
    "a $schema that is not a string": ({**base, "$schema": 1}, "$schema"),
    "an unknown tcp key": ({**base, "transports": [{"type": "tcp", "prot": 1}]}, "prot"),
    "a udp batch too large": ({**base, "transports": [{"type": "udp", "batch": 65}]}, "batch"),
    "a tcp port out of range": ({**base, "transports": [{"type": "tcp", "port": 70000}]}, "port"),
    "an OSC port without a service": (
        {**base, "transports": [{"type": "osc", "ports": [{"port": 0}]}]}, "service"),
    "an OSC framing that does not exist": ({**base, "transports": [
        {"type": "osc", "ports": [{"port": 0, "service": "s", "protocol": "tcp", "framing": "cobs"}]}]},
        "framing"),
    "a property that is not a string": (
        {**base, "services": [{"name": "s", "properties": {"x": 1}}]}, "properties"),
    "a static peer list that is not a list": (
        {**base, "discovery": [{"type": "static", "peers": "x"}]}, "peers"),
    "tls_cert without tls_key": (
        {**base, "transports": [{"type": "websocket", "port": 0, "tls_cert": "c.pem"}]}, "tls_"),
}
for what, (cfg, word) in bad.items():
    check(bool(schema_errors(cfg)), f"the schema refuses {what}")
    accepted, out = router_accepts(cfg)
    check(not accepted and word in out, f"o2hub --check refuses {what}, naming {word!r}"
          + ("" if not accepted and word in out else f": it said {out!r}"))

# ... and a good one is accepted by both
good = {**base, "$schema": "../sdk/schema/o2hub-config.schema.json", "log_level": "warn", "clock": {"reference": True},
        "transports": [{"type": "tcp", "host": "127.0.0.1", "port": 0},
                       {"type": "udp", "host": "127.0.0.1", "port": 0, "batch": 8}],
        "discovery": [{"type": "static", "peers": ["127.0.0.1:9"], "interval_max": 1.0}],
        "services": [{"name": "s", "properties": {"x": "1"}}]}
check(not schema_errors(good), "the schema accepts a full good config")
accepted, out = router_accepts(good)
check(accepted, f"o2hub --check accepts it {'' if accepted else out}")

# 3. schema keys == the keys each plugin's source reads
KEY_CALL = re.compile(r'cfg(?:_|->)[a-z_]+\(\s*[a-z_]+\s*,\s*"([a-z_$]+)"')
plugin_sources = {
    "tcp": "transports/tcp", "udp": "transports/udp", "osc": "transports/osc",
    "shm": "transports/shm", "mqtt": "transports/mqtt", "websocket": "transports/websocket",
    "static": "plugins/static", "broadcast": "plugins/broadcast", "dnssd": "plugins/dnssd",
}
COMMON = {"type", "file", "required"}


def schema_keys(node):
    """Every property name under a schema node, nested ones too."""
    keys = set()
    if isinstance(node, dict):
        for k, v in node.get("properties", {}).items():
            keys.add(k)
            keys |= schema_keys(v)
        for k in ("items", "additionalProperties"):
            if isinstance(node.get(k), dict):
                keys |= schema_keys(node[k])
    return keys


for name, folder in plugin_sources.items():
    text = "".join(open(f).read() for f in glob.glob(os.path.join(root, folder, "*.c")))
    read = set(KEY_CALL.findall(text))
    # arrays of objects read through a variable key (osc: delegates, ports)
    read |= {k for k in ("delegates", "ports", "mounts") if f'"{k}"' in text}
    # keys read in a loop over a table: `const char *keys[3] = {"ca_file", ...}`
    for table in re.findall(r'keys\[\d*\]\s*=\s*\{([^}]*)\}', text):
        read |= set(re.findall(r'"([a-z_]+)"', table))
    listed = schema_keys(schema["$defs"][name]) - COMMON
    check(read == listed, f"{name}: schema keys match the source"
          + ("" if read == listed else f" (only in source: {sorted(read - listed)},"
                                        f" only in schema: {sorted(listed - read)})"))

core = open(os.path.join(root, "core", "config.c")).read()
core_read = set(KEY_CALL.findall(core)) | {"transports", "discovery", "plugins", "$schema"}
top = set(schema["properties"])
nested = schema_keys(schema["properties"]["clock"]) | {"name", "properties", "type", "file",
                                                       "required"}
check(core_read <= top | nested and top <= core_read,
      f"top-level keys match core/config.c (source: {sorted(core_read)}, schema: {sorted(top)})")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
