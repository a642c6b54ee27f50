#!/usr/bin/env python3
"""The manual against the code it describes.

- docs/configuration.md documents exactly the keys of the config schema
  (sdk/schema/o2hub-config.schema.json): each `<!-- keys: NAME -->` marker
  opens the section for the router ("router"), a plugin entry ("plugin") or
  one plugin's $defs entry, and the first cell of each table row below it
  names keys (`port`, `delegates[].service`, `clock.reference`). A key in
  the schema missing from its section fails, and so does a documented key
  the schema does not have.
- Every relative link in README.md and docs/*.md leads to a file of the
  repository, and its #anchor to a heading of the page.
- README.md stays a front door (at most MAX_README bytes).
- No issue numbers ("issue #N") in the docs or the sources: history is in
  CHANGELOG.md, in prose.

Usage: check-docs.py SOURCE_ROOT
"""
import glob
import json
import os
import re
import sys

MAX_README = 10 * 1024

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
failures = []


def fail(what):
    print("FAIL " + what)
    failures.append(what)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rel(path):
    return os.path.relpath(path, root)


# ---- Markdown helpers -------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")


def lines_outside_code(text):
    """(line number, line) for every line outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def strip_inline_code(line):
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    for _, line in lines_outside_code(read(path)):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
        for a in re.findall(r'<a\s+(?:id|name)="([^"]+)"', line):
            out.add(a)
    return out


# ---- 1. docs/configuration.md against the schema ---------------------------

def schema_paths(node, prefix=""):
    """Key paths under a schema node: "k", "k.sub" (object), "k[].sub" (array)."""
    paths = set()
    for k, v in node.get("properties", {}).items():
        if v == {}:  # "type", "file", "required" repeated in each plugin's def
            continue
        paths.add(prefix + k)
        if "properties" in v:
            paths |= schema_paths(v, prefix + k + ".")
        items = v.get("items")
        if isinstance(items, dict) and "properties" in items:
            paths |= schema_paths(items, prefix + k + "[].")
    return paths


KEY_PATH = re.compile(r"^\$?[A-Za-z_][A-Za-z0-9_]*((\[\])?\.[A-Za-z_][A-Za-z0-9_]*)*$")


def documented_keys(path):
    """marker name -> (set of key paths, line of the marker)."""
    sections = {}
    current = None
    table_row = 0
    for n, line in lines_outside_code(read(path)):
        m = re.match(r"^\s*<!--\s*keys:\s*([a-z0-9_]+)\s*-->\s*$", line)
        if m:
            current = m.group(1)
            if current in sections:
                fail(f"{rel(path)}:{n}: a second section for keys of {current!r}")
            sections[current] = (set(), n)
            table_row = 0
            continue
        if line.startswith("#"):
            current = None
            continue
        if not line.lstrip().startswith("|"):
            table_row = 0
            continue
        table_row += 1
        if current is None or table_row <= 2:  # the header row and the |---| row
            continue
        first = line.strip().strip("|").split("|")[0]
        for token in re.findall(r"`([^`]+)`", first):
            if KEY_PATH.match(token):
                sections[current][0].add(token)
    return sections


schema_file = os.path.join(root, "sdk", "schema", "o2hub-config.schema.json")
config_page = os.path.join(root, "docs", "configuration.md")
schema = json.loads(read(schema_file))
want = {"router": schema_paths(schema), "plugin": schema_paths(schema["$defs"]["plugin"])}
for rule in schema["$defs"]["plugin"].get("allOf", []):
    name = rule["then"]["$ref"].rsplit("/", 1)[-1]
    want[name] = schema_paths(schema["$defs"][name])

if not os.path.exists(config_page):
    fail("docs/configuration.md is missing")
else:
    have = documented_keys(config_page)
    for name, keys in sorted(want.items()):
        if name not in have:
            fail(f"docs/configuration.md has no <!-- keys: {name} --> section for the schema's "
                 f"{name!r} keys")
            continue
        doc, line = have[name]
        missing, extra = sorted(keys - doc), sorted(doc - keys)
        if missing:
            fail(f"docs/configuration.md:{line}: {name}: in the schema, not documented: "
                 + ", ".join(missing))
        if extra:
            fail(f"docs/configuration.md:{line}: {name}: documented, not in the schema: "
                 + ", ".join(extra))
        if not missing and not extra:
            print(f"ok   configuration.md documents the {len(keys)} keys of {name}")
    for name in sorted(set(have) - set(want)):
        fail(f"docs/configuration.md:{have[name][1]}: keys of {name!r}: the schema has no "
             "such plugin")

# ---- 2. relative links ------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
pages = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
anchor_cache = {}
n_links = 0
for page in pages:
    for n, line in lines_outside_code(read(page)):
        for target in LINK.findall(strip_inline_code(line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            n_links += 1
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            where = f"{rel(page)}:{n}: {target}"
            if os.path.commonpath([root, dest]) != root:
                fail(f"{where}: leads outside the repository")
                continue
            if not os.path.exists(dest):
                fail(f"{where}: no such file")
                continue
            if anchor:
                if not dest.endswith(".md"):
                    fail(f"{where}: an anchor in a file that is not Markdown")
                    continue
                if dest not in anchor_cache:
                    anchor_cache[dest] = anchors(dest)
                if anchor not in anchor_cache[dest]:
                    fail(f"{where}: {rel(dest)} has no heading #{anchor}")
print(f"ok   {n_links} relative links checked in {len(pages)} pages" if not failures
      else f"     {n_links} relative links checked in {len(pages)} pages")

# ---- 3. README's size -------------------------------------------------------

size = os.path.getsize(os.path.join(root, "README.md"))
if size > MAX_README:
    fail(f"README.md is {size} bytes, more than {MAX_README}: move details to docs/")
else:
    print(f"ok   README.md is {size} bytes (at most {MAX_README})")

# ---- 4. no issue numbers ----------------------------------------------------

ISSUE = re.compile(r"\bissues?\s*#\s*\d+|\(issue\s+\d+|\bissue\s+\d+\b", re.I)
TEXT = (".c", ".h", ".js", ".mjs", ".py", ".sh", ".md", ".json", ".build", ".txt", ".html")
scanned = [os.path.join(root, f) for f in ("README.md", "CHANGELOG.md", "meson.build")]
for d in ("core", "sdk", "transports", "plugins", "tools", "docs", "examples", "tests", "bench",
          "scripts", ".ci"):
    for dirpath, dirnames, files in os.walk(os.path.join(root, d)):
        dirnames[:] = [x for x in dirnames if x not in ("node_modules", "corpus")]
        scanned += [os.path.join(dirpath, f) for f in files if f.endswith(TEXT) or f == "run"]
for path in scanned:
    if os.path.abspath(path) == os.path.abspath(__file__) or not os.path.isfile(path):
        continue
    try:
        text = read(path)
    except UnicodeDecodeError:
        continue
    for n, line in enumerate(text.splitlines(), 1):
        if ISSUE.search(line):
            fail(f"{rel(path)}:{n}: an issue number: {line.strip()[:80]}")
print(f"ok   no issue numbers in {len(scanned)} files" if not any(
    "issue number" in f for f in failures) else "")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
