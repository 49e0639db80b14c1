"""The mutation suite: realistic defects switched on one at a time, each of
which the op's own tests and the numerics report must catch.

    .venv/bin/python kernels/python/mutants.py [--only NAME ...] [--json OUT]

Mutants:
  - every test-only fault of the kernel library (KL_FAULTS=name, listed by
    kl_faults(), written in kernels/ops/faults.hpp): caught by the tests of
    the ops it touches in tests/test_kernels.py, and by the numerics report's
    rows of those ops (kernel cases); both on one image, the loader's choice;
  - the model's (MINILLM_FAULTS=name in models/minillm/minillm.cpp, plus the
    library's attention.kv_interleaved run on the model as a wrong
    grouped-query mapping): caught by tests/test_minillm.py's comparison with
    the float64 reference and by the report's model rows.

A mutant is caught when at least one of its op tests fails and the report
fails a row of one of its ops; the table gives the failed tests and the
worst error / threshold among those rows. Exit status 1 when a mutant
escapes either. tests/test_mutants.py runs this file, and checks that every
fault the library lists has a mutant here.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
LIB = TOP / "build" / "cpu-x86" / "lib" / "libsyclforge_kl.so"
MINILLM = TOP / "build" / "cpu-x86" / "bin" / "minillm"
PLUGIN = HERE / "numerics_plugin.py"
PYTHON = sys.executable

# Which ops a kernel fault touches (by the part of its name before the dot),
# and so which op tests and report rows must catch it.
FAULT_OPS = {
    "gemm": ["gemm"], "gemv": ["gemv", "gemm", "gemv_add", "rmsnorm_gemv", "rmsnorm_gemv_swiglu"], "gemv_add": ["gemv_add"],
    "norm": ["rmsnorm", "layernorm", "rmsnorm_gemv", "rmsnorm_gemv_swiglu"],
    "rmsnorm_gemv": ["rmsnorm_gemv", "rmsnorm_gemv_swiglu"], "softmax": ["softmax"],
    "rope": ["rope", "rope_qkv"], "rope_qkv": ["rope_qkv"], "silu": ["silu", "swiglu", "rmsnorm_gemv_swiglu"], "gelu_tanh": ["gelu_tanh"], "gelu_erf": ["gelu_erf"],
    "elementwise": ["silu", "gelu_tanh", "gelu_erf", "swiglu", "add", "mul"], "embedding": ["embedding"],
    "attention": ["attention"], "sum": ["sum"], "max": ["max"], "argmax": ["argmax"],
}
# The tests of tests/test_kernels.py that exercise each op (pytest -k).
OP_TESTS = {
    "gemm": "test_gemm", "gemv": "test_gemv", "gemv_add": "test_gemv_add", "rmsnorm_gemv": "test_rmsnorm_gemv",
    "rmsnorm_gemv_swiglu": "test_rmsnorm_gemv_swiglu", "rmsnorm": "test_rmsnorm", "layernorm": "test_layernorm",
    "softmax": "test_softmax", "rope": "test_rope", "rope_qkv": "test_rope_qkv", "silu": "test_activation", "gelu_tanh": "test_activation",
    "gelu_erf": "test_activation", "swiglu": "test_swiglu", "add": "test_add_mul", "mul": "test_add_mul",
    "embedding": "test_embedding", "attention": "test_attention", "sum": "test_sum", "max": "test_max_argmax",
    "argmax": "test_max_argmax",
}
MODEL_OPS = ["model_tokens", "model_logits"]
MODEL_TESTS = ["tests/test_minillm.py", "-k", "test_greedy_tokens_and_logits_match_reference"]
# The model's mutants: (name, environment, the defect).
MODEL_MUTANTS = [
    ("model.rms_norm_eps", {"MINILLM_FAULTS": "rms_norm_eps"}, "rms_norm_eps 1e-6 instead of config.json's 1e-5"),
    ("model.rope_theta", {"MINILLM_FAULTS": "rope_theta"}, "rope_theta 500000 instead of config.json's 10000"),
    ("model.fp16_weights", {"MINILLM_FAULTS": "fp16_weights"}, "every weight matrix rounded to fp16"),
    ("model.gqa_interleaved", {"KL_FAULTS": "attention.kv_interleaved"},
     "query head h reads kv head h % n_kv (a wrong grouped-query mapping)"),
]


@dataclass
class Mutant:
    name: str
    env: dict
    ops: list          # the ops whose tests and report rows must catch it
    tests: list        # pytest arguments selecting those tests
    what: str
    model: bool = False


FAULTS_HPP = TOP / "kernels" / "ops" / "faults.hpp"


def source_faults():
    """{name: defect} as kernels/ops/faults.hpp lists them (what a build's
    kl_faults() returns; tests/test_mutants.py checks that it does), so the
    suite is known before anything is built."""
    text = FAULTS_HPP.read_text()
    return dict(re.findall(r'^\s*X\(\w+, "([\w.]+)", "((?:[^"\\]|\\.)*)"\)', text, re.M))


def mutants():
    """Every mutant: the library's faults, then the model's."""
    out = []
    for name, what in source_faults().items():
        group = name.split(".", 1)[0]
        if group not in FAULT_OPS:
            raise SystemExit(f"mutants.py: the library's fault {name!r} has no entry in FAULT_OPS: add which ops "
                             "it touches")
        ops = FAULT_OPS[group]
        expr = " or ".join(dict.fromkeys(OP_TESTS[o] for o in ops))
        out.append(Mutant(name, {"KL_FAULTS": name}, ops, ["tests/test_kernels.py", "-k", expr], what))
    for name, env, what in MODEL_MUTANTS:
        out.append(Mutant(name, env, MODEL_OPS, MODEL_TESTS, what, model=True))
    return out


def _env(extra):
    env = {k: v for k, v in os.environ.items() if k not in ("KL_FAULTS", "MINILLM_FAULTS")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(TOP / "site_scons")] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_tests(m, image=None):
    """(failed, passed) of the mutant's op tests (those of one image, when
    given: every test of those files is parametrized by image)."""
    args = list(m.tests)
    if image:
        k = args.index("-k") + 1
        args[k] = f"({args[k]}) and {image.split('.')[0]}"   # -k takes no dot: sse4.2 -> sse4
    proc = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=TOP,
                          env=_env(m.env), capture_output=True, text=True, timeout=1800)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {k: 0 for k in ("failed", "passed", "error")}
    for part in last.replace(" in ", ", ").split(", "):
        n, _, kind = part.strip().partition(" ")
        if n.isdigit() and kind.rstrip("s") in counts:
            counts[kind.rstrip("s")] += int(n)
    if proc.returncode not in (0, 1) or counts["error"]:
        raise RuntimeError(f"{m.name}: pytest {' '.join(m.tests)} exited {proc.returncode}: {last}\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return counts["failed"], counts["passed"]


def run_numerics(m, image, lib=LIB, minillm=MINILLM):
    """The report's rows of the mutant's ops on one image: (failed rows,
    worst error / threshold among them, violations naming them)."""
    files = {"lib": str(lib)}
    if m.model:
        files["minillm"] = str(minillm)
    spec = {"target": "cpu-x86", "toolchain": "oneapi-pip", "images": [image], "files": files}
    with tempfile.TemporaryDirectory() as tmp:
        script = ("import json, sys; from syclforge import numerics; "
                  "rep = numerics.run_local(sys.argv[1], [json.loads(sys.argv[2])], sys.argv[3], "
                  "plugin=numerics.load_plugin(sys.argv[4]), log=lambda m: None); "
                  "json.dump(rep, open(sys.argv[3] + '/rep.json', 'w'))")
        proc = subprocess.run([PYTHON, "-c", script, str(TOP), json.dumps(spec), tmp, str(PLUGIN)], cwd=TOP,
                              env=_env(m.env), capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{m.name}: numerics run failed: {proc.stderr[-2000:]}")
        rep = json.loads(Path(tmp, "rep.json").read_text())
    if rep["summary"]["devices_ran"] != 1:
        raise RuntimeError(f"{m.name}: image {image} did not run: {rep['devices']}")
    rows = [r for r in rep["comparisons"] if r["kind"] == "reference" and r["op"] in m.ops]
    bad = [r for r in rows if not r["pass"]]
    def ratio(r):   # a value may be "inf" (a NaN or Inf the reference does not have)
        v, t = float(r["value"]), float(r["threshold"])
        return v / t if t else (float("inf") if v else 0.0)
    worst = max(map(ratio, rows)) if rows else 0.0
    # a violation names the op: its case starts with it, or the op follows the kind (numerics.describe)
    named = [v for v in rep["violations"] if any(v.startswith(o + "[") or f"] {o} " in v for o in m.ops)]
    return len(bad), worst, named


def default_image(lib=LIB):
    sys.path.insert(0, str(HERE))
    import syclforge_kl
    with syclforge_kl.Runtime(lib=lib) as rt:
        return rt.image


def check(m, image):
    failed, passed = run_tests(m, image)
    bad_rows, worst, named = run_numerics(m, image)
    return {"mutant": m.name, "what": m.what, "ops": m.ops, "tests_failed": failed, "tests_passed": passed,
            "rows_failed": bad_rows, "worst_ratio": worst, "violations": len(named),
            "caught": failed > 0 and bad_rows > 0 and bool(named)}


def _ratio(v):
    return "inf" if v == float("inf") else (f"{v:.3g}" if v < 1e4 else f"{v:.2e}")


def table(results, image):
    lines = [f"mutant                          tests failed  report rows failed  worst error / threshold  "
             f"(image {image})"]
    for r in results:
        lines.append(f"{r['mutant']:<32}{r['tests_failed']:>5}/{r['tests_failed'] + r['tests_passed']:<8}"
                     f"{r['rows_failed']:>12}{_ratio(r['worst_ratio']):>26}"
                     f"{'' if r['caught'] else '   ESCAPED'}")
    return "\n".join(lines)


def markdown(results):
    """The README's table (README.md, "Mutation testing")."""
    out = ["| mutant | the defect | op tests failed | report rows failed | worst error / threshold |",
           "|---|---|---|---|---|"]
    for r in results:
        out.append(f"| `{r['mutant']}` | {r['what']} | {r['tests_failed']} of "
                   f"{r['tests_failed'] + r['tests_passed']} | {r['rows_failed']} | {_ratio(r['worst_ratio'])} |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="mutant names to run (default: all)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--markdown", action="store_true", help="print the README's table instead")
    a = ap.parse_args(argv)
    if not LIB.exists() or not MINILLM.exists():
        print(f"mutants.py: build first: .venv/bin/scons target=cpu-x86 ({LIB} / {MINILLM} missing)",
              file=sys.stderr)
        return 2
    todo = [m for m in mutants() if a.only is None or m.name in a.only]
    image = default_image()
    print(f"mutants.py: {len(todo)} mutants on image {image}, {a.jobs} at a time", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        results = list(pool.map(lambda m: check(m, image), todo))
    print(markdown(results) if a.markdown else table(results, image))
    if a.json:
        Path(a.json).write_text(json.dumps({"image": image, "results": results}, indent=1))
    escaped = [r["mutant"] for r in results if not r["caught"]]
    if escaped:
        print("ESCAPED: " + ", ".join(escaped), file=sys.stderr)
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
