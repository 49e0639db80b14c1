"""Cross-device numerics (`scons numerics`): every kernel case
(kernels/python/cases.py) and the mini-LLM on every device image this
machine can run, each against the float64 reference and against each other.

Plain Python, no SCons. The matrix is data: one row per (runner, target,
toolchain, device, image) that the built targets offer (resolve.py's images
of each target), so a new toolchain, image or device joins it by being
built. Each image runs in its own process (kernels/python/numerics_worker.py
and minillm with SYCLFORGE_IMAGE), twice, so that determinism is checked
too. An image the machine cannot run is reported as unreachable, not as a
failure.

Every comparison's metric and threshold come from kernels/tolerances.yaml
through kernels/python/tolerance.py (one place); this module only decides
what is compared with what:

  reference    a device's output against the float64 reference
  pairwise     two devices' outputs against each other (threshold x factor;
               bits_differ counts the elements they do not share bit for bit)
  determinism  the same device and image twice, bit for bit

Outputs in build/numerics/ (written to a staging folder and swapped in
whole, so a failed run never leaves half a report): report.json (every
comparison), table.txt (what the terminal shows), report.png (a heatmap,
when matplotlib is installed) and outputs-<device>.npz (every raw output,
so that `merge` can compare devices of other machines pairwise).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from syclforge.errors import SyclforgeError

SCHEMA = "syclforge-numerics/1"
# The model's fixed prompts and how many greedy tokens each generates.
PROMPTS = ("The ", "Q: What is the meaning of life?\nA:")
MODEL_TOKENS = 16
MODEL_DIR = "models/tiny-fortunes"
KEY_FIELDS = ("runner", "target", "toolchain", "device", "image")


def _log(msg):
    print(msg, flush=True)


def default_runner():
    """Where the numerics ran: SYCLFORGE_RUNNER (set in containers), else the host."""
    return os.environ.get("SYCLFORGE_RUNNER") or f"host:{socket.gethostname()}"


def device_key(d):
    return "|".join(str(d.get(k, "")) for k in KEY_FIELDS)


def _slug(*parts):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_")


def _modules(top):
    """cases, tolerance and the two references, imported from the tree."""
    for p in (str(Path(top, "kernels", "python")), str(top)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import cases
    import tolerance
    from models import reference as model_reference
    return cases, tolerance, model_reference


# --------------------------------------------------------------------------
# Running one machine's matrix

def run_local(top, specs, out_dir, *, runner=None, perturb="", python=None, log=_log):
    """Run every image of every spec (dicts: target, toolchain, lib, minillm,
    images), evaluate, and write the report into out_dir. Returns the report.

    perturb: 'OP' or 'OP@IMAGE', passed to the worker (the harness's test)."""
    top, out_dir = Path(top), Path(out_dir)
    runner = runner or default_runner()
    python = python or sys.executable
    worker = top / "kernels" / "python" / "numerics_worker.py"
    staging = _staging(out_dir)
    try:
        return _run_local(top, specs, out_dir, staging, runner, perturb, python, worker, log)
    except BaseException:       # interrupted or broken: no half-written report
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run_local(top, specs, out_dir, staging, runner, perturb, python, worker, log):
    n_cases = len(_modules(top)[0].CASES)
    devices = []
    t0 = time.monotonic()
    for spec in specs:
        for image in spec["images"]:
            where = f"{spec['target']} {image}"
            log(f"numerics: {where}: kernels ({n_cases} cases, twice)")
            out_name = f"outputs-{_slug(runner, spec['target'], spec['toolchain'], image)}.npz"
            cmd = [python, str(worker), "--lib", str(spec["lib"]), "--image", image,
                   "--out", str(staging / out_name)]
            p_op, _, p_image = perturb.partition("@")
            if p_op and p_image in ("", image):
                cmd += ["--perturb", p_op]
            base = {"runner": runner, "target": spec["target"], "toolchain": spec["toolchain"],
                    "device": "", "image": image}
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            meta = _last_json(proc.stdout)
            if proc.returncode == 3 and meta and "unreachable" in meta:
                reason = meta["unreachable"].splitlines()[-1].strip()
                log(f"numerics: {where}: unreachable here ({reason})")
                devices.append(dict(base, status="unreachable", reason=reason))
                continue
            if proc.returncode != 0 or not meta:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
                devices.append(dict(base, status="failed",
                                    reason=f"numerics_worker exited {proc.returncode}: " + " | ".join(tail)))
                log(f"numerics: {where}: FAILED ({devices[-1]['reason']})")
                continue
            dev = dict(base, device=meta["device"], image=meta["image"], toolchain=meta["toolchain"],
                       status="ran", outputs=out_name, digests=meta["digests"], keys=meta["keys"],
                       nondeterministic=meta["nondeterministic"], errors=meta["errors"])
            if spec.get("minillm") and Path(spec["minillm"]).exists():
                log(f"numerics: {where}: model ({len(PROMPTS)} prompts x {MODEL_TOKENS} tokens, twice)")
                _run_model(top, spec["minillm"], image, staging / out_name, dev)
            devices.append(dev)
    log(f"numerics: ran {sum(d['status'] == 'ran' for d in devices)} device image(s) "
        f"in {time.monotonic() - t0:.0f} s; comparing")
    report = evaluate(top, devices, staging, log=log)
    report["sources"] = [{"runner": runner, "kind": "local"}]
    _finish(top, report, staging, out_dir, log)
    return report


def _last_json(text):
    for line in reversed((text or "").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _run_model(top, minillm, image, npz_path, dev):
    """minillm --dump-logits for each prompt, twice; outputs added to the npz."""
    model = Path(top, MODEL_DIR)
    arrays = dict(np.load(npz_path))
    dev["model"] = {"dir": MODEL_DIR, "errors": {}}
    env = dict(os.environ, SYCLFORGE_IMAGE=image)
    for i, prompt in enumerate(PROMPTS):
        runs = []
        for rep in range(2):
            dump = npz_path.with_name(f"{npz_path.stem}-logits{i}-{rep}.f32")
            cmd = [str(minillm), "-m", str(model), "-p", prompt, "-n", str(MODEL_TOKENS), "--temp", "0",
                   "--json", "--dump-logits", str(dump)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                dev["model"]["errors"][f"prompt{i}"] = proc.stderr.strip()[-500:]
                break
            out = json.loads(proc.stdout)
            logits = np.fromfile(dump, dtype=np.float32)
            dump.unlink()
            runs.append((np.asarray(out["tokens"], np.int64), logits))
        if len(runs) < 2:
            continue
        (t1, l1), (t2, l2) = runs
        if _bits_differ(t1, t2) != 0 or _bits_differ(l1, l2) != 0:
            dev["nondeterministic"].append(f"model[prompt{i}]")
        arrays[f"model{i}_tokens"], arrays[f"model{i}_logits"] = t1, l1
    tmp = npz_path.with_name(npz_path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, npz_path)


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


def _worst(res):
    return ", ".join(f"{k}={v}" for k, v in res.worst.items()) if res.worst else ""


def evaluate(top, devices, folder, log=_log):
    """Every comparison over the devices that ran, their outputs read from
    folder. Returns the report dict (without sources)."""
    cases, tolerance, model_reference = _modules(top)
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

    for case in cases.CASES:
        inputs = case.inputs()
        digest = cases.digest(inputs)
        got = {}
        for d in ran:
            if case.id in d["errors"]:
                row(case.op, case.id, case.label, "reference", d, "error", float("inf"), 0, False,
                    worst=d["errors"][case.id])
                continue
            if d["digests"].get(case.id) != digest:
                row(case.op, case.id, case.label, "reference", d, "inputs", float("inf"), 0, False,
                    worst="the device computed on other inputs than this machine makes for the case "
                          "(a different NumPy random generator?)")
                continue
            got[device_key(d)] = (d, outputs[device_key(d)][d["keys"][case.id]])
        if not got:
            continue
        ref = cases.reference(case, inputs)
        for d, out in got.values():
            res = tolerance.compare(case.op, out, ref, **inputs)
            row(case.op, case.id, case.label, "reference", d, res.metric, res.value, res.threshold, res.ok,
                worst=_worst(res))
            bad = case.id in d["nondeterministic"]
            row(case.op, case.id, case.label, "determinism", d, "bits_differ", int(bad), 0, not bad)
        for (a, out_a), (b, out_b) in combinations(got.values(), 2):
            res = tolerance.compare(case.op, out_b, np.asarray(out_a, np.float64), pairwise=True, **inputs)
            r = row(case.op, case.id, case.label, "pairwise", b, res.metric, res.value, res.threshold, res.ok,
                    other=a, worst=_worst(res))
            r["bits_differ"] = _bits_differ(out_a, out_b)

    with_model = [d for d in ran if "model" in d]
    if with_model:
        log(f"numerics: the model's float64 reference ({len(PROMPTS)} prompts)")
        model = model_reference.load(Path(top, MODEL_DIR))
        vocab = model.config.vocab_size
        for i, prompt in enumerate(PROMPTS):
            case_id, label = f"model[prompt{i}]", f"{MODEL_TOKENS} tokens after {prompt!r}"
            want = model.generate(prompt, MODEL_TOKENS, temperature=0, keep_logits=True)
            ref_tokens, ref_logits = np.asarray(want.tokens, np.int64), np.asarray(want.logits)
            got = {}
            for d in with_model:
                err = d["model"]["errors"].get(f"prompt{i}")
                if err:
                    row("model_tokens", case_id, label, "reference", d, "error", float("inf"), 0, False, worst=err)
                    continue
                o = outputs[device_key(d)]
                got[device_key(d)] = (d, o[f"model{i}_tokens"], o[f"model{i}_logits"].reshape(-1, vocab))
            for d, toks, logits in got.values():
                _model_rows(row, tolerance, case_id, label, "reference", d, None,
                            toks, logits, ref_tokens, ref_logits)
                bad = case_id in d["nondeterministic"]     # tokens and logits, bit for bit
                for op in ("model_tokens", "model_logits"):
                    row(op, case_id, label, "determinism", d, "bits_differ", int(bad), 0, not bad)
            for (a, ta, la), (b, tb, lb) in combinations(got.values(), 2):
                _model_rows(row, tolerance, case_id, label, "pairwise", b, a,
                            tb, lb, ta, la)

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


def _model_rows(row, tolerance, case_id, label, kind, d, other, toks, logits, ref_toks, ref_logits):
    """Greedy tokens (exact) and the logits of the steps both runs share a
    context for: up to and including the first differing token."""
    pw = kind == "pairwise"
    res = tolerance.compare("model_tokens", toks, ref_toks, pairwise=pw)
    r = row("model_tokens", case_id, label, kind, d, res.metric, res.value, res.threshold, res.ok,
            other=other, worst=_worst(res))
    if pw:
        r["bits_differ"] = _bits_differ(toks, ref_toks)
    n = min(len(toks), len(ref_toks))
    diff = toks[:n] != ref_toks[:n]
    same = int(np.argmax(diff)) if diff.any() else n
    steps = min(same + 1, len(logits), len(ref_logits))
    res = tolerance.compare("model_logits", logits[:steps], ref_logits[:steps], pairwise=pw)
    r = row("model_logits", case_id, label, kind, d, res.metric, res.value, res.threshold, res.ok,
            other=other, worst=_worst(res))
    if pw:
        r["bits_differ"] = _bits_differ(logits[:steps], ref_logits[:steps])


def describe(r):
    """One violation, named: op, case, device image, metric against threshold."""
    where = f"{r['target']}/{r['toolchain']}/{r['image']} on {r['device'] or '?'} ({r['runner']})"
    if r["kind"] == "pairwise":
        o = r["other"]
        where += f" vs {o['target']}/{o['toolchain']}/{o['image']} ({o['runner']})"
    detail = f"; worst: {r['worst']}" if r.get("worst") else ""
    return (f"{r['case']} [{r['kind']}] {where}: {r['metric']} = {r['value']} > threshold "
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


def merge(top, out_dir, sources, *, log=_log):
    """Merge the reports in sources (folders or report.json files) into
    out_dir's report (kept if there is one): one matrix, recompared, with
    pairwise comparisons across machines. Returns the merged report."""
    out_dir = Path(out_dir)
    loaded = [load_report(s) for s in sources]
    if (out_dir / "report.json").is_file() and all(Path(f).resolve() != out_dir.resolve() for f, _ in loaded):
        loaded.insert(0, load_report(out_dir))
    staging = _staging(out_dir)
    try:
        return _merge(top, out_dir, staging, loaded, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _merge(top, out_dir, staging, loaded, log):
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
    report = evaluate(top, list(devices.values()), staging, log=log)
    report["sources"] = srcs
    _finish(top, report, staging, out_dir, log)
    return report


# --------------------------------------------------------------------------
# Writing: staging folder swapped in whole

def _staging(out_dir):
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _finish(top, report, staging, out_dir, log):
    from syclforge import __version__
    report["syclforge"] = __version__
    report["tolerances"] = "kernels/tolerances.yaml"
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
    import argparse
    top = Path(os.environ.get("SYCLFORGE_TOP") or os.getcwd())
    ap = argparse.ArgumentParser(prog="python -m syclforge.numerics",
                                 description="merge cross-device numerics reports into one")
    ap.add_argument("cmd", choices=("merge",))
    ap.add_argument("reports", nargs="+", help="folders (or report.json files) written by `scons numerics`")
    ap.add_argument("--out", default=str(top / "build" / "numerics"))
    a = ap.parse_args(argv)
    try:
        report = merge(top, a.out, a.reports)
    except SyclforgeError as e:
        print(f"syclforge: error: {e}", file=sys.stderr)
        return 2
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
