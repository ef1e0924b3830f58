#!/usr/bin/env bash
# docs/config.md (with docs/metrics.md for the metrics) must document every
# key agon accepts, with its default: the host's own sections (from a
# resolved minimal experiment) and every parameter of every built-in plugin
# (from `agon plugins NAME`).
# usage: e2e_docs.sh AGON_BIN SOURCE_DIR BUILD_DIR
set -u
exec /usr/bin/python3 - "$@" <<'EOF_PY'
import os, re, subprocess, sys, tempfile

agon, src = sys.argv[1], sys.argv[2]
doc = "".join(open(os.path.join(src, "docs", name)).read() for name in ("config.md", "metrics.md"))
rows = {}
for line in doc.splitlines():
    m = re.match(r"\| ((?:`[a-z_0-9]+`(?:, )?)+) \|(.*)\|", line)
    if m:
        for key in re.findall(r"`([a-z_0-9]+)`", m.group(1)):
            rows.setdefault(key, []).append(m.group(2))
passed = failed = 0

def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("[ FAIL ]", what)

def documented(key, default):
    cells = rows.get(key, [])
    norm = lambda s: s.replace(" ", "").replace("'", "").replace('"', '')
    return any(norm(default) in norm(c) for c in cells)

# Host keys: validate a minimal experiment and read the filled-in defaults.
minimal = """dataset: {plugin: gaussian_mixture}
generator: {plugin: mlp}
discriminator: {plugin: mlp}
loss: {plugin: minimax}
"""
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write(minimal)
out = subprocess.run([agon, "validate", f.name], capture_output=True, text=True)
check(out.returncode == 0, "minimal experiment validates: " + out.stderr)
section = None
for line in out.stdout.splitlines():
    top = re.match(r"^([a-z_]+):(.*)$", line)
    if top:
        section = top.group(1)
        if section in ("seed", "description"):
            check(documented(section, top.group(2).strip()), f"top-level key '{section}' with default {top.group(2).strip()}")
        continue
    sub = re.match(r"^  ([a-z_]+): (.*)$", line)
    if sub and section in ("train", "log"):
        key, default = sub.groups()
        check(documented(key, default), f"{section}.{key} with default {default}")

# Plugin parameters.
listing = subprocess.run([agon, "plugins"], capture_output=True, text=True).stdout
components = re.findall(r"^  (?:loss|model|dataset|metric|optimizer) ([a-z_0-9]+):", listing, re.M)
check(len(components) >= 7, f"built-in components found: {components}")
for name in components:
    check(f"`{name}`" in doc, f"component '{name}' documented")
    detail = subprocess.run([agon, "plugins", name], capture_output=True, text=True).stdout
    for key, default in re.findall(r"^    ([a-z_0-9]+): [a-z ]+, default (.*?)(?:, (?:items )?in \[.*\])?$", detail, re.M):
        check(documented(key, default), f"{name}.{key} with default {default}")

print(f"e2e_docs: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF_PY
