"""Compare two (or more) builds of the kernel library, op by op, in one
process: their calls alternate round by round, in reverse every other round
(A B, B A), so the shared machine's slow spells hit every build alike and the ratio holds where the absolute times
drift. For a kernel change, keep the old build and measure both:

    cp build/cpu-x86/lib/libsyclforge_kl.so build/cpu-x86/lib/before.so
    (edit, then .venv/bin/scons -Q target=cpu-x86)
    .venv/bin/python kernels/python/compare.py build/cpu-x86/lib/before.so build/cpu-x86/lib/libsyclforge_kl.so

A whole decode step of minillm (its ops back to back at a model's shapes,
one kl_wait, as bench.py replays it; each build replays the step it serves,
so a fused op is judged against the launches it replaced):

    .venv/bin/python kernels/python/compare.py before.so after.so --op decode:models/tiny-fortunes

Keep the copies in build/<target>/lib: a library finds the SYCL runtime
through its RPATH, relative to where it lies. Times are enqueue + kl_wait
with inputs on the device (as in bench.py), medians of all runs; the last
column is each build's time over the first's (< 1: faster). Exit status 2
on bad arguments or a library that does not load.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from syclforge_kl import KLError, Runtime  # noqa: E402

DEFAULT_OPS = ["gemv:288x768", "gemv:2048x768", "softmax:512x512", "softmax:64x32000", "rmsnorm:512x4096",
               "gemm:512x512x512", "add:16"]
SHAPES = {"gemv": 2, "softmax": 2, "rmsnorm": 2, "gemm": 3, "add": 1}


def parse_op(spec):
    """'softmax:512x512' -> ('softmax', (512, 512)); 'decode:DIR' -> ('decode',
    the model's config.json as a dict); ValueError naming the spec."""
    if spec.startswith("decode:"):
        path = Path(spec[len("decode:"):]) / "config.json"
        try:
            return "decode", json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{spec!r}: expected decode:MODEL_DIR with a config.json ({e})") from None
    m = re.fullmatch(r"(\w+):(\d+(?:x\d+)*)", spec)
    if not m or m.group(1) not in SHAPES:
        raise ValueError(f"{spec!r}: expected OP:SHAPE with OP one of {', '.join(SHAPES)} (e.g. softmax:512x512)")
    dims = tuple(int(d) for d in m.group(2).split("x"))
    if len(dims) != SHAPES[m.group(1)] or 0 in dims:
        raise ValueError(f"{spec!r}: {m.group(1)} takes {SHAPES[m.group(1)]} non-zero sizes")
    return m.group(1), dims


def call_for(rt, op, dims, rng):
    """bench.device_op for op at dims, inputs already on the device."""
    def data(*shape):
        return rt.to_device(rng.standard_normal(shape).astype(np.float32))
    if op == "decode":                     # dims: the model's config
        steps, bufs = bench.decode_step_ops(rt, dims, min(126, dims["max_position_embeddings"] - 1), rng)

        def step():
            for name, args in steps:
                rt.call(name, *args)
            rt.wait()
        step.bufs = bufs   # alive while the step is: the token ids are a host array passed by address
        return step
    if op == "gemv":                       # K -> N: x[K], w[N, K]
        k, n = dims
        args = ("kl_gemv", data(k), data(n, k), rt.empty(n), n, k)
    elif op == "softmax":
        r, c = dims
        args = ("kl_softmax", data(r, c), rt.empty((r, c)), r, c, 0, 0, 1.0)
    elif op == "rmsnorm":
        r, c = dims
        args = ("kl_rmsnorm", data(r, c), data(c), rt.empty((r, c)), r, c, 1e-5)
    elif op == "gemm":                     # M x N x K
        m, n, k = dims
        args = ("kl_gemm", data(m, k), data(n, k), rt.empty((m, n)), m, n, k)
    else:
        (n,) = dims
        args = ("kl_add", data(n), data(n), rt.empty(n), n)
    return bench.device_op(rt, *args)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("libs", nargs="+", metavar="LIB", help="builds of libsyclforge_kl.so, the first is the baseline")
    ap.add_argument("--image", default=None, help="the image every build runs (default: each loader's choice)")
    ap.add_argument("--op", action="append", metavar="OP:SHAPE",
                    help=f"an op to time, repeatable (default: {' '.join(DEFAULT_OPS)})")
    ap.add_argument("--rounds", type=int, default=9, help="alternating rounds (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        ops = [parse_op(s) for s in (args.op or DEFAULT_OPS)]
    except ValueError as e:
        ap.error(str(e))
    if len({Path(lib).resolve() for lib in args.libs}) < max(len(args.libs), 2):
        ap.error("give at least two different libraries to compare (copy one build aside first)")
    runtimes = []
    for lib in args.libs:
        try:
            runtimes.append(Runtime(args.image, lib=lib))
        except (KLError, OSError) as e:
            print(f"compare: error: {lib}: {e} (a copy must lie in build/<target>/lib to find the runtime)",
                  file=sys.stderr)
            return 2
    names = [Path(lib).name for lib in args.libs]
    if len(set(names)) < len(names):
        names = [str(Path(lib)) for lib in args.libs]
    print(f"compare: {', '.join(f'{n} (image {rt.image})' for n, rt in zip(names, runtimes))}; "
          f"medians of {max(args.rounds, 1)} alternating rounds", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for op, dims in ops:
        sides = {name: call_for(rt, op, dims, rng) for name, rt in zip(names, runtimes)}
        got = bench.rounds(sides, max(args.rounds, 1), quiet_s=0.05, min_s=0.05)
        times = [got[n][0] for n in names]
        label = f"decode step, {dims['num_hidden_layers']} layers x {dims['hidden_size']}" if op == "decode" \
            else f"{op} {'x'.join(map(str, dims))}"
        rows.append([label] +
                    [f"{t * 1e3:.3f}" if t else "-" for t in times] +
                    [" ".join(f"{t / times[0]:.2f}" if t and times[0] else "-" for t in times[1:])])
    head = ["op"] + [f"{n} ms" for n in names] + ["time / first"]
    print("\n".join(bench.grid(head, rows)))
    for rt in runtimes:
        rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
