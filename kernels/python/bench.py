"""Benchmark the kernel library's ops on the native image (the loader's
choice) against NumPy in the same run, and against a copy bandwidth measured
in the same run.

    .venv/bin/python kernels/python/bench.py        (or: .venv/bin/scons bench)

Device time is enqueue + kl_wait with inputs already on the device. Each
side (ours, NumPy) is timed in ROUNDS alternating rounds, each after a quiet
pause and a warm-up, with at least 5 runs and MIN_ROUND_S of runs per round;
the figure is the median of all its runs. The copy bandwidth is measured at
the start and at the end and the best is the reference (the stricter one);
so is the launch floor, the smallest op's time, which every op's includes.
Prints a table and writes
build/bench/kernels.json (temporary file, then rename). Targets (from the
issue) are informational: GEMM 1024^3 >= 0.5x NumPy; GEMV, softmax and
RMSNorm >= 0.5x the copy bandwidth. Exit 0 whether they are met or not.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from syclforge_kl import DEFAULT_LIB, REPO, KLError, Runtime  # noqa: E402

RUNS = 5                     # timed runs per round, at least (after warm-up)
ROUNDS = 3                   # alternating NumPy / ours rounds per measurement
MIN_ROUND_S = 0.1            # a round runs a short op until this much time is spent
MAX_RUNS = 500               # ... or this many runs
QUIET_S = 0.5                # pause before each round
WARMUP = 3                   # untimed calls before each round
ITEM_BUDGET_S = 20.0         # skip a measurement whose runs would take longer
GEMM_TARGET = 0.5            # ours / NumPy throughput, GEMM 1024^3
BANDWIDTH_TARGET = 0.5       # fraction of the copy bandwidth, memory-bound ops
COPY_FLOATS = 16 * 1024 * 1024   # 64 MiB per array: well past the caches


def log(msg):
    print(msg, flush=True)


def device_op(rt, name, *args):
    """A no-argument function that runs op `name` on rt and waits for it."""
    def run():
        rt.call(name, *args)
        rt.wait()
    return run


def timed_runs(fn, runs=RUNS, warmup=WARMUP, min_s=MIN_ROUND_S, max_runs=MAX_RUNS, budget_s=ITEM_BUDGET_S,
               estimate_s=None, clock=time.perf_counter):
    """Seconds of each timed call of fn: `warmup` untimed calls, then at
    least `runs` calls, more while they add up to less than min_s (short ops:
    one 30 us call is mostly noise), never more than max_runs. Returns
    (times, None), or (None, estimate) when `runs` calls would exceed budget_s."""
    if estimate_s is not None and estimate_s * (runs + warmup) > budget_s:
        return None, estimate_s
    t0 = clock()
    for _ in range(warmup):
        fn()
    first = (clock() - t0) / max(warmup, 1)
    if first * runs > budget_s:
        return None, first
    times = []
    while len(times) < runs or (sum(times) < min_s and len(times) < max_runs):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return times, None


def rounds(sides, n_rounds=ROUNDS, quiet_s=QUIET_S, estimates=None, **timing):
    """Time several sides {name: fn} in n_rounds alternating rounds, each
    after a pause of quiet_s: the SYCL runtime's and OpenBLAS's worker
    threads spin for a while after their work and would steal the next
    side's cores, and alternating spreads slow spells of a shared machine
    over every side. Returns {name: (median s, runs)}, or (None, estimated
    s a call) for a side whose runs would exceed the budget (it is then
    dropped). timing: passed on to timed_runs."""
    times = {name: [] for name in sides}
    skipped = {}
    for _ in range(n_rounds):
        for name, fn in sides.items():
            if name in skipped:
                continue
            time.sleep(quiet_s)
            got, estimate = timed_runs(fn, estimate_s=(estimates or {}).get(name), **timing)
            if got is None:
                skipped[name] = estimate
            else:
                times[name] += got
    return {name: (None, skipped[name]) if name in skipped else (statistics.median(t), len(t))
            for name, t in times.items()}


class Bench:
    def __init__(self, rt, n_rounds=ROUNDS):
        self.rt = rt
        self.rounds = n_rounds
        self.rows = []
        self.rng = np.random.default_rng(0)

    def data(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def device_op(self, name, *args):
        return device_op(self.rt, name, *args)

    def measure(self, op, shape, ours, numpy_fn, work, unit, target=None, estimate_s=None):
        """work: flops (unit GFLOP/s) or bytes (unit GB/s) per call."""
        log(f"  {op:8s} {shape:18s} NumPy and ours, {self.rounds} rounds ...")
        got = rounds({"numpy": numpy_fn, "ours": ours}, self.rounds, estimates={"ours": estimate_s})
        (t_np, n_np), (t_ours, extra) = got["numpy"], got["ours"]
        row = {"op": op, "shape": shape, "unit": unit, "work": work,
               "ours_s": t_ours, "numpy_s": t_np,
               "ours_runs": extra if t_ours else 0, "numpy_runs": n_np if t_np else 0,
               "ours_rate": work / t_ours / 1e9 if t_ours else None,
               "numpy_rate": work / t_np / 1e9 if t_np else None,
               "ratio_vs_numpy": (t_np / t_ours) if t_ours and t_np else None,
               "target": target, "note": ""}
        if t_ours is None:
            row["note"] = f"skipped: ~{extra:.1f} s a run would exceed the {ITEM_BUDGET_S:.0f} s budget"
        self.rows.append(row)
        return row


def copy_bandwidth(b, when):
    """NumPy's copy, our host->device memcpy (kl_to_device) and our kl_add,
    all on COPY_FLOATS floats, in GB/s (bytes read + written)."""
    rt = b.rt
    n = COPY_FLOATS
    src = b.data(n)
    dst = np.empty_like(src)
    da, db, dy = rt.to_device(src), rt.to_device(src), rt.empty(n)
    sides = {"numpy_copy": lambda: np.copyto(dst, src), "kl_to_device": lambda: (rt.copy_in(da, src), rt.wait())}
    if rt.has_op("add"):
        sides["kl_add"] = b.device_op("kl_add", da, db, dy, n)
    log(f"  copy     {', '.join(sides)} ({when}) ...")
    got = rounds(sides, b.rounds)
    for buf in (da, db, dy):
        buf.free()
    return {name: (3 if name == "kl_add" else 2) * src.nbytes / t / 1e9 for name, (t, _) in got.items()}


def launch_floor(b, when):
    """Seconds of the smallest launch: kl_add of 16 floats, enqueue + kl_wait.
    The CPU runtime's own cost per call, which every op's time includes."""
    rt = b.rt
    if not rt.has_op("add"):
        return None
    a, y = rt.to_device(np.ones(16, np.float32)), rt.empty(16)
    log(f"  launch   kl_add of 16 floats ({when}) ...")
    t, _ = rounds({"floor": b.device_op("kl_add", a, a, y, 16)}, b.rounds)["floor"]
    a.free(), y.free()
    return t


def copy_reference(measured):
    """The machine's copy bandwidth: the best plain copy (NumPy's or ours,
    not kl_add) of any measurement in this run, so the stricter one."""
    return max(m[k] for m in measured for k in ("numpy_copy", "kl_to_device"))


def bench_gemm(b, sizes):
    rt = b.rt
    prev = prev_n = None
    for n in sizes:
        x, w = b.data(n, n), b.data(n, n, scale=0.05)
        y = np.empty((n, n), np.float32)
        dx, dw, dy = rt.to_device(x), rt.to_device(w), rt.empty((n, n))
        estimate = prev * (n / prev_n) ** 3 if prev else None
        row = b.measure("gemm", f"{n}x{n}x{n}", b.device_op("kl_gemm", dx, dw, dy, n, n, n),
                        lambda: np.matmul(x, w.T, out=y), 2.0 * n ** 3, "GFLOP/s",
                        target=("numpy", GEMM_TARGET) if n == 1024 else None, estimate_s=estimate)
        prev, prev_n = row["ours_s"], n
        for buf in (dx, dw, dy):
            buf.free()


def bench_gemv(b, shapes):
    rt = b.rt
    for k, n in shapes:
        x, w = b.data(k), b.data(n, k, scale=0.05)
        y = np.empty(n, np.float32)
        dx, dw, dy = rt.to_device(x), rt.to_device(w), rt.empty(n)
        b.measure("gemv", f"1x{k}->{n}", b.device_op("kl_gemv", dx, dw, dy, n, k),
                  lambda: np.matmul(w, x, out=y), 4.0 * (n * k + n + k), "GB/s",
                  target=("copy", BANDWIDTH_TARGET))
        for buf in (dx, dw, dy):
            buf.free()


def bench_softmax(b, shapes):
    rt = b.rt
    for rows, cols in shapes:
        x = b.data(rows, cols, scale=3.0)
        dx, dy = rt.to_device(x), rt.empty((rows, cols))

        def numpy_softmax():
            e = np.exp(x - x.max(axis=1, keepdims=True))
            e /= e.sum(axis=1, keepdims=True)
            return e
        b.measure("softmax", f"{rows}x{cols}", b.device_op("kl_softmax", dx, dy, rows, cols, 0, 0, 1.0),
                  numpy_softmax, 4.0 * 2 * rows * cols, "GB/s", target=("copy", BANDWIDTH_TARGET))
        dx.free(), dy.free()


def bench_rmsnorm(b, shapes, eps=1e-5):
    rt = b.rt
    for rows, dim in shapes:
        x, wt = b.data(rows, dim), b.data(dim)
        dx, dw, dy = rt.to_device(x), rt.to_device(wt), rt.empty((rows, dim))

        def numpy_rmsnorm():
            return x * (1.0 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + np.float32(eps))) * wt
        b.measure("rmsnorm", f"{rows}x{dim}", b.device_op("kl_rmsnorm", dx, dw, dy, rows, dim, eps),
                  numpy_rmsnorm, 4.0 * (2 * rows * dim + dim), "GB/s", target=("copy", BANDWIDTH_TARGET))
        for buf in (dx, dw, dy):
            buf.free()


def judge(rows, copy_bw):
    for r in rows:
        r["copy_fraction"] = (r["ours_rate"] / copy_bw) if r["unit"] == "GB/s" and r["ours_rate"] else None
        r["status"] = ""
        if r["target"] is None:
            continue
        kind, goal = r["target"]
        value = r["ratio_vs_numpy"] if kind == "numpy" else r["copy_fraction"]
        r["target"] = {"against": "NumPy throughput" if kind == "numpy" else "copy bandwidth", "at_least": goal}
        r["status"] = "MISS" if value is None or value < goal else "PASS"


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def grid(head, lines):
    """Lines of a table: the head, dashes, then the rows, columns padded."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in lines]
    return out


def table(rows, copy, floor=None):
    head = ["op", "shape", "ours ms", "ours rate", "NumPy ms", "NumPy rate", "ours/NumPy", "of copy BW", "target"]
    lines = []
    for r in rows:
        tgt = ""
        if r["target"]:
            t = r["target"]
            tgt = f"{r['status']} (>= {t['at_least']}x {'NumPy' if 'NumPy' in t['against'] else 'copy'})"
        lines.append([r["op"], r["shape"], fmt(r["ours_s"] and r["ours_s"] * 1e3, ".3f"),
                      f"{fmt(r['ours_rate'], '.1f')} {r['unit']}", fmt(r["numpy_s"] and r["numpy_s"] * 1e3, ".3f"),
                      f"{fmt(r['numpy_rate'], '.1f')} {r['unit']}", fmt(r["ratio_vs_numpy"], ".2f"),
                      fmt(r["copy_fraction"], ".2f"), tgt + (f" {r['note']}" if r["note"] else "")])
    out = grid(head, lines)
    out.append("")
    for when in ("start", "end"):
        out.append(f"copy bandwidth at the {when} (GB/s, read + write, 64 MiB arrays): " +
                   ", ".join(f"{k} {v:.1f}" for k, v in copy[when].items()))
    out.append(f"reference = best plain copy = {copy['reference']:.1f} GB/s")
    if floor and all(floor.values()):
        out.append("launch floor (kl_add of 16 floats, enqueue + kl_wait; in every 'ours ms'): " +
                   ", ".join(f"{v * 1e3:.3f} ms at the {k}" for k, v in floor.items()))
    return "\n".join(out)


def write_json(path, doc):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", default=str(DEFAULT_LIB), help="the kernel library (default: %(default)s)")
    ap.add_argument("--image", default=None, help="force an image (default: the loader's choice)")
    ap.add_argument("--out", default=str(REPO / "build" / "bench" / "kernels.json"))
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds per measurement (>= 1)")
    args = ap.parse_args(argv)
    n_rounds = max(args.rounds, 1)
    started = time.time()

    try:
        rt = Runtime(args.image, lib=args.lib)
    except KLError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    log(f"bench: {rt.target} ({rt.toolchain}) image={rt.image} device=\"{rt.device_name}\", "
        f"NumPy {np.__version__}, {os.cpu_count()} CPUs, medians of {n_rounds} alternating rounds")
    b = Bench(rt, n_rounds)
    log("copy bandwidth")
    copy = {"start": copy_bandwidth(b, "start")}
    floor = {"start": launch_floor(b, "start")}
    missing = [op for op in ("gemm", "gemv", "softmax", "rmsnorm") if not rt.has_op(op)]
    if missing:
        log(f"bench: the library lacks {', '.join(missing)}: skipped")
    log("GEMM (M=N=K)")
    if "gemm" not in missing:
        bench_gemm(b, [512, 1024, 2048])
    log("GEMV (decode)")
    if "gemv" not in missing:
        bench_gemv(b, [(288, 768), (768, 2048), (2048, 768)])
    log("softmax")
    if "softmax" not in missing:
        bench_softmax(b, [(64, 32000), (512, 512)])
    log("RMSNorm")
    if "rmsnorm" not in missing:
        bench_rmsnorm(b, [(512, 4096)])
    log("copy bandwidth")
    copy["end"] = copy_bandwidth(b, "end")
    floor["end"] = launch_floor(b, "end")
    copy["reference"] = copy_reference([copy["start"], copy["end"]])
    judge(b.rows, copy["reference"])

    log("")
    log(table(b.rows, copy, floor))
    doc = {
        "schema": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "library": {"path": str(Path(args.lib).resolve()), "target": rt.target, "toolchain": rt.toolchain,
                    "image": rt.image, "image_forced": bool(args.image), "device": rt.device_name},
        "host": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "numpy": np.__version__},
        "method": {"rounds": n_rounds, "runs_per_round": f">= {RUNS}, and until {MIN_ROUND_S} s (<= {MAX_RUNS})",
                   "warmup_per_round": WARMUP, "pause_before_round_s": QUIET_S,
                   "statistic": "median of every run of every round",
                   "device_time": "enqueue + kl_wait, inputs already on the device",
                   "rates": "GFLOP/s = 2*M*N*K / t; GB/s = minimal bytes read + written / t",
                   "copy_reference": "the best plain copy of 64 MiB, at the start or the end of this run"},
        "copy_bandwidth_gbs": copy,
        "launch_floor_s": floor,
        "targets": {"gemm_1024_vs_numpy": GEMM_TARGET, "memory_bound_vs_copy": BANDWIDTH_TARGET},
        "missing_ops": missing,
        "results": b.rows,
        "elapsed_s": round(time.time() - started, 1),
    }
    write_json(args.out, doc)
    met = [r for r in b.rows if r["status"]]
    log(f"\nbench: {sum(r['status'] == 'PASS' for r in met)}/{len(met)} targets met "
        f"(informational); wrote {args.out} in {doc['elapsed_s']} s")
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
