"""Read agon run logs (HDF5, format_version 1) into numpy arrays.

Usage from Python (Debian's /usr/bin/python3, which has h5py and numpy):

    import sys; sys.path.insert(0, "tools/python")
    import agon_h5
    run = agon_h5.load_run("runs/ring8.h5")
    run["scalars"]["loss_d"], run["metrics"]["mode_coverage"]["modes"]
    runs = agon_h5.load_sweep("runs/sweep")      # every *.h5 in the folder

From the shell: /usr/bin/python3 tools/python/agon_h5.py RUN.h5|DIR prints
one line per run.  docs/python.md describes every function; the log layout
itself is docs/hdf5-layout.md.

pandas is optional: only scalars_frame, metrics_frame and sweep_frame need
it, and they import it when called.
"""

import math
import os
import re
import socket
import sys

import h5py
import numpy as np

# The newest docs/hdf5-layout.md version this reader knows.
FORMAT_VERSION = 1

__all__ = [
    "FORMAT_VERSION", "load_run", "load_sweep", "steps_done", "writer_state",
    "summary_line", "parse_config", "config_value", "sweep_rows",
    "scalars_frame", "metrics_frame", "sweep_frame", "main",
]


def _warn(message):
    print("agon_h5: warning: " + message, file=sys.stderr)


# ---------------------------------------------------------------- reading

def _open(path):
    """Opens a log normally, or in SWMR mode when it is still being written
    or its writer was killed (HDF5 refuses those without SWMR)."""
    try:
        return h5py.File(path, "r")
    except OSError:
        return h5py.File(path, "r", swmr=True)


def _py(value):
    """An attribute value as a plain Python object."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attrs(obj):
    return {name: _py(value) for name, value in obj.attrs.items()}


def _columns(group):
    """Column names of a table or series: the `columns` attribute, so that
    datasets a newer writer adds without declaring them are ignored."""
    declared = group.attrs.get("columns")
    if declared is None:
        names = [n for n, o in group.items() if isinstance(o, h5py.Dataset) and n != "step"]
        return sorted(names)
    declared = _py(declared)
    return [n for n in declared.split(",") if n and n != "step"]


def _table(group):
    """A table or series as {"step": ..., column: ...}, every array cut to
    the rows all of them have (a killed writer can leave unequal lengths)."""
    names = ["step"] + [n for n in _columns(group) if isinstance(group.get(n), h5py.Dataset)]
    if not isinstance(group.get("step"), h5py.Dataset):
        return {}
    datasets = [group[n] for n in names]
    rows = min(ds.shape[0] for ds in datasets)
    return {name: ds[:rows] for name, ds in zip(names, datasets)}


def load_run(path):
    """Loads one run log into a dict of plain Python values and numpy arrays.

    Keys: path, attrs, config, scalars, metrics, metric_tensors,
    metric_attrs, samples (only when the log has /samples), final, and
    diverged (only when the run diverged).  Raises OSError when HDF5 cannot
    open the file and ValueError when it is not an agon run log."""
    path = os.fspath(path)
    with _open(path) as f:
        if "format_version" not in f.attrs:
            raise ValueError("not an agon run log (no format_version attribute)")
        attrs = _attrs(f)
        version = attrs["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            _warn(f"{path}: format_version {version!r} is not one this reader knows "
                  f"(it knows {FORMAT_VERSION}); reading what it recognises")
        run = {"path": path, "attrs": attrs}
        config = f.get("config")
        run["config"] = config.asstr()[()] if isinstance(config, h5py.Dataset) else ""
        scalars = f.get("scalars")
        run["scalars"] = _table(scalars) if isinstance(scalars, h5py.Group) else {}

        run["metrics"], run["metric_tensors"], run["metric_attrs"] = {}, {}, {}
        metrics = f.get("metrics")
        if isinstance(metrics, h5py.Group):
            for name, group in metrics.items():
                if not isinstance(group, h5py.Group):
                    continue
                run["metric_attrs"][name] = _attrs(group)
                # A metric with only tensor outputs has no table (no step).
                if "step" in group:
                    run["metrics"][name] = _table(group)
                tensors = group.get("tensors")
                if isinstance(tensors, h5py.Group):
                    run["metric_tensors"][name] = _table(tensors)

        samples = f.get("samples")
        if isinstance(samples, h5py.Group):
            run["samples"] = _table(samples)

        run["final"] = {}
        for part in ("generator", "discriminator"):
            group = f.get("final/" + part)
            params = {}
            if isinstance(group, h5py.Group):
                for name, ds in group.items():
                    if isinstance(ds, h5py.Dataset):
                        params[name] = ds[()]
            run["final"][part] = params

        diverged = f.get("diverged")
        if isinstance(diverged, h5py.Group):
            run["diverged"] = _attrs(diverged)
    return run


def load_sweep(directory):
    """load_run for every *.h5 file in `directory` (not its subfolders),
    sorted by name.  A file that is not a readable agon log is skipped with
    a warning on stderr naming it and the reason."""
    directory = os.fspath(directory)
    runs = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.endswith(".h5") or not os.path.isfile(path):
            continue
        try:
            runs.append(load_run(path))
        except (OSError, ValueError, KeyError) as e:
            _warn(f"skipping {path}: {e}")
    return runs


# ---------------------------------------------------------------- summaries

def steps_done(run):
    """Steps completed.  While a run is being written (and after its writer
    was killed) the steps_done attribute stays 0; the last logged step is
    then the count, as `agon show` reports it."""
    attrs = run["attrs"]
    if attrs.get("status") == "running":
        step = run["scalars"].get("step")
        return int(step[-1]) if step is not None and len(step) else 0
    return int(attrs.get("steps_done", 0))


def writer_state(run):
    """For a log whose status is "running": "alive" when its writer process
    exists on this host, "gone" when it does not (the writer was killed),
    "unknown" when the log was written on another host.  None otherwise."""
    attrs = run["attrs"]
    if attrs.get("status") != "running":
        return None
    pid = attrs.get("pid")
    if attrs.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return "unknown"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


def _last(table, column):
    values = table.get(column)
    return float(values[-1]) if values is not None and len(values) else math.nan


def summary_line(run):
    """One line: "PATH: STATUS, DONE/PLANNED steps, loss_d X loss_g Y",
    with the status message after " -- " when there is one."""
    attrs = run["attrs"]
    status = str(attrs.get("status", "?"))
    state = writer_state(run)
    if state == "alive":
        status = f"running (pid {attrs['pid']})"
    elif state == "gone":
        status = f"interrupted (its writer, pid {attrs['pid']}, is gone)"
    elif state == "unknown":
        status = f"running or interrupted (on {attrs.get('host', '?')})"
    losses = []
    for column in ("loss_d", "loss_g"):
        value = _last(run["scalars"], column)
        losses.append(f"{column} " + ("-" if math.isnan(value) else f"{value:.4f}"))
    line = (f"{run['path']}: {status}, {steps_done(run)}/{attrs.get('steps_planned', '?')} steps, "
            + " ".join(losses))
    message = attrs.get("status_message")
    if message:
        line += " -- " + message
    return line


# ---------------------------------------------------------------- config YAML

# Plain scalars are typed by the YAML 1.2 core schema (so 1e-8 is a float,
# "yes" a string); quoted ones stay strings.  The same rules apply whether
# PyYAML parses the text or the fallback below does.
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def _type_plain(text):
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text)
    if re.match(r"0o[0-7]+\Z", text):
        return int(text[2:], 8)
    if re.match(r"0x[0-9a-fA-F]+\Z", text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if re.match(r"[-+]?\.(inf|Inf|INF)\Z", text):
        return -math.inf if text[0] == "-" else math.inf
    if text in (".nan", ".NaN", ".NAN"):
        return math.nan
    return text


_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
            "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
            "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _double_quoted(text, i):
    """The string starting with '"' at text[i]; returns (value, end)."""
    out = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(text):
            e = text[i + 1]
            if e in _HEX_ESCAPES:
                n = _HEX_ESCAPES[e]
                out.append(chr(int(text[i + 2:i + 2 + n], 16)))
                i += 2 + n
                continue
            if e not in _ESCAPES:
                raise ValueError(f"unknown escape '\\{e}' in a double-quoted string")
            out.append(_ESCAPES[e])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ValueError("unterminated double-quoted string")


def _single_quoted(text, i):
    out = []
    i += 1
    while i < len(text):
        if text[i] == "'":
            if text[i + 1:i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise ValueError("unterminated single-quoted string")


def _flow(text, i):
    """A flow value ([...], {...}, quoted or plain) at text[i]; returns
    (value, end).  Plain scalars end at ',', ']' or '}'."""
    while i < len(text) and text[i] == " ":
        i += 1
    c = text[i] if i < len(text) else ""
    if c == '"':
        return _double_quoted(text, i)
    if c == "'":
        return _single_quoted(text, i)
    if c in "[{":
        close = "]" if c == "[" else "}"
        items = [] if c == "[" else {}
        i += 1
        while True:
            while i < len(text) and text[i] == " ":
                i += 1
            if i < len(text) and text[i] == close:
                return items, i + 1
            value, i = _flow(text, i)
            if c == "{":
                while i < len(text) and text[i] == " ":
                    i += 1
                if text[i:i + 1] != ":":
                    raise ValueError("expected ':' in a flow mapping")
                items[value], i = _flow(text, i + 1)
            else:
                items.append(value)
            while i < len(text) and text[i] == " ":
                i += 1
            if text[i:i + 1] == ",":
                i += 1
            elif text[i:i + 1] != close:
                raise ValueError(f"expected ',' or '{close}' in a flow collection")
    end = i
    while end < len(text) and text[end] not in ",]}" and not (
            text[end] == ":" and text[end + 1:end + 2] in (" ", "")):
        end += 1
    return _type_plain(text[i:end].strip()), end


def _scalar(text):
    """The value after 'key: ' or '- ' on one line."""
    if text[0] in "\"'[{":
        value, end = _flow(text, 0)
        rest = text[end:].strip()
        if rest and not rest.startswith("#"):
            raise ValueError(f"unexpected text after a value: '{rest}'")
        return value
    comment = text.find(" #")
    if comment >= 0:
        text = text[:comment].rstrip()
    return _type_plain(text)


def _split_key(content):
    """'key: value' -> (key, 'value'); 'key:' -> (key, '')."""
    if content[0] in "\"'":
        key, end = (_double_quoted if content[0] == '"' else _single_quoted)(content, 0)
        rest = content[end:]
        if not rest.startswith(":"):
            raise ValueError(f"expected ':' after the key {content[:end]}")
        return key, rest[1:].strip()
    sep = content.find(": ")
    if sep < 0:
        if not content.endswith(":"):
            raise ValueError(f"expected 'key: value', got '{content}'")
        sep = len(content) - 1
    return _type_plain(content[:sep].rstrip()), content[sep + 1:].strip()


def _is_item(content):
    return content == "-" or content.startswith("- ")


def _block(lines, i, indent):
    """The block collection whose first line is lines[i], at `indent`.
    Returns (value, index of the first line after it)."""
    if _is_item(lines[i][1]):
        items = []
        while i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
            rest = lines[i][1][1:].lstrip(" ")
            if not rest:
                if i + 1 < len(lines) and lines[i + 1][0] > indent:
                    value, i = _block(lines, i + 1, lines[i + 1][0])
                else:
                    value, i = None, i + 1
            elif _is_item(rest) or _starts_mapping(rest):
                # "- key: value" or "- - x": a collection starting on this
                # line, its other lines at the column where it began.
                column = indent + len(lines[i][1]) - len(rest)
                lines[i] = (column, rest)
                value, i = _block(lines, i, column)
            else:
                value, i = _scalar(rest), i + 1
            items.append(value)
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i][1]):
        key, rest = _split_key(lines[i][1])
        i += 1
        if rest:
            mapping[key] = _scalar(rest)
        elif i < len(lines) and (lines[i][0] > indent or
                                 (lines[i][0] == indent and _is_item(lines[i][1]))):
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


def _starts_mapping(text):
    """True when a line's content is "key: value" or "key:" (agon quotes
    every value holding ": " or ending with ':', so a plain one is a key)."""
    if text[0] in "[{":
        return False
    if text[0] in "\"'":
        try:
            end = (_double_quoted if text[0] == '"' else _single_quoted)(text, 0)[1]
        except (ValueError, IndexError):
            return False
        return text[end:end + 1] == ":"
    return ": " in text or text.endswith(":")


def _parse_block_yaml(text):
    """A parser for the block-style YAML agon writes into /config (block
    mappings and sequences, plain and quoted scalars, flow [] and {}).
    Used when PyYAML is not installed."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        content = raw.strip()
        if not content or content.startswith("#") or content in ("---", "..."):
            continue
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {number}: tab in the indentation")
        lines.append((len(raw) - len(raw.lstrip(" ")), content))
    if not lines:
        return None
    if len(lines) == 1 and not _is_item(lines[0][1]) and not _starts_mapping(lines[0][1]):
        return _scalar(lines[0][1])
    value, end = _block(lines, 0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unexpected indentation at '{lines[end][1]}'")
    return value


try:
    import yaml as _yaml
except ImportError:
    _yaml = None

if _yaml is not None:
    class _Loader(_yaml.SafeLoader):
        """SafeLoader typing plain scalars with _type_plain."""
        yaml_implicit_resolvers = {}

    def _construct_str(loader, node):
        value = loader.construct_scalar(node)
        return _type_plain(value) if node.style is None else value

    _Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)


def parse_config(text):
    """The /config YAML text (load_run's run["config"]) as nested dicts and
    lists, with PyYAML when it is installed, else with a small parser for
    the block style agon writes."""
    if isinstance(text, dict) and "config" in text:
        text = text["config"]
    if _yaml is not None:
        return _yaml.load(text, Loader=_Loader)
    return _parse_block_yaml(text)


_MISSING = object()


def config_value(config, key, default=None):
    """The value at a dotted path of a parsed config: "loss.plugin",
    "train.steps", "metrics[0].every" (or "metrics.0.every").  `default`
    when a part of the path is missing."""
    node = config
    for part in re.findall(r"[^.\[\]]+", key):
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif _INT.match(part) and int(part) in node:
                node = node[int(part)]
            else:
                return default
        elif isinstance(node, list) and re.match(r"[0-9]+\Z", part) and int(part) < len(node):
            node = node[int(part)]
        else:
            return default
    return node


# ---------------------------------------------------------------- sweeps

def sweep_rows(runs, metric=None, column=None, keys=None):
    """One dict per run: path, run_id, seed, status, steps_done (see
    steps_done()), then each dotted config key of `keys`, then the final
    value of `metric`'s `column` under the name "metric/column" (every
    column of the metric when `column` is None; NaN when a run has no row
    of it).  This is what sweep_frame puts into a DataFrame."""
    keys = list(keys or [])
    columns = []
    if metric is not None:
        if column is not None:
            columns = [column]
        else:
            for run in runs:
                for c in run["metrics"].get(metric, {}):
                    if c != "step" and c not in columns:
                        columns.append(c)
    rows = []
    for run in runs:
        attrs = run["attrs"]
        row = {"path": run["path"], "run_id": attrs.get("run_id"), "seed": attrs.get("seed"),
               "status": attrs.get("status"), "steps_done": steps_done(run)}
        if keys:
            config = parse_config(run["config"])
            for key in keys:
                row[key] = config_value(config, key)
        table = run["metrics"].get(metric, {}) if metric is not None else {}
        for c in columns:
            row[f"{metric}/{c}"] = _last(table, c)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- pandas

def _pandas(function):
    try:
        import pandas
    except ImportError as e:
        raise ImportError(
            f"agon_h5.{function} needs pandas, which {sys.executable} cannot import ({e}); "
            "install it (Debian: apt-get install python3-pandas) or use the dicts of numpy "
            "arrays that load_run returns") from e
    return pandas


def scalars_frame(run):
    """/scalars as a DataFrame: a step column, then one column per scalar."""
    pd = _pandas("scalars_frame")
    return pd.DataFrame(dict(run["scalars"]))


def metrics_frame(run, metric):
    """The table of one metric as a DataFrame: step, then its columns."""
    pd = _pandas("metrics_frame")
    if metric not in run["metrics"]:
        have = ", ".join(sorted(run["metrics"])) or "none"
        raise KeyError(f"{run['path']} has no table for metric '{metric}' (metrics with a table: {have})")
    return pd.DataFrame(dict(run["metrics"][metric]))


def sweep_frame(runs, metric=None, column=None, keys=None):
    """sweep_rows as a DataFrame, one row per run."""
    pd = _pandas("sweep_frame")
    rows = sweep_rows(runs, metric, column, keys)
    names = list(rows[0]) if rows else ["path", "run_id", "seed", "status", "steps_done"]
    return pd.DataFrame(rows, columns=names)


# ---------------------------------------------------------------- command line

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: agon_h5.py RUN.h5|DIR\n"
              "prints one line per run log: path, status, steps done/planned, last losses",
              file=sys.stderr if len(argv) != 1 else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    target = argv[0]
    if os.path.isdir(target):
        runs = load_sweep(target)
        if not runs:
            print(f"agon_h5: {target}: no readable agon run logs (*.h5) in this folder",
                  file=sys.stderr)
            return 1
    else:
        try:
            runs = [load_run(target)]
        except (OSError, ValueError, KeyError) as e:
            print(f"agon_h5: {target}: {e}", file=sys.stderr)
            return 1
    for run in runs:
        print(summary_line(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
