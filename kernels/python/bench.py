"""Benchmark the kernel library's ops on the native image (the loader's
choice) against NumPy and oneMKL's SYCL BLAS in the same run, and against a
copy bandwidth measured in the same run.

    .venv/bin/python kernels/python/bench.py        (or: .venv/bin/scons bench)

Device time is enqueue + kl_wait with inputs already on the device. Each
side (NumPy, ours, oneMKL) is timed in ROUNDS alternating rounds, each after a
quiet pause and a warm-up, with at least 5 runs and MIN_ROUND_S of runs per
round; the figure is the median of all its runs. The copy bandwidth is
measured at the start and at the end, on arrays larger than the last-level
cache, and the best is the reference (the stricter one); so is the launch
floor, the smallest op's time, which every op's includes.

oneMKL (GEMM and GEMV only) is an optional peer: oneapi::mkl::blas::row_major
on an in-order queue of its own on the same OpenCL CPU device, in this
process, built from bench_sycl.cpp with g++ against the wheels' headers
(cached in build/bench/helper/), each call enqueue + wait as ours. Without the
wheels the bench says how to install them.

Prints a table and writes build/bench/kernels.json (temporary file, then
rename). Targets (issue #15) are ratios against the peers: GEMM >= 0.9x
NumPy at 512^3, 1024^3 and 2048^3; GEMV >= 0.9x NumPy at the model's three
shapes; the memory-bound ops >= 0.5x the copy bandwidth only at shapes larger
than the last-level cache (none for cache-resident shapes), GEMV among them
at the 85M model's lm_head, 1x768->32000, its weights rotated over copies that
together pass the cache twice over (decode reads them from memory). They are
reported, met or missed: exit 0 either way.

    --decode-profile SPEC.json   (for models/bench.py) the device's compute
    units, the time per launch, and minillm's decode step replayed at the
    model's shapes, in a stream and op by op: prints one JSON object.
"""
import argparse
import ctypes
import hashlib
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A forced lower image stands for a lower host: the peers must then run that
# ISA's code too, or an AVX2 run compares our AVX2 code with OpenBLAS's and
# oneMKL's AVX-512 (both pick their kernels when loaded, from these).
PEER_ISA_ENV = {"avx2": {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
                "sse4.2": {"OPENBLAS_CORETYPE": "Nehalem", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}}


def peer_isa_env(argv, environ):
    """The variables that pin the peers to the image forced by --image or
    SYCLFORGE_IMAGE (none for the loader's choice, avx512 or spirv); a
    variable already set is left as it is."""
    image = environ.get("SYCLFORGE_IMAGE") or None
    for i, a in enumerate(argv):
        if a == "--image" and i + 1 < len(argv):
            image = argv[i + 1]
        elif a.startswith("--image="):
            image = a.split("=", 1)[1]
    return {k: v for k, v in PEER_ISA_ENV.get(image, {}).items() if k not in environ}


if __name__ == "__main__":   # before NumPy (and OpenBLAS) load
    os.environ.update(peer_isa_env(sys.argv[1:], os.environ))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from syclforge_kl import DEFAULT_LIB, REPO, KLError, Runtime  # noqa: E402

RUNS = 5                     # timed runs per round, at least (after warm-up)
ROUNDS = 3                   # alternating NumPy / ours rounds per measurement
MIN_ROUND_S = 0.1            # a round runs a short op until this much time is spent
MAX_RUNS = 500               # ... or this many runs
QUIET_S = 0.5                # pause before each round
WARMUP = 3                   # untimed calls before each round
ITEM_BUDGET_S = 20.0         # skip a measurement whose runs would take longer
GEMM_TARGET = 0.9            # ours / NumPy throughput, GEMM 512^3, 1024^3, 2048^3
GEMV_TARGET = 0.9            # ours / NumPy throughput, GEMV at the model's shapes
BANDWIDTH_TARGET = 0.5       # fraction of the copy bandwidth, memory-bound ops past the LLC
COPY_MIN_BYTES = 64 * 2**20  # per copy array at least; at least the LLC (copy_bytes())
LLC_FALLBACK = 32 * 2**20    # when the last-level cache size cannot be read

HELPER_SRC = Path(__file__).resolve().with_name("bench_sycl.cpp")
HELPER_DIR = REPO / "build" / "bench" / "helper"
ONEMKL_WHEELS = "onemkl-sycl-blas==2025.3.1 onemkl-sycl-include==2025.3.1"
ONEMKL_INSTALL = f".venv/bin/pip install {ONEMKL_WHEELS}   (keeps intel-sycl-rt 2025.3.3)"
ONEMKL_LIBS = ["libmkl_sycl_blas.so.5", "libmkl_intel_ilp64.so.2", "libmkl_tbb_thread.so.2", "libmkl_core.so.2"]


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- the machine

def llc_bytes(sysfs="/sys/devices/system/cpu/cpu0/cache"):
    """(bytes, where from) of the last-level cache: the highest cache level
    in sysfs, else sysconf, else LLC_FALLBACK."""
    best = None
    try:
        for idx in Path(sysfs).glob("index*"):
            try:
                level = int((idx / "level").read_text())
                kind = (idx / "type").read_text().strip()
                size = (idx / "size").read_text().strip()
            except (OSError, ValueError):
                continue
            if kind == "Instruction":
                continue
            mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1:].upper(), 1)
            n = int(size.rstrip("KMGkmg")) * mult
            if best is None or level > best[0]:
                best = (level, n)
    except OSError:
        pass
    if best:
        return best[1], f"L{best[0]}, {sysfs}"
    try:
        n = os.sysconf("SC_LEVEL3_CACHE_SIZE")
        if n and n > 0:
            return n, "sysconf SC_LEVEL3_CACHE_SIZE"
    except (ValueError, OSError, AttributeError):
        pass
    return LLC_FALLBACK, f"unknown, assumed {LLC_FALLBACK >> 20} MiB"


def copy_bytes(llc):
    """Bytes per copy array: at least the LLC, so that source + destination
    (2x the LLC) cannot stay in it, and at least COPY_MIN_BYTES."""
    return max(COPY_MIN_BYTES, -(-llc // 2**20) * 2**20)


def past_llc_rows(llc, row_bytes, multiple=64):
    """Rows (a multiple of `multiple`) for an input of at least the LLC: input +
    output are then at least twice the last-level cache."""
    rows = -(-llc // row_bytes)
    return -(-rows // multiple) * multiple


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def fmt_load(load):
    return "/".join(f"{x:.1f}" for x in load) if load else "unknown"


def blas_name():
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 -- informational only
        return "unknown BLAS"


# ---------------------------------------------------------------- the C++ helper (bench_sycl.cpp)

def sycl_prefix():
    """The environment that holds the SYCL wheels (headers in include/,
    libraries in lib/): this Python's, else the checkout's .venv."""
    for p in (Path(sys.prefix), REPO / ".venv"):
        if (p / "include" / "sycl" / "sycl.hpp").exists():
            return p
    return Path(sys.prefix)


def onemkl_missing(prefix):
    """None when oneMKL's SYCL BLAS (onemkl-sycl-blas, onemkl-sycl-include and
    the mkl/tbb wheels they pull) is in prefix, else what is missing."""
    prefix = Path(prefix)
    need = [prefix / "include" / "oneapi" / "mkl.hpp"] + [prefix / "lib" / n for n in ONEMKL_LIBS + ["libtbb.so.12"]]
    missing = [str(p.relative_to(prefix)) for p in need if not p.exists()]
    return f"{', '.join(missing)} not in {prefix}" if missing else None


def onemkl_version():
    try:
        from importlib.metadata import version
        return version("onemkl-sycl-blas")
    except Exception:  # noqa: BLE001
        return None


def helper_command(prefix, onemkl, out, src=HELPER_SRC, cxx=None):
    prefix = Path(prefix)
    cmd = [cxx or os.environ.get("CXX", "g++"), "-std=c++17", "-O2", "-fPIC", "-shared", "-Wno-deprecated-declarations",
           "-DSYCL_DISABLE_FSYCL_SYCLHPP_WARNING"] + (["-DSFB_ONEMKL"] if onemkl else []) + \
        [f"-I{prefix / 'include'}", str(src), "-o", str(out), f"-L{prefix / 'lib'}",
         # RPATH, not RUNPATH: libmkl_tbb_thread's libtbb is found through it too
         "-Wl,--disable-new-dtags", f"-Wl,-rpath,{prefix / 'lib'}"]
    if onemkl:
        cmd += [f"-l:{n}" for n in ONEMKL_LIBS] + ["-ltbb"]
    return cmd + ["-lsycl"]


def build_helper(prefix, onemkl, out_dir=HELPER_DIR, src=HELPER_SRC, cxx=None):
    """The helper library, compiled unless a build of this source, command and
    wheels is cached in out_dir: (path, None), or (None, why it failed)."""
    prefix = Path(prefix)
    out_dir = Path(out_dir)
    probe = helper_command(prefix, onemkl, "OUT", src, cxx)
    stamp = [Path(src).read_bytes(), " ".join(probe).encode()]
    for f in [prefix / "lib" / "libsycl.so"] + ([prefix / "include" / "oneapi" / "mkl.hpp"] if onemkl else []):
        try:
            stamp.append(f"{f.resolve()} {f.stat().st_size} {f.stat().st_mtime_ns}".encode())
        except OSError:
            pass
    key = hashlib.sha256(b"\0".join(stamp)).hexdigest()[:16]
    out = out_dir / f"libsfb-{'onemkl' if onemkl else 'device'}-{key}.so"
    if out.exists():
        return out, None
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    cmd = helper_command(prefix, onemkl, tmp, src, cxx)
    log(f"  compiling {Path(src).name} ({'with oneMKL' if onemkl else 'device query'}) -> {out.relative_to(out_dir.parent) if out_dir.parent in out.parents else out} ...")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{cmd[0]}: {e}"
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.splitlines()
        return None, f"{' '.join(cmd)} exited {proc.returncode}: " + " | ".join(errors[:3])
    os.replace(tmp, out)
    return out, None


class HelperError(RuntimeError):
    pass


class Helper:
    """bench_sycl.cpp through ctypes, in this process."""

    def __init__(self, path):
        self.path = Path(path)
        h = self.lib = ctypes.CDLL(str(path))
        h.sfb_last_error.restype = ctypes.c_char_p
        h.sfb_device.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
        h.sfb_launch_loop.restype = ctypes.c_double
        h.sfb_launch_loop.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_size_t, ctypes.c_int, ctypes.c_int]
        self.onemkl = bool(h.sfb_has_onemkl())
        if self.onemkl:
            h.sfb_onemkl_open.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            h.sfb_gemm_new.restype = h.sfb_gemv_new.restype = ctypes.c_void_p
            h.sfb_gemm_new.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
            h.sfb_gemv_new.argtypes = [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 2
            h.sfb_run.argtypes = [ctypes.c_void_p]
            h.sfb_result.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            h.sfb_free.argtypes = [ctypes.c_void_p]

    def error(self):
        return (self.lib.sfb_last_error() or b"").decode(errors="replace")

    def device(self):
        """(name, max_compute_units) of the OpenCL CPU device."""
        name, units = ctypes.create_string_buffer(256), ctypes.c_int(0)
        if self.lib.sfb_device(name, 256, ctypes.byref(units)) != 0:
            raise HelperError(self.error())
        return name.value.decode(errors="replace"), units.value

    def launch_loop(self, rt, a, y, n, repeats, synced):
        """Seconds per kl_add(a, a, y, n) of a C loop on rt: each followed by
        kl_wait (synced), or back to back with one kl_wait at the end."""
        lib = rt._lib
        s = self.lib.sfb_launch_loop(ctypes.cast(lib.kl_add, ctypes.c_void_p), ctypes.cast(lib.kl_wait, ctypes.c_void_p),
                                     rt._handle(), a.ptr, y.ptr, n, repeats, 1 if synced else 0)
        if s < 0:
            raise HelperError(self.error() or f"kl_add/kl_wait failed: {rt.last_error()}")
        return s

    def open_onemkl(self):
        name = ctypes.create_string_buffer(256)
        if self.lib.sfb_onemkl_open(name, 256) != 0:
            raise HelperError(self.error())
        return name.value.decode(errors="replace")

    def close(self):
        if self.onemkl:
            self.lib.sfb_onemkl_close()


class OnemklOp:
    """One oneMKL GEMM or GEMV with its inputs on the device: run() is
    enqueue + wait; result() copies the output back."""

    def __init__(self, helper, x, w, gemm):
        self.h = helper
        self.x, self.w = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(w, np.float32)
        if gemm:
            (m, k), n = self.x.shape, self.w.shape[0]
            self.op = helper.lib.sfb_gemm_new(m, n, k, self.x.ctypes.data, self.w.ctypes.data)
            self.shape = (m, n)
        else:
            n, k = self.w.shape
            self.op = helper.lib.sfb_gemv_new(n, k, self.x.ctypes.data, self.w.ctypes.data)
            self.shape = (n,)
        if not self.op:
            raise HelperError(helper.error())

    def run(self):
        if self.h.lib.sfb_run(self.op) != 0:
            raise HelperError(self.h.error())

    def result(self):
        out = np.empty(self.shape, np.float32)
        if self.h.lib.sfb_result(self.op, out.ctypes.data) != 0:
            raise HelperError(self.h.error())
        return out

    def free(self):
        if self.op:
            self.h.lib.sfb_free(self.op)
            self.op = None


class Peer:
    """oneMKL's SYCL BLAS as a peer: .helper (a Helper with oneMKL) when it
    runs here, else .why (how to install it, or how it failed)."""

    def __init__(self, helper=None, why=None, version=None, device=None):
        self.helper, self.why, self.version, self.device = helper, why, version, device
        self.errors = []

    @property
    def ok(self):
        return self.helper is not None

    def fail(self, what, e):
        """oneMKL failed at `what`: say so, and stop using it."""
        self.errors.append(f"{what}: {e}")
        self.why = f"failed at {what}: {e}"
        self.helper = None
        log(f"  oneMKL: {self.why}")



def device_op(rt, name, *args):
    """A no-argument function that runs op `name` on rt and waits for it
    (its arguments bound once: Runtime.bind)."""
    enqueue, wait = rt.bind(name, *args), rt.wait

    def run():
        enqueue()
        wait()
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
    over every side. Every other round runs the sides in reverse (A B, B A,
    ...), so that no side keeps the place after another's spinning threads.
    Two copies of one library still differ by up to ~5% on a decode step
    (compare.py, 16 rounds): a change of a few percent needs repeated runs.
    Returns {name: (median s, runs)}, or (None, estimated s a call) for a
    side whose runs would exceed the budget (it is then dropped). timing:
    passed on to timed_runs."""
    times = {name: [] for name in sides}
    skipped = {}
    for r in range(n_rounds):
        for name, fn in (list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]):
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
    def __init__(self, rt, n_rounds=ROUNDS, llc=LLC_FALLBACK, peer=None):
        self.rt = rt
        self.rounds = n_rounds
        self.llc = llc
        self.peer = peer or Peer(why="not set up")
        self.rows = []
        self.rng = np.random.default_rng(0)

    def data(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)

    def device_op(self, name, *args):
        return device_op(self.rt, name, *args)

    def measure(self, op, shape, ours, numpy_fn, work, unit, target=None, estimate_s=None, onemkl=None):
        """work: flops (unit GFLOP/s) or bytes (unit GB/s) per call. onemkl:
        an OnemklOp, timed as a third side (and checked against numpy_fn's
        result once), or None."""
        sides = {"numpy": numpy_fn, "ours": ours}
        if onemkl is not None:
            sides["onemkl"] = onemkl.run
        log(f"  {op:8s} {shape:18s} {', '.join('NumPy' if s == 'numpy' else 'oneMKL' if s == 'onemkl' else s for s in sides)}, "
            f"{self.rounds} rounds ...")
        try:
            got = rounds(sides, self.rounds, estimates={"ours": estimate_s})
        except HelperError as e:       # oneMKL failed after its first call: drop it, time the others again
            self.peer.fail(f"{op} {shape}", e)
            sides.pop("onemkl")
            onemkl = None
            got = rounds(sides, self.rounds, estimates={"ours": estimate_s})
        (t_np, n_np), (t_ours, extra) = got["numpy"], got["ours"]
        row = {"op": op, "shape": shape, "unit": unit, "work": work,
               "ours_s": t_ours, "numpy_s": t_np,
               "ours_runs": extra if t_ours else 0, "numpy_runs": n_np if t_np else 0,
               "ours_rate": work / t_ours / 1e9 if t_ours else None,
               "numpy_rate": work / t_np / 1e9 if t_np else None,
               "ratio_vs_numpy": (t_np / t_ours) if t_ours and t_np else None,
               "target": target, "note": ""}
        if onemkl is not None:
            t_mkl, n_mkl = got["onemkl"]
            want = numpy_fn()
            got_mkl = onemkl.result()
            row.update({"onemkl_s": t_mkl, "onemkl_runs": n_mkl if t_mkl else 0,
                        "onemkl_rate": work / t_mkl / 1e9 if t_mkl else None,
                        "onemkl_vs_numpy": (t_np / t_mkl) if t_mkl and t_np else None,
                        "ratio_vs_onemkl": (t_mkl / t_ours) if t_mkl and t_ours else None,
                        "onemkl_max_rel_err": float(np.max(np.abs(got_mkl - want)) / max(float(np.max(np.abs(want))), 1e-30))})
        if t_ours is None:
            row["note"] = f"skipped: ~{extra:.1f} s a run would exceed the {ITEM_BUDGET_S:.0f} s budget"
        self.rows.append(row)
        return row

    def onemkl_op(self, x, w, gemm):
        """An OnemklOp for this shape, run once; None (and the peer dropped)
        when oneMKL is not there or fails."""
        if not self.peer.ok:
            return None
        try:
            op = OnemklOp(self.peer.helper, x, w, gemm)
            op.run()   # the first call: oneMKL's set-up (and any JIT) is not timed, and its failure is caught here
            return op
        except HelperError as e:
            self.peer.fail(f"{'gemm' if gemm else 'gemv'} {x.shape} x {w.shape}", e)
            return None


def copy_bandwidth(b, when):
    """NumPy's copy, our host->device memcpy (kl_to_device) and our kl_add,
    on arrays of copy_bytes(LLC) each, in GB/s (bytes read + written)."""
    rt = b.rt
    n = copy_bytes(b.llc) // 4
    src = b.data(n)
    dst = np.empty_like(src)
    da, db, dy = rt.to_device(src), rt.to_device(src), rt.empty(n)
    sides = {"numpy_copy": lambda: np.copyto(dst, src), "kl_to_device": lambda: (rt.copy_in(da, src), rt.wait())}
    if rt.has_op("add"):
        sides["kl_add"] = b.device_op("kl_add", da, db, dy, n)
    log(f"  copy     {', '.join(sides)} ({when}, {src.nbytes >> 20} MiB arrays) ...")
    got = rounds(sides, b.rounds)
    for buf in (da, db, dy):
        buf.free()
    del src, dst
    return {name: (3 if name == "kl_add" else 2) * n * 4 / t / 1e9 for name, (t, _) in got.items()}


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


def launch_costs(rt, helper=None, repeats=2000, batches=5):
    """Time per launch (kl_add of 16 floats), the median of `batches`: each
    followed by kl_wait (synced: an op's round trip) and back to back with one
    kl_wait at the end (in a stream, as ops are in a decode step). In a C loop
    through the helper (no Python between the calls, as in minillm), else in
    Python. Seconds."""
    if not rt.has_op("add"):
        return None
    a, y = rt.to_device(np.ones(16, np.float32)), rt.empty(16)
    try:
        if helper is not None:
            how = "a C loop through the library's C ABI (bench_sycl.cpp), as minillm calls it"
            helper.launch_loop(rt, a, y, 16, repeats // 10, True)   # warm-up

            def batch(synced):
                return helper.launch_loop(rt, a, y, 16, repeats, synced)
        else:
            how = "a Python loop (ctypes; the helper was not available)"

            def batch(synced):
                t0 = time.perf_counter()
                for _ in range(repeats):
                    rt.call("kl_add", a, a, y, 16)
                    if synced:
                        rt.wait()
                rt.wait()
                return (time.perf_counter() - t0) / repeats
            batch(True)
        synced, stream = [], []
        for _ in range(batches):
            time.sleep(0.05)
            synced.append(batch(True))
            stream.append(batch(False))
        return {"synced_s": statistics.median(synced), "in_stream_s": statistics.median(stream), "how": how,
                "op": "kl_add of 16 floats", "repeats": repeats, "batches": batches}
    finally:
        a.free(), y.free()


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
        mkl = b.onemkl_op(x, w, gemm=True)
        row = b.measure("gemm", f"{n}x{n}x{n}", b.device_op("kl_gemm", dx, dw, dy, n, n, n),
                        lambda: np.matmul(x, w.T, out=y), 2.0 * n ** 3, "GFLOP/s",
                        target=("numpy", GEMM_TARGET), estimate_s=estimate, onemkl=mkl)
        prev, prev_n = row["ours_s"], n
        if mkl:
            mkl.free()
        for buf in (dx, dw, dy):
            buf.free()


def bench_gemv(b, shapes):
    rt = b.rt
    for k, n in shapes:
        x, w = b.data(k), b.data(n, k, scale=0.05)
        y = np.empty(n, np.float32)
        dx, dw, dy = rt.to_device(x), rt.to_device(w), rt.empty(n)
        mkl = b.onemkl_op(x, w, gemm=False)
        b.measure("gemv", f"1x{k}->{n}", b.device_op("kl_gemv", dx, dw, dy, n, k),
                  lambda: np.matmul(w, x, out=y), 4.0 * (n * k + n + k), "GB/s",
                  target=("numpy", GEMV_TARGET), onemkl=mkl)
        if mkl:
            mkl.free()
        for buf in (dx, dw, dy):
            buf.free()


def bench_gemv_past_llc(b, k, n):
    """GEMV as decode of a model larger than the last-level cache runs it:
    every call finds its weights in memory. Ours and NumPy each rotate over
    the same number of copies of w, together at least twice the LLC (a
    single w that fits would be read from the cache after the first call).
    Memory-bound: held to the copy bandwidth (issue #15)."""
    rt = b.rt
    copies = max(2, -(-2 * b.llc // (4 * n * k)))
    x = b.data(k)
    ws = [b.data(n, k, scale=0.05) for _ in range(copies)]
    y = np.empty(n, np.float32)
    dx, dy = rt.to_device(x), rt.empty(n)
    dws = [rt.to_device(w) for w in ws]
    ours_calls = itertools.cycle([b.device_op("kl_gemv", dx, dw, dy, n, k) for dw in dws])
    numpy_ws = itertools.cycle(ws)
    row = b.measure("gemv", f"1x{k}->{n}", lambda: next(ours_calls)(), lambda: np.matmul(next(numpy_ws), x, out=y),
                    4.0 * (n * k + n + k), "GB/s", target=memory_target(b, 4 * n * k * copies))
    row["note"] = f"({copies} copies of w, {copies * 4 * n * k / 2**20:.0f} MiB: from memory)"
    for buf in [dx, dy] + dws:
        buf.free()


def memory_target(b, nbytes):
    """The copy-bandwidth target for a memory-bound op moving nbytes (read +
    written): only past the last-level cache, at least twice its size (issue
    #15: none for cache-resident shapes)."""
    return ("copy", BANDWIDTH_TARGET) if nbytes >= 2 * b.llc else None


def bench_softmax(b, shapes):
    rt = b.rt
    for rows, cols in shapes:
        x = b.data(rows, cols, scale=3.0)
        dx, dy = rt.to_device(x), rt.empty((rows, cols))

        def numpy_softmax():
            e = np.exp(x - x.max(axis=1, keepdims=True))
            e /= e.sum(axis=1, keepdims=True)
            return e
        nbytes = 4.0 * 2 * rows * cols
        b.measure("softmax", f"{rows}x{cols}", b.device_op("kl_softmax", dx, dy, rows, cols, 0, 0, 1.0),
                  numpy_softmax, nbytes, "GB/s", target=memory_target(b, nbytes))
        dx.free(), dy.free()


def bench_rmsnorm(b, shapes, eps=1e-5):
    rt = b.rt
    for rows, dim in shapes:
        x, wt = b.data(rows, dim), b.data(dim)
        dx, dw, dy = rt.to_device(x), rt.to_device(wt), rt.empty((rows, dim))

        def numpy_rmsnorm():
            return x * (1.0 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + np.float32(eps))) * wt
        nbytes = 4.0 * (2 * rows * dim + dim)
        b.measure("rmsnorm", f"{rows}x{dim}", b.device_op("kl_rmsnorm", dx, dw, dy, rows, dim, eps),
                  numpy_rmsnorm, nbytes, "GB/s", target=memory_target(b, nbytes))
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


def ms(s):
    return fmt(s and s * 1e3, ".3f")


def table(rows, copy, floor=None, launch=None, llc=None, peer=None):
    head = ["op", "shape", "ours ms", "ours rate", "NumPy ms", "NumPy rate", "ours/NumPy", "of copy BW", "target"]
    lines = []
    for r in rows:
        tgt = ""
        if r["target"]:
            t = r["target"]
            tgt = f"{r['status']} (>= {t['at_least']}x {'NumPy' if 'NumPy' in t['against'] else 'copy'})"
        elif r["unit"] == "GB/s" and r["op"] != "gemv":
            tgt = "- (cache-resident: no copy target)"
        lines.append([r["op"], r["shape"], ms(r["ours_s"]),
                      f"{fmt(r['ours_rate'], '.1f')} {r['unit']}", ms(r["numpy_s"]),
                      f"{fmt(r['numpy_rate'], '.1f')} {r['unit']}", fmt(r["ratio_vs_numpy"], ".2f"),
                      fmt(r["copy_fraction"], ".2f"), tgt + (f" {r['note']}" if r["note"] else "")])
    out = grid(head, lines)
    mkl_rows = [r for r in rows if "onemkl_s" in r]
    if mkl_rows:
        out += ["", f"oneMKL {peer.version or ''} SYCL BLAS (oneapi::mkl::blas::row_major) on \"{peer.device}\", "
                    "an in-order queue of its own in this process, device USM, enqueue + wait as ours:"]
        head = ["op", "shape", "oneMKL ms", "oneMKL rate", "oneMKL/NumPy", "ours/oneMKL", "max rel err vs NumPy"]
        out += grid(head, [[r["op"], r["shape"], ms(r["onemkl_s"]), f"{fmt(r['onemkl_rate'], '.1f')} {r['unit']}",
                            fmt(r["onemkl_vs_numpy"], ".2f"), fmt(r["ratio_vs_onemkl"], ".2f"),
                            fmt(r["onemkl_max_rel_err"], ".1e")] for r in mkl_rows])
    if peer is not None and not mkl_rows:
        out += ["", f"oneMKL: not measured: {peer.why}"]
    elif peer is not None and peer.errors:
        out += [f"oneMKL failed, and was left out from there on: {'; '.join(peer.errors)}"]
    out.append("")
    if llc:
        out.append(f"last-level cache: {llc[0] / 2**20:.0f} MiB ({llc[1]}); copy-bandwidth targets only for shapes "
                   "that move at least twice that")
    for when in ("start", "end"):
        out.append(f"copy bandwidth at the {when} (GB/s, read + write, {copy.get('array_mib', 64)} MiB arrays): " +
                   ", ".join(f"{k} {v:.1f}" for k, v in copy[when].items()))
    out.append(f"reference = best plain copy = {copy['reference']:.1f} GB/s")
    if floor and all(floor.values()):
        out.append("launch floor (kl_add of 16 floats, enqueue + kl_wait from Python; in every 'ours ms'): " +
                   ", ".join(f"{v * 1e3:.3f} ms at the {k}" for k, v in floor.items()))
    if launch:
        out.append(f"time per launch ({launch['op']}, {launch['how']}): {launch['in_stream_s'] * 1e6:.1f} us in a "
                   f"stream, {launch['synced_s'] * 1e6:.1f} us with a wait after each")
    return "\n".join(out)


# ---------------------------------------------------------------- minillm's decode step, op by op

def decode_step_ops(rt, cfg, pos, rng):
    """minillm's decode step (models/minillm/minillm.cpp: State::forward of
    one token at position pos, then the greedy sample's kl_argmax) as a list
    of (op, args) on buffers of the model's shapes, every layer with weights
    of its own (so that, as in minillm, they stream through the caches), and
    the buffers (to free)."""
    d, hid, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV, V, S = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"], cfg["max_position_embeddings"]
    hd = d // H
    kv = KV * hd
    eps, theta = float(cfg.get("rms_norm_eps", 1e-5)), float(cfg.get("rope_theta", 10000.0))
    bufs = []

    def dev(n, scale=0.02, fill=None, dtype=np.float32):
        a = np.full(n, fill, dtype) if fill is not None else rng.standard_normal(n, dtype=np.float32) * np.float32(scale)
        b = rt.to_device(a, dtype)
        bufs.append(b)
        return b

    def off(buf, floats):
        return buf.ptr + 4 * floats

    embed = dev(V * d)
    lm_head = embed if cfg.get("tie_word_embeddings", True) else dev(V * d)
    final_norm = dev(d, fill=1.0)
    x, h, qkv, att, o = dev(d), dev(d), dev(d + 2 * kv), dev(d), dev(d)
    gate_up, act, logits, ones = dev(2 * hid), dev(hid), dev(V), dev(kv, fill=1.0)
    top = dev(1, fill=0, dtype=np.int32)
    ids = np.array([65], np.int32)          # host memory, as minillm passes it
    bufs.append(ids)
    # A build before the fused ops replays the step it served (compare.py's
    # A/B of the step): the norm then the GEMV; RoPE then two copies; the
    # GEMV then the add.
    def project_add(inp, w, n_in):   # x += w . inp
        if rt.has_op("gemv_add"):
            return [("gemv_add", (inp, w, x, x, d, n_in))]
        return [("gemv", (inp, w, o, d, n_in)), ("add", (x, o, x, d))]

    def norm_gemv(norm, w, out, n_out):   # out = w . rmsnorm(x)
        if rt.has_op("rmsnorm_gemv"):
            return [("rmsnorm_gemv", (x, norm, w, out, n_out, d, eps))]
        return [("rmsnorm", (x, norm, h, 1, d, eps)), ("gemv", (h, w, out, n_out, d))]

    def ffn_in(norm, w_gate_up):   # act = swiglu(w_gate_up . rmsnorm(x))
        if rt.has_op("rmsnorm_gemv_swiglu"):
            return [("rmsnorm_gemv_swiglu", (x, norm, w_gate_up, act, hid, d, eps))]
        return [*norm_gemv(norm, w_gate_up, gate_up, 2 * hid), ("swiglu", (gate_up, off(gate_up, hid), act, hid))]

    def rope_store(qkv, k_cache, v_cache):
        if rt.has_op("rope_qkv"):
            return [("rope_qkv", (qkv, k_cache, v_cache, 1, H, KV, hd, pos, S, theta))]
        return [("rope", (qkv, 1, H + KV, hd, pos, theta)),
                ("mul", (off(qkv, d), ones, off(k_cache, pos * kv), kv)),
                ("mul", (off(qkv, d + kv), ones, off(v_cache, pos * kv), kv))]

    ops = [("embedding", (embed, ids.ctypes.data, x, 1, d, V))]
    for _ in range(L):
        attn_norm, ffn_norm = dev(d, fill=1.0), dev(d, fill=1.0)
        wqkv, wo, w_gate_up, w_down = dev((d + 2 * kv) * d), dev(d * d), dev(2 * hid * d), dev(d * hid)
        k_cache, v_cache = dev(S * kv), dev(S * kv)
        ops += [*norm_gemv(attn_norm, wqkv, qkv, d + 2 * kv),
                *rope_store(qkv, k_cache, v_cache),
                ("attention", (qkv, k_cache, v_cache, att, 1, H, KV, hd, pos, S, 1.0 / math.sqrt(hd))),
                *project_add(att, wo, d),
                *ffn_in(ffn_norm, w_gate_up),
                *project_add(act, w_down, hid)]
    ops += [*norm_gemv(final_norm, lm_head, logits, V),
            ("argmax", (logits, top, 1, V))]
    return ops, bufs


def decode_profile(rt, cfg, pos, steps=30, warmup=5, floor_calls=20, clock=time.perf_counter):
    """The kernels' work in one decode step. decode_step_ops replayed
    `steps` times (after `warmup`), each time twice:

    - in a stream, as minillm runs it: the ops back to back, one kl_wait at
      the end; then as many kl_add of 16 floats back to back, the same way.
      The kernels' work = the step less its launches at that cost
      (work_s). On a CPU device the launching thread and the kernels share
      the cores, so the two add up.
    - op by op, each op enqueue + kl_wait, less the launch floor (kl_add of
      16 floats timed the same way, floor_calls after every step): which ops
      the work goes to (by_op_s). Absolute figures are high there: a waited
      op also pays for waking the device's threads (synced_work_s).

    Medians over the steps, seconds."""
    rng = np.random.default_rng(1)
    ops, bufs = decode_step_ops(rt, cfg, pos, rng)
    fa, fy = rt.to_device(np.ones(16, np.float32)), rt.empty(16)
    n = len(ops)
    floors, streamed, launches, raw, by_op = [], [], [], [], {}
    try:
        for step in range(warmup + steps):
            t0 = clock()
            for name, args in ops:
                rt.call(name, *args)
            rt.wait()
            t1 = clock()
            for _ in range(n):
                rt.call("kl_add", fa, fa, fy, 16)
            rt.wait()
            t2 = clock()
            times = []
            for name, args in ops:
                t3 = clock()
                rt.call(name, *args)
                rt.wait()
                times.append(clock() - t3)
            for _ in range(floor_calls):
                t3 = clock()
                rt.call("kl_add", fa, fa, fy, 16)
                rt.wait()
                floors.append(clock() - t3)
            if step >= warmup:
                streamed.append(t1 - t0)
                launches.append((t2 - t1) / n)
                raw.append(times)
        floor = statistics.median(floors)
        synced = []
        for times in raw:
            synced.append(sum(times) - floor * n)
            step = {}
            for (name, _), t in zip(ops, times):
                step[name] = step.get(name, 0.0) + t - floor
            for name, t in step.items():
                by_op.setdefault(name, []).append(t)
        counts = {}
        for name, _ in ops:
            counts[name] = counts.get(name, 0) + 1
        return {"launches_per_step": n,
                "work_s": statistics.median(s - n * c for s, c in zip(streamed, launches)),
                "streamed_step_s": statistics.median(streamed), "launch_in_stream_s": statistics.median(launches),
                "synced_work_s": statistics.median(synced), "synced_step_s": statistics.median(sum(t) for t in raw),
                "floor_s": floor, "by_op_s": {name: statistics.median(v) for name, v in by_op.items()},
                "op_counts": counts, "pos": pos, "steps": steps}
    finally:
        for b in bufs:
            if hasattr(b, "free"):
                b.free()
        fa.free(), fy.free()


# ---------------------------------------------------------------- set-up

def set_up_helper(rt, want_onemkl, prefix=None):
    """The C++ helper for this runtime: (Helper or None, why not, Peer).
    With want_onemkl and oneMKL installed, the helper with oneMKL (its queue
    opened on the device); otherwise the device-query helper and a Peer
    saying why oneMKL is not there."""
    if rt.toolchain.startswith("acpp"):
        why = (f"the library is built by {rt.toolchain} (AdaptiveCpp's runtime): the helper speaks the oneAPI "
               "SYCL runtime's OpenCL CPU device")
        return None, why, Peer(why=why)
    prefix = Path(prefix) if prefix else sycl_prefix()
    peer = Peer(why="not asked for")
    if want_onemkl:
        missing = onemkl_missing(prefix)
        peer = Peer(why=f"not installed ({missing}); for the second peer: {ONEMKL_INSTALL}") if missing else None
        if peer is None:
            path, why = build_helper(prefix, onemkl=True)
            try:
                helper = Helper(path) if path else None
            except OSError as e:
                helper, why = None, f"loading {path}: {e}"
            if helper is None:
                peer = Peer(why=f"installed, but the helper does not build or load: {why}")
            else:
                peer = Peer(helper=helper, version=onemkl_version())
                try:
                    peer.device = helper.open_onemkl()
                except HelperError as e:
                    peer.fail("opening a queue", e)
                    return helper, None, peer
                if peer.device != rt.device_name:
                    peer.fail("the device", f"oneMKL's queue is on \"{peer.device}\", ours on \"{rt.device_name}\"")
                return helper, None, peer
    path, why = build_helper(prefix, onemkl=False)
    if path is None:
        return None, why, peer
    try:
        return Helper(path), None, peer
    except OSError as e:
        return None, f"loading {path}: {e}", peer


def device_facts(rt, helper, helper_why):
    """The runtime's device and its compute units (what llama.cpp's thread
    count should be), with where they came from."""
    facts = {"device": rt.device_name, "image": rt.image, "target": rt.target, "toolchain": rt.toolchain,
             "cpus": os.cpu_count(), "compute_units": None}
    if helper is None:
        facts["compute_units_from"] = f"not queried: {helper_why}"
        return facts
    try:
        name, units = helper.device()
    except HelperError as e:
        facts["compute_units_from"] = f"not queried: {e}"
        return facts
    if name != rt.device_name:
        facts["compute_units_from"] = f"not queried: the helper's OpenCL CPU device is \"{name}\", ours \"{rt.device_name}\""
        return facts
    facts["compute_units"] = units
    facts["compute_units_from"] = (f"max_compute_units of the SYCL device \"{name}\" (OpenCL CPU), as the runtime "
                                   "queries it to size its work (kernels/python/bench_sycl.cpp)")
    return facts


def profile_main(args):
    """--decode-profile: one JSON object on stdout (models/bench.py reads the last line)."""
    spec = json.loads(Path(args.decode_profile).read_text() if os.path.exists(args.decode_profile)
                      else args.decode_profile)
    try:
        rt = Runtime(args.image, lib=args.lib)
    except KLError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    helper, why, _ = set_up_helper(rt, want_onemkl=False)
    out = device_facts(rt, helper, why)
    out["launch"] = launch_costs(rt, helper)
    out["models"] = {}
    for m in spec.get("models", []):
        log(f"  decode step of {m['label']} at position {m['pos']}, op by op ...")
        out["models"][m["label"]] = decode_profile(rt, m["config"], m["pos"], steps=spec.get("steps", 30))
    rt.close()
    print(json.dumps(out))
    return 0


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
    ap.add_argument("--no-onemkl", action="store_true", help="leave oneMKL out even when it is installed")
    ap.add_argument("--decode-profile", metavar="SPEC", default=None,
                    help="JSON (or a file of it): {\"models\": [{\"label\", \"config\", \"pos\"}], \"steps\"}: "
                         "print the device's compute units, the time per launch and each model's decode step "
                         "replayed op by op, as one JSON object (models/bench.py)")
    args = ap.parse_args(argv)
    if args.decode_profile:
        return profile_main(args)
    n_rounds = max(args.rounds, 1)
    started = time.time()

    try:
        rt = Runtime(args.image, lib=args.lib)
    except KLError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    llc = llc_bytes()
    helper, helper_why, peer = set_up_helper(rt, want_onemkl=not args.no_onemkl)
    if args.no_onemkl:
        peer = Peer(why="left out (--no-onemkl)")
    facts = device_facts(rt, helper, helper_why)
    units = facts["compute_units"]
    load_start = loadavg()
    log(f"bench: {rt.target} ({rt.toolchain}) image={rt.image} device=\"{rt.device_name}\" "
        f"({units if units else '?'} compute units), {os.cpu_count()} CPUs (load average {fmt_load(load_start)}), "
        f"last-level cache {llc[0] / 2**20:.0f} MiB, medians of {n_rounds} alternating rounds")
    pinned = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}
    if pinned:
        log("peers pinned to the forced image's ISA: " + ", ".join(f"{k}={v}" for k, v in pinned.items()))
    log(f"peers: NumPy {np.__version__} ({blas_name()}); oneMKL SYCL BLAS: " +
        (f"{peer.version} on \"{peer.device}\" (a queue of its own on our device, in this process)" if peer.ok
         else peer.why))
    b = Bench(rt, n_rounds, llc=llc[0], peer=peer)
    log("copy bandwidth")
    copy = {"array_mib": copy_bytes(b.llc) >> 20, "start": copy_bandwidth(b, "start")}
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
        bench_gemv_past_llc(b, 768, 32000)    # the 85M model's lm_head: decode reads its weights from memory
    log("softmax")
    if "softmax" not in missing:
        bench_softmax(b, [(64, 32000), (512, 512), (past_llc_rows(b.llc, 32000 * 4), 32000)])
    log("RMSNorm")
    if "rmsnorm" not in missing:
        bench_rmsnorm(b, [(512, 4096), (past_llc_rows(b.llc, 4096 * 4), 4096)])
    log("copy bandwidth")
    copy["end"] = copy_bandwidth(b, "end")
    floor["end"] = launch_floor(b, "end")
    copy["reference"] = copy_reference([copy["start"], copy["end"]])
    log("time per launch")
    launch = launch_costs(rt, helper)
    judge(b.rows, copy["reference"])
    if peer.ok:
        peer.helper.close()

    log("")
    log(table(b.rows, copy, floor, launch, llc, peer))
    doc = {
        "schema": 2,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "library": {"path": str(Path(args.lib).resolve()), "target": rt.target, "toolchain": rt.toolchain,
                    "image": rt.image, "image_forced": bool(args.image), "device": rt.device_name,
                    "compute_units": units, "compute_units_from": facts["compute_units_from"]},
        "host": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                 "numpy": np.__version__, "numpy_blas": blas_name(),
                 "load_average_at_start": load_start, "load_average_at_end": loadavg(),
                 "last_level_cache_bytes": llc[0], "last_level_cache_from": llc[1]},
        "peers": {"pinned_isa_env": pinned, "numpy": {"version": np.__version__, "blas": blas_name()},
                  "onemkl": {"measured": any("onemkl_s" in r for r in b.rows), "version": peer.version,
                             "device": peer.device, "why_not": None if peer.ok else peer.why, "errors": peer.errors,
                             "install": ONEMKL_INSTALL, "helper": str(helper.path) if helper else None,
                             "api": "oneapi::mkl::blas::row_major::gemm / gemv, in-order queue of its own on the "
                                    "same OpenCL CPU device, device USM, enqueue + wait (as ours)"}},
        "method": {"rounds": n_rounds, "runs_per_round": f">= {RUNS}, and until {MIN_ROUND_S} s (<= {MAX_RUNS})",
                   "warmup_per_round": WARMUP, "pause_before_round_s": QUIET_S,
                   "statistic": "median of every run of every round",
                   "device_time": "enqueue + kl_wait, inputs already on the device",
                   "rates": "GFLOP/s = 2*M*N*K / t; GB/s = minimal bytes read + written / t",
                   "copy_reference": f"the best plain copy of {copy['array_mib']} MiB arrays (each at least the "
                                     "last-level cache), at the start or the end of this run"},
        "copy_bandwidth_gbs": copy,
        "launch_floor_s": floor,
        "launch_cost_s": launch,
        "targets": {"gemm_vs_numpy": GEMM_TARGET, "gemm_sizes": [512, 1024, 2048],
                    "gemv_vs_numpy": GEMV_TARGET, "gemv_shapes": "the model's three (1x288->768, 1x768->2048, 1x2048->768)",
                    "memory_bound_vs_copy": BANDWIDTH_TARGET,
                    "memory_bound_only_past_bytes": 2 * b.llc},
        "missing_ops": missing,
        "results": b.rows,
        "elapsed_s": round(time.time() - started, 1),
    }
    write_json(args.out, doc)
    met = [r for r in b.rows if r["status"]]
    log(f"\nbench: {sum(r['status'] == 'PASS' for r in met)}/{len(met)} targets met "
        f"(reported, not enforced: exit 0); load average {fmt_load(doc['host']['load_average_at_end'])}; "
        f"wrote {args.out} in {doc['elapsed_s']} s")
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
