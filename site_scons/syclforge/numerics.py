"""Cross-device numerics (`scons numerics`): every case a client project
declares, run on every device image this machine can run, each compared with
the client's reference, with every other device and with itself.

Plain Python, no SCons, and nothing of the client: the engine owns the
matrix and the comparisons; a plugin module of the client (a file, loaded
with load_plugin) owns what runs and how close it must come. The matrix is
data: one row per (runner, target, toolchain, device, image) that the built
targets offer, so a new toolchain, image or device joins it by being built.
An image the machine cannot run is reported as unreachable, not as a failure.

What is compared with what (the engine's part):

  reference    a device's output against the plugin's reference
  pairwise     two devices' outputs against each other (the plugin's check
               with pairwise=True; bits_differ counts the elements they do
               not share bit for bit)
  determinism  the same device and image twice, bit for bit (the device
               record's "nondeterministic" list)

The plugin contract. A plugin is a Python file defining:

  TOLERANCES   optional: a string recorded in the report as "tolerances"
               (where the plugin's metrics and thresholds are declared).

  run_image(spec, image, npz_path, *, perturb, python, log) -> dict
      Run one image of one spec (the dict given to run_local, its "files"
      the client's built artifacts, untouched), in its own process(es),
      twice; write every output into npz_path (a .npz file, which the
      engine keeps and hands back to cases); return the device record:
        {"status": "ran", "device": NAME,
         "image": ID, "toolchain": NAME,    (as the run reports them; default the spec's)
         "nondeterministic": [case ids not bit-identical the second time],
         ...whatever per-case bookkeeping the cases read back}
        {"status": "unreachable", "reason": TEXT}   this machine cannot run it
        {"status": "failed", "reason": TEXT}        it should have run and did not
      The engine adds runner, target and "outputs" (npz_path's name); a
      "ran" without npz_path, or a record without a status, is "failed".
      perturb is "" or what the user asked to perturb for this image (the
      WHAT of SYCLFORGE_NUMERICS_PERTURB=WHAT or WHAT@IMAGE): the plugin's
      own way of proving that a violation is caught. python: the
      interpreter for worker processes. log: one line of progress.

  cases() -> iterable of case objects, each with
      .id      unique text (the report's "case"; the key of the device
               record's "nondeterministic")
      .op      what the case exercises (the default op of its rows)
      .label   its shape, as people read it (the report's "shape")
      .output(npz, device) -> the device's output for this case, read from
               its npz (numpy.load of npz_path) and record; None when the
               device did not run this case (no row); raise
               NoOutput(reason, metric="error", op=None) when it should have
               and has none (an error, or computed on other inputs): one
               failed row naming the reason.
      .reference() -> what every device's output is checked against
               (called once, only when some device has an output).
      .check(got, want, pairwise=False) -> list of Check: got against want
               (the reference, or with pairwise=True another device's
               output). One Check per row; a case may give several (one per
               op it covers). Check.compared is the pair of arrays whose
               bits a pairwise row counts; left None, (got, want) are.

Outputs in the out folder (written to a staging folder and swapped in whole,
so a failed run never leaves half a report): report.json (every comparison,
and the plugin's path relative to the top), table.txt (what the terminal
shows), report.png (a heatmap, when matplotlib is installed) and the outputs'
npz files (every raw output, so that `merge` can compare devices of other
machines pairwise). The command line merges reports without SCons:

    python -m syclforge.numerics merge DIR... [--out DIR] [--plugin PATH]
"""
import importlib.util
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from hashlib import sha1
from itertools import combinations
from pathlib import Path

import numpy as np

from syclforge.errors import SyclforgeError

SCHEMA = "syclforge-numerics/1"
KEY_FIELDS = ("runner", "target", "toolchain", "device", "image")
STATUSES = ("ran", "unreachable", "failed")


def _log(msg):
    print(msg, flush=True)


def default_runner():
    """Where the numerics ran: SYCLFORGE_RUNNER (set in containers), else the host."""
    return os.environ.get("SYCLFORGE_RUNNER") or f"host:{socket.gethostname()}"


def device_key(d):
    return "|".join(str(d.get(k, "")) for k in KEY_FIELDS)


def _slug(*parts):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_")


# --------------------------------------------------------------------------
# The plugin

class NoOutput(Exception):
    """Raised by a case's output(): the device should have an output for the
    case and has none. One failed row: op (default the case's), metric
    ("error", or e.g. "inputs"), value Inf, the reason as its worst."""

    def __init__(self, reason, metric="error", op=None):
        super().__init__(reason)
        self.reason, self.metric, self.op = str(reason), metric, op


@dataclass
class Check:
    """One comparison a case's check() made: a row of the report."""
    op: str
    metric: str
    value: float            # the metric; <= threshold passes (with ok)
    threshold: float
    ok: bool
    worst: str = ""         # where it was worst, as text
    compared: tuple = None  # (a, b): the arrays a pairwise row counts bits_differ of


def load_plugin(path):
    """Import the plugin file at path as a module of its own (a name made
    from the resolved path, so two plugins never collide). Errors name the
    file."""
    path = Path(path)
    if not path.is_file():
        raise SyclforgeError(f"{path}: no such numerics plugin (a Python file defining run_image() "
                             "and cases())")
    resolved = path.resolve()
    name = f"syclforge_numerics_plugin_{_slug(resolved.stem)}_{sha1(str(resolved).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise SyclforgeError(f"{path}: cannot be imported as a numerics plugin (not a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyclforgeError:
        sys.modules.pop(name, None)
        raise
    except Exception as e:
        sys.modules.pop(name, None)
        raise SyclforgeError(f"{path}: the numerics plugin failed to import: {type(e).__name__}: {e}") from e
    missing = [f for f in ("run_image", "cases") if not callable(getattr(module, f, None))]
    if missing:
        sys.modules.pop(name, None)
        raise SyclforgeError(f"{path}: not a numerics plugin: it defines no "
                             + " and no ".join(f"{f}()" for f in missing))
    # Where it was named, links unresolved: a container's tree links the
    # source in, and the report must name the plugin under the tree's top.
    module.__syclforge_plugin_path__ = os.path.abspath(path)
    return module


def _plugin_path(top, plugin):
    """The plugin's file relative to top (as the report records it)."""
    named = getattr(plugin, "__syclforge_plugin_path__", None) or plugin.__file__
    return Path(os.path.relpath(os.path.abspath(named), os.path.abspath(top))).as_posix()


# --------------------------------------------------------------------------
# Running one machine's matrix

def run_local(top, specs, out_dir, *, plugin, runner=None, perturb="", python=None, log=_log):
    """Run every image of every spec (dicts: target, toolchain, images, and
    files: the client's built artifacts, which only the plugin reads) with
    the plugin's run_image, evaluate, and write the report into out_dir.
    Returns the report.

    perturb: 'WHAT' or 'WHAT@IMAGE': WHAT is passed to run_image for every
    image, or for IMAGE only (the harness's own test)."""
    top, out_dir = Path(top), Path(out_dir)
    runner = runner or default_runner()
    python = python or sys.executable
    staging = _staging(out_dir)
    try:
        return _run_local(top, specs, out_dir, staging, plugin, runner, perturb, python, log)
    except BaseException:       # interrupted or broken: no half-written report
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run_local(top, specs, out_dir, staging, plugin, runner, perturb, python, log):
    devices = []
    t0 = time.monotonic()
    p_what, _, p_image = perturb.partition("@")
    for spec in specs:
        for image in spec["images"]:
            where = f"{spec['target']} {image}"
            out_name = f"outputs-{_slug(runner, spec['target'], spec['toolchain'], image)}.npz"
            base = {"runner": runner, "target": spec["target"], "toolchain": spec["toolchain"],
                    "device": "", "image": image}
            rec = plugin.run_image(spec, image, staging / out_name,
                                   perturb=p_what if p_what and p_image in ("", image) else "",
                                   python=python, log=log)
            status = rec.get("status") if isinstance(rec, dict) else None
            if status == "ran" and not (staging / out_name).is_file():
                status, rec = "failed", {"reason": f"the numerics plugin wrote no {out_name}"}
            elif status not in STATUSES:
                status, rec = "failed", {"reason": f"the numerics plugin's run_image returned no status "
                                                   f"({', '.join(STATUSES)}): {rec!r}"[:500]}
            if status in ("unreachable", "failed"):
                reason = str(rec.get("reason") or "the numerics plugin gave no reason")
                devices.append(dict(base, status=status, reason=reason))
                log(f"numerics: {where}: " + (f"unreachable here ({reason})" if status == "unreachable"
                                              else f"FAILED ({reason})"))
            else:
                extra = {k: v for k, v in rec.items() if k not in KEY_FIELDS and k not in ("status", "outputs")}
                extra.setdefault("nondeterministic", [])
                devices.append(dict(base, device=rec.get("device", ""), image=rec.get("image", image),
                                    toolchain=rec.get("toolchain", spec["toolchain"]), status="ran",
                                    outputs=out_name, **extra))
    log(f"numerics: ran {sum(d['status'] == 'ran' for d in devices)} device image(s) "
        f"in {time.monotonic() - t0:.0f} s; comparing")
    report = evaluate(devices, staging, plugin=plugin)
    report["sources"] = [{"runner": runner, "kind": "local"}]
    _finish(top, report, staging, out_dir, plugin, log)
    return report


# --------------------------------------------------------------------------
# Comparing

def _num(v):
    """JSON has no Inf/NaN: say them as strings."""
    v = float(v)
    return v if v == v and abs(v) != float("inf") else str(v)


def ratio(value, threshold):
    """value/threshold, the report's one scale (<= 1 passes); a zero
    threshold (exact ops) gives 0 for an exact match, Inf otherwise."""
    value = float(value)
    if threshold > 0:
        return value / threshold
    return 0.0 if value == 0 else float("inf")


def evaluate(devices, folder, *, plugin):
    """Every comparison over the devices that ran, their outputs read from
    folder, for every case of the plugin. Returns the report dict (without
    sources)."""
    ran = [d for d in devices if d["status"] == "ran"]
    outputs = {device_key(d): np.load(Path(folder, d["outputs"])) for d in ran}
    rows = []

    def row(op, case, shape, kind, d, metric, value, threshold, ok, other=None, worst=""):
        r = {"op": op, "case": case, "shape": shape, "kind": kind,
             **{k: d[k] for k in KEY_FIELDS}, "metric": metric, "value": _num(value),
             "threshold": _num(threshold), "ratio": _num(ratio(value, threshold)), "pass": bool(ok)}
        if other is not None:
            r["other"] = {k: other[k] for k in KEY_FIELDS}
        if worst:
            r["worst"] = worst
        rows.append(r)
        return r

    def checked(case, d, res, kind, other=None):
        return row(res.op, case.id, case.label, kind, d, res.metric, res.value, res.threshold, res.ok,
                   other=other, worst=getattr(res, "worst", "") or "")

    for case in plugin.cases():
        got = {}
        for d in ran:
            try:
                out = case.output(outputs[device_key(d)], d)
            except NoOutput as e:
                row(e.op or case.op, case.id, case.label, "reference", d, e.metric, float("inf"), 0, False,
                    worst=e.reason)
                continue
            if out is not None:
                got[device_key(d)] = (d, out)
        if not got:
            continue
        want = case.reference()
        for d, out in got.values():
            results = case.check(out, want)
            for res in results:
                checked(case, d, res, "reference")
            bad = case.id in d.get("nondeterministic", ())     # every output, bit for bit
            for op in dict.fromkeys(res.op for res in results):
                row(op, case.id, case.label, "determinism", d, "bits_differ", int(bad), 0, not bad)
        for (a, out_a), (b, out_b) in combinations(got.values(), 2):
            for res in case.check(out_b, out_a, pairwise=True):
                r = checked(case, b, res, "pairwise", other=a)
                compared = getattr(res, "compared", None)
                r["bits_differ"] = _bits_differ(*(compared if compared is not None else (out_a, out_b)))

    violations = [describe(r) for r in rows if not r["pass"]]
    violations += [f"{d['target']} {d['image']} ({d['runner']}): {d['reason']}"
                   for d in devices if d["status"] == "failed"]
    if not ran:     # nothing compared is not "all within tolerance"
        violations.append("no device image ran: " + ("; ".join(
            f"{d['target']} {d['image']}: {d['reason']}" for d in devices) or "no target was built"))
    return {
        "schema": SCHEMA,
        "devices": devices,
        "summary": {"devices_ran": len(ran),
                    "unreachable": sum(d["status"] == "unreachable" for d in devices),
                    "failed": sum(d["status"] == "failed" for d in devices),
                    "comparisons": len(rows), "violations": len(violations)},
        "violations": violations,
        "comparisons": rows,
    }


def _bits_differ(a, b):
    """How many elements two outputs do not share bit for bit (None: shapes differ)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return None
    u = f"u{a.dtype.itemsize}"
    return int((a.view(u) != b.view(u)).sum())


def describe(r):
    """One violation, named: op, case, device image, metric against threshold."""
    where = f"{r['target']}/{r['toolchain']}/{r['image']} on {r['device'] or '?'} ({r['runner']})"
    if r["kind"] == "pairwise":
        o = r["other"]
        where += f" vs {o['target']}/{o['toolchain']}/{o['image']} ({o['runner']})"
    detail = f"; worst: {r['worst']}" if r.get("worst") else ""
    # the op, where the case's name does not already start with it (a case may cover several)
    op = "" if r["case"].startswith(r["op"] + "[") else f" {r['op']}"
    return (f"{r['case']} [{r['kind']}]{op} {where}: {r['metric']} = {r['value']} > threshold "
            f"{r['threshold']}{detail}")


# --------------------------------------------------------------------------
# Merging reports of other machines

def load_report(path):
    """A report.json and its folder; errors name the file and what to do."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SyclforgeError(f"{path}: no such report (give the folder that `scons numerics` wrote, "
                             "e.g. build/numerics)") from None
    except (OSError, ValueError) as e:
        raise SyclforgeError(f"{path}: not a readable JSON report ({e})") from None
    if not isinstance(rep, dict) or rep.get("schema") != SCHEMA or not isinstance(rep.get("devices"), list):
        raise SyclforgeError(f"{path}: not a syclforge numerics report (schema {SCHEMA!r} expected, "
                             f"got {rep.get('schema') if isinstance(rep, dict) else type(rep).__name__!r})")
    for d in rep["devices"]:
        if d.get("status") == "ran" and not Path(path.parent, d.get("outputs", "")).is_file():
            raise SyclforgeError(f"{path}: device {device_key(d)} names outputs {d.get('outputs')!r}, "
                                 f"which is not in {path.parent}: copy the whole folder, not report.json alone")
    return path.parent, rep


def merge(top, out_dir, sources, *, plugin=None, log=_log):
    """Merge the reports in sources (folders or report.json files) into
    out_dir's report (kept if there is one): one matrix, recompared, with
    pairwise comparisons across machines. plugin: the module that compares
    (load_plugin); None loads the one the first report records, relative to
    top. Returns the merged report."""
    out_dir = Path(out_dir)
    loaded = [load_report(s) for s in sources]
    if (out_dir / "report.json").is_file() and all(Path(f).resolve() != out_dir.resolve() for f, _ in loaded):
        loaded.insert(0, load_report(out_dir))
    if plugin is None:
        plugin = _recorded_plugin(top, loaded)
    staging = _staging(out_dir)
    try:
        return _merge(top, out_dir, staging, loaded, plugin, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _recorded_plugin(top, loaded):
    """The plugin the first report that records one names, loaded from top."""
    for folder, rep in loaded:
        rel = rep.get("plugin")
        if rel:
            path = Path(top, rel)
            if not path.is_file():
                raise SyclforgeError(f"{Path(folder, 'report.json')}: records the numerics plugin {rel!r}, "
                                     f"which is not in {top}: merge from the project's top (or set "
                                     "SYCLFORGE_TOP), or name the plugin (--plugin PATH)")
            return load_plugin(path)
    raise SyclforgeError(f"{Path(loaded[0][0], 'report.json')}: records no numerics plugin (written by an "
                         "older syclforge?): name the plugin that compares it (--plugin PATH)")


def _merge(top, out_dir, staging, loaded, plugin, log):
    devices, srcs = {}, []
    for folder, rep in loaded:
        srcs += [dict(s, report=str(folder)) for s in rep.get("sources", [])] or [{"report": str(folder)}]
        for d in rep["devices"]:
            k = device_key(d)
            if k in devices:
                log(f"numerics: merge: {k} from {folder} replaces an earlier one")
            d = dict(d)
            if d.get("status") == "ran":
                name = d["outputs"]
                shutil.copyfile(Path(folder, name), staging / name)
            devices[k] = d
    log(f"numerics: merging {len(loaded)} report(s): {len(devices)} device image(s)")
    report = evaluate(list(devices.values()), staging, plugin=plugin)
    report["sources"] = srcs
    _finish(top, report, staging, out_dir, plugin, log)
    return report


# --------------------------------------------------------------------------
# Writing: staging folder swapped in whole

def _staging(out_dir):
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _finish(top, report, staging, out_dir, plugin, log):
    from syclforge import __version__
    report["syclforge"] = __version__
    report["plugin"] = _plugin_path(top, plugin)
    report["tolerances"] = getattr(plugin, "TOLERANCES", None)
    text = format_table(report)
    (staging / "table.txt").write_text(text + "\n", encoding="utf-8")
    picture = draw(report, staging / "report.png")
    report["picture"] = "report.png" if picture is True else None
    if picture is not True:
        report["picture_note"] = picture
    (staging / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    log("")
    log(text)
    rel = os.path.relpath(out_dir, top)
    log(f"\nnumerics: wrote {rel}/report.json, {rel}/table.txt"
        + (f", {rel}/report.png" if picture is True else f" (no picture: {picture})"))


# --------------------------------------------------------------------------
# The table and the picture

def matrix(report):
    """(ops, columns, cells): cells[(op, column)] = worst ratio over the op's
    cases; columns are the devices that ran, then 'pairwise'; determinism
    failures are folded into their device's cell as Inf."""
    ran = [d for d in report["devices"] if d["status"] == "ran"]
    labels = column_labels(ran)
    cols = [labels[device_key(d)] for d in ran] + ["pairwise"]
    ops, cells = [], {}
    for r in report["comparisons"]:
        if r["op"] not in ops:
            ops.append(r["op"])
        col = "pairwise" if r["kind"] == "pairwise" else labels[device_key(r)]
        v = float(r["ratio"])
        cells[(r["op"], col)] = max(cells.get((r["op"], col), 0.0), v)
    return ops, cols, cells


def column_labels(devices):
    """Short, unique column names: the image, plus whatever else differs."""
    vary = [k for k in KEY_FIELDS if k != "image" and len({d[k] for d in devices}) > 1]
    out = {}
    for d in devices:
        parts = [d[k] for k in vary] + [d["image"]]
        out[device_key(d)] = "/".join(parts)
    if len(set(out.values())) < len(out):          # still ambiguous: everything
        out = {device_key(d): "/".join(d[k] for k in KEY_FIELDS) for d in devices}
    return out


def _cell(v):
    if v == float("inf"):
        return "FAIL"
    s = "0" if v == 0 else (f"{v:.2g}" if v >= 0.01 else "<0.01")
    return s + ("!" if v > 1 else "")


def format_table(report):
    ops, cols, cells = matrix(report)
    head = ["op"] + cols
    body = [[op] + [_cell(cells[(op, c)]) if (op, c) in cells else "-" for c in cols] for op in ops]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
    out = ["worst error / threshold per op (<= 1 passes; '!' or FAIL: a violation; "
           "determinism folded in)", line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    ran = [d for d in report["devices"] if d["status"] == "ran"]
    labels = column_labels(ran)
    out.append("")
    out += [f"  {labels[device_key(d)]}: {d['target']} / {d['toolchain']} / \"{d['device']}\" / "
            f"{d['image']} ({d['runner']})" for d in ran]
    out += [f"  not run: {d['target']} {d['image']} ({d['runner']}): {d['status']}: {d['reason']}"
            for d in report["devices"] if d["status"] != "ran"]
    s = report["summary"]
    out.append(f"\n{s['comparisons']} comparisons over {s['devices_ran']} device image(s): "
               + ("all within tolerance" if not report["violations"] else f"{len(report['violations'])} VIOLATION(S)"))
    out += [f"  VIOLATION {v}" for v in report["violations"][:50]]
    if len(report["violations"]) > 50:
        out.append(f"  ... and {len(report['violations']) - 50} more in report.json")
    return "\n".join(out)


def draw(report, path):
    """A heatmap of log10(worst error / threshold), op x device. True, or
    why there is no picture."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import TwoSlopeNorm
    except ImportError:
        return "matplotlib is not installed here (merge this report on a machine that has it)"
    ops, cols, cells = matrix(report)
    if not ops:
        return "no comparisons"
    data = np.full((len(ops), len(cols)), np.nan)
    for (op, c), v in cells.items():
        data[ops.index(op), cols.index(c)] = np.log10(v) if v > 0 else -4.0
    shown = np.clip(np.nan_to_num(data, nan=-4.0, posinf=2.0), -4.0, 2.0)
    fig, ax = plt.subplots(figsize=(2.0 + 1.3 * len(cols), 1.2 + 0.38 * len(ops)), dpi=100)
    im = ax.imshow(shown, cmap="RdYlGn_r", norm=TwoSlopeNorm(vmin=-4.0, vcenter=0.0, vmax=2.0), aspect="auto")
    for i, op in enumerate(ops):
        for j, c in enumerate(cols):
            if (op, c) in cells:
                ax.text(j, i, _cell(cells[(op, c)]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(len(ops)), ops, fontsize=9)
    fig.colorbar(im, ax=ax, label="log10(worst error / threshold); > 0 violates")
    n = len(report["violations"])
    ax.set_title(f"syclforge numerics: {report['summary']['comparisons']} comparisons, "
                 + ("all within tolerance" if not n else f"{n} violation(s)"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# Command line: merging without SCons (CI's merge job)

def main(argv=None):
    """`python -m syclforge.numerics merge DIR...` (and a console command's
    `numerics`) merges reports; `python -m syclforge.numerics run ...` runs
    the images of one build on this machine (say, a GPU machine that has the
    release bundle and a checkout, but no SCons build): its report and
    outputs go to --out, to be merged where the other devices' are. top is
    SYCLFORGE_TOP or the current directory. Exit status 0, 1 (violations)
    or 2 (an error, named)."""
    import argparse
    top = Path(os.environ.get("SYCLFORGE_TOP") or os.getcwd())
    ap = argparse.ArgumentParser(prog="python -m syclforge.numerics",
                                 description="run or merge cross-device numerics reports")
    ap.add_argument("cmd", choices=("merge", "run"))
    ap.add_argument("reports", nargs="*", help="merge: folders (or report.json files) written by `scons numerics`")
    ap.add_argument("--out", default=str(top / "build" / "numerics"))
    ap.add_argument("--plugin", help="the numerics plugin (run: required; merge: default the one the first "
                                     "report records, relative to the top)")
    ap.add_argument("--target", help="run: the targets.yaml name the build is for")
    ap.add_argument("--toolchain", help="run: the toolchain that built it")
    ap.add_argument("--image", action="append", default=[], help="run: an image to run (repeat)")
    ap.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                    help="run: an artifact the plugin runs (repeat), e.g. lib=bundle/lib/libx.so")
    ap.add_argument("--runner", default=None, help="run: the runner's name in the report (default: host:<name>)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "merge":
            if not a.reports:
                raise SyclforgeError("merge: name the report folders to merge")
            plugin = load_plugin(a.plugin) if a.plugin else None
            report = merge(top, a.out, a.reports, plugin=plugin)
        else:
            missing = [o for o in ("plugin", "target", "toolchain") if not getattr(a, o)] + \
                ([] if a.image else ["image"]) + ([] if a.file else ["file"])
            if missing:
                raise SyclforgeError("run needs " + ", ".join(f"--{m}" for m in missing))
            files = {}
            for f in a.file:
                name, eq, path = f.partition("=")
                if not eq or not os.path.exists(path):
                    raise SyclforgeError(f"--file {f}: give NAME=PATH of an existing file")
                files[name] = os.path.abspath(path)
            spec = {"target": a.target, "toolchain": a.toolchain, "images": a.image, "files": files}
            report = run_local(top, [spec], a.out, plugin=load_plugin(a.plugin), runner=a.runner)
    except SyclforgeError as e:
        print(f"syclforge: error: {e}", file=sys.stderr)
        return 2
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    # Through the imported module, not __main__: a plugin's `from
    # syclforge.numerics import NoOutput` must be the class caught here.
    from syclforge.numerics import main as _main
    sys.exit(_main())
