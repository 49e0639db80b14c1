"""One device image's part of `scons numerics`: numerics_plugin.py runs it for
syclforge's numerics engine (site_scons/syclforge/numerics.py).

    python numerics_worker.py --lib LIB --image ID --out OUT.npz

Creates one kl_runtime with the image forced (as SYCLFORGE_IMAGE does), runs
every case of cases.py twice, and writes the first run's outputs to OUT.npz
and a JSON line on stdout (case ids -> npz keys): the runtime's target, toolchain, device and image,
each case's input digest, which cases were not bit-identical the second
time, and which raised. One process per image: images never share a process,
as two devices would not.

Exit status: 0 when it ran (whatever the numbers), 3 when this machine cannot
run the image (the runtime refused it: the JSON says why), 2 on bad usage.

--perturb OPS (comma-separated op names, or "all") replaces every output of
those ops, after both runs, by the reference plus 3 times the op's own
threshold (tolerance.perturb): the harness's own test that a violation of
each op's tolerance is caught and named (tests/test_numerics.py).

Outputs are poisoned (NaN) before each op runs, so an element an op fails
to write reads as NaN, not as whatever the allocator left there.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
import tolerance  # noqa: E402
from syclforge_kl import KLError, Runtime  # noqa: E402


def bits(a):
    """The array's bytes as unsigned integers: NaN payloads and -0 included."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint8) if a.dtype.itemsize == 1 else a.view(f"u{a.dtype.itemsize}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="numerics_worker", description=__doc__.splitlines()[0])
    ap.add_argument("--lib", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--perturb", default="", help="ops (comma-separated, or 'all') whose outputs to perturb "
                                                  "(harness test)")
    a = ap.parse_args(argv)
    try:
        rt = Runtime(a.image, lib=a.lib, poison=True)
    except KLError as e:
        print(json.dumps({"unreachable": str(e)}))
        return 3
    meta = {"target": rt.target, "toolchain": rt.toolchain, "device": rt.device_name, "image": rt.image,
            "digests": {}, "keys": {}, "nondeterministic": [], "errors": {}}
    outputs = {}
    perturb = set(a.perturb.split(",")) - {""}
    for i, case in enumerate(cases.CASES):
        inputs = case.inputs()
        meta["digests"][case.id] = cases.digest(inputs)
        try:
            first = cases.run(rt, case, inputs)
            second = cases.run(rt, case, case.inputs())
        except KLError as e:
            meta["errors"][case.id] = str(e)
            continue
        if first.shape != second.shape or not np.array_equal(bits(first), bits(second)):
            meta["nondeterministic"].append(case.id)
        if case.op in perturb or "all" in perturb:
            first = tolerance.perturb(case.op, first, cases.reference(case, inputs), **inputs)
        # npz member names are file names: index them, map ids in the JSON.
        meta["keys"][case.id] = f"k{i:03d}"
        outputs[f"k{i:03d}"] = first
    rt.close()
    tmp = a.out + ".tmp.npz"
    np.savez(tmp, **outputs)
    os.replace(tmp, a.out)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
