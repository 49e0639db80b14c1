"""`scons numerics`: the generic engine (site_scons/syclforge/numerics.py)
with this repository's plugin (kernels/python/numerics_plugin.py): every
kernel case and the mini-LLM on every cpu-x86 image this CPU runs, against
float64 and against each other; a perturbed result is caught and named;
reports of other machines merge into one matrix; bad reports are clear
errors."""
import json
import shutil
import sys

import numpy as np
import pytest

from helpers import REPO, cpu_isas, run, scons
from syclforge import numerics
from syclforge.errors import SyclforgeError

sys.path.insert(0, str(REPO / "kernels" / "python"))
import cases  # noqa: E402
import tolerance  # noqa: E402
from syclforge_kl import OPS  # noqa: E402

OUT = REPO / "build" / "numerics"
RUNNABLE = set(cpu_isas()) | {"spirv"}
MODEL_OPS = {"model_tokens", "model_logits"}
FIELDS = {"op", "shape", "target", "toolchain", "device", "image", "metric", "value", "threshold", "pass"}
PLUGIN = numerics.load_plugin(REPO / "kernels" / "python" / "numerics_plugin.py")


# --------------------------------------------------------------------------
# Pure parts

def test_ratio_is_the_one_scale_of_the_report():
    assert numerics.ratio(1.0, 2.0) == 0.5
    assert numerics.ratio(0, 0) == 0.0                  # exact ops: a match
    assert numerics.ratio(1, 0) == float("inf")         # ... and any difference


def test_pairwise_threshold_is_the_declared_factor_times_the_reference_one():
    x = np.float32([1.5, -2.25, 3.0])
    one = tolerance.compare("add", x + x, (x + x).astype(np.float64), a=x, b=x)
    two = tolerance.compare("add", x + x, (x + x).astype(np.float64), pairwise=True, a=x, b=x)
    assert two.threshold == 2 * one.threshold == 1.0
    assert "Pairwise:" in two.why and "triangle inequality" in two.why


def test_model_logits_tolerance_catches_a_wrong_logit():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((4, 258)) * 5
    assert tolerance.compare("model_logits", (ref * (1 + 1e-6)).astype(np.float32), ref).ok
    bad = ref.astype(np.float32)
    bad[2, 17] += 0.05 * np.abs(ref[2]).max()
    res = tolerance.compare("model_logits", bad, ref)
    assert not res.ok and res.worst["index"] == (2, 17)


def test_column_labels_are_the_image_plus_what_differs():
    base = {"runner": "host:a", "target": "cpu-x86", "toolchain": "oneapi-pip", "device": "CPU"}
    devs = [dict(base, image="avx2"), dict(base, image="spirv")]
    assert sorted(numerics.column_labels(devs).values()) == ["avx2", "spirv"]
    devs.append(dict(base, runner="container:cpu", image="avx2"))
    assert sorted(numerics.column_labels(devs).values()) == ["container:cpu/avx2", "host:a/avx2", "host:a/spirv"]


def test_the_cases_cover_every_op_of_the_c_abi_with_odd_shapes():
    assert set(cases.ops()) == {name.removeprefix("kl_") for name in OPS}
    for op in cases.ops():
        assert sum(c.op == op for c in cases.CASES) >= 2, op
    # inputs are a function of the case alone: every machine computes on the same numbers
    c = cases.CASES[1]
    assert cases.digest(c.inputs()) == cases.digest(c.inputs())


# --------------------------------------------------------------------------
# `scons numerics` on this machine

@pytest.fixture(scope="module")
def scons_numerics():
    proc = scons("numerics", "target=cpu-x86", check=False, timeout=1800)
    report = json.loads((OUT / "report.json").read_text()) if (OUT / "report.json").is_file() else None
    return proc, report


def test_numerics_covers_every_op_and_the_model_on_three_images(scons_numerics):
    proc, rep = scons_numerics
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = {d["image"] for d in rep["devices"] if d["status"] == "ran"}
    assert ran >= RUNNABLE and len(ran) >= 3
    ops = set(cases.ops()) | MODEL_OPS
    rows = rep["comparisons"]
    for image in ran:
        for op in ops:
            assert any(r["op"] == op and r["image"] == image and r["kind"] == "reference" for r in rows), (op, image)
            assert any(r["op"] == op and r["image"] == image and r["kind"] == "determinism" for r in rows), (op, image)
    for op in ops:
        assert any(r["op"] == op and r["kind"] == "pairwise" for r in rows), op
    assert all(FIELDS <= set(r) for r in rows)
    assert all(isinstance(r["bits_differ"], int) for r in rows if r["kind"] == "pairwise")
    assert all(r["pass"] for r in rows) and rep["violations"] == []
    if "avx512" not in RUNNABLE:
        (avx512,) = [d for d in rep["devices"] if d["image"] == "avx512"]
        assert avx512["status"] == "unreachable" and "lacks this ISA" in avx512["reason"]


def test_numerics_prints_the_table_and_draws_the_picture(scons_numerics):
    proc, rep = scons_numerics
    table = (OUT / "table.txt").read_text()
    assert table.strip() in proc.stdout
    header = next(line for line in table.splitlines() if line.startswith("op "))
    assert header.split()[1:] == [numerics.column_labels([d for d in rep["devices"] if d["status"] == "ran"])[
        numerics.device_key(d)] for d in rep["devices"] if d["status"] == "ran"] + ["pairwise"]
    for op in set(cases.ops()) | MODEL_OPS:
        assert any(line.split()[0] == op for line in table.splitlines() if line.strip()), op
    assert "all within tolerance" in table
    assert rep["picture"] == "report.png"
    assert (OUT / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_thresholds_are_those_of_tolerances_yaml(scons_numerics):
    _, rep = scons_numerics
    assert rep["plugin"] == "kernels/python/numerics_plugin.py" and rep["tolerances"] == "kernels/tolerances.yaml"
    ref = {(r["op"], r["case"], r["image"]): r for r in rep["comparisons"] if r["kind"] == "reference"}
    for r in rep["comparisons"]:
        if r["kind"] == "determinism":
            continue
        assert r["metric"] == tolerance.spec(r["op"]).metric, r
        if r["kind"] == "pairwise":
            assert r["threshold"] == 2 * ref[(r["op"], r["case"], r["image"])]["threshold"], r


# --------------------------------------------------------------------------
# Violations, merging, errors (kernels only: fast)

def _spec(images):
    return [{"target": "cpu-x86", "toolchain": "oneapi-pip", "images": images,
             "files": {"lib": str(REPO / "build" / "cpu-x86" / "lib" / "libsyclforge_kl.so")}}]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, scons_numerics):
    """Two 'machines': a good one, and one whose spirv gelu_erf is perturbed."""
    base = tmp_path_factory.mktemp("numerics")
    quiet = lambda msg: None  # noqa: E731
    good = numerics.run_local(REPO, _spec(["sse4.2", "spirv"]), base / "good", plugin=PLUGIN, runner="ci:a",
                              log=quiet)
    bad = numerics.run_local(REPO, _spec(["sse4.2", "spirv"]), base / "bad", plugin=PLUGIN, runner="ci:b",
                             perturb="gelu_erf@spirv", log=quiet)
    return base, good, bad


def test_a_perturbed_result_is_caught_and_named(two_runs):
    _, good, bad = two_runs
    assert good["violations"] == []
    assert bad["violations"]
    failed = [r for r in bad["comparisons"] if not r["pass"]]
    assert {r["op"] for r in failed} == {"gelu_erf"}
    assert {r["kind"] for r in failed} == {"reference", "pairwise"}     # bit-identical twice: deterministic
    assert all(r["image"] == "spirv" for r in failed if r["kind"] == "reference")
    for case in [c for c in cases.CASES if c.op == "gelu_erf"]:
        assert any(v.startswith(f"{case.id} [reference] cpu-x86/oneapi-pip/spirv") and "eps_scaled" in v
                   for v in bad["violations"]), case.id
    assert any("[pairwise]" in v and "sse4.2" in v and "spirv" in v for v in bad["violations"])
    assert all(r["bits_differ"] > 0 for r in failed if r["kind"] == "pairwise")


def test_merge_compares_devices_of_different_machines(two_runs, tmp_path):
    base, _, _ = two_runs
    merged = numerics.merge(REPO, tmp_path / "out", [base / "good", base / "bad" / "report.json"], plugin=PLUGIN,
                            log=lambda m: None)
    keys = {(d["runner"], d["image"]) for d in merged["devices"]}
    assert keys == {("ci:a", "sse4.2"), ("ci:a", "spirv"), ("ci:b", "sse4.2"), ("ci:b", "spirv")}
    across = [r for r in merged["comparisons"] if r["kind"] == "pairwise" and r["runner"] != r["other"]["runner"]]
    assert across and all(r["pass"] for r in across if r["op"] != "gelu_erf")
    assert any(not r["pass"] and r["image"] == "spirv" and r["runner"] == "ci:b" and r["other"]["runner"] == "ci:a"
               for r in across)
    table = (tmp_path / "out" / "table.txt").read_text()
    assert "ci:a/spirv" in table and "ci:b/spirv" in table and "VIOLATION gelu_erf[" in table
    assert [s["runner"] for s in merged["sources"]] == ["ci:a", "ci:b"]


def test_a_non_deterministic_result_is_a_violation(two_runs, tmp_path):
    base, _, _ = two_runs
    src = tmp_path / "nondet"
    shutil.copytree(base / "good", src)
    rep = json.loads((src / "report.json").read_text())
    case = cases.CASES[0].id
    rep["devices"][0]["nondeterministic"].append(case)
    (src / "report.json").write_text(json.dumps(rep))
    merged = numerics.merge(REPO, tmp_path / "out", [src], log=lambda m: None)
    (v,) = merged["violations"]
    assert v.startswith(f"{case} [determinism] cpu-x86/oneapi-pip/{rep['devices'][0]['image']}")


def test_scons_numerics_merge_exits_non_zero_naming_the_violation(two_runs, tmp_path):
    base, _, _ = two_runs
    proc = run([sys.executable, "-m", "syclforge.numerics", "merge", str(base / "bad"), "--out", str(tmp_path / "o")],
               env={"PYTHONPATH": str(REPO / "site_scons")})
    assert proc.returncode == 1
    assert "VIOLATION gelu_erf[" in proc.stdout and "spirv" in proc.stdout
    # through SCons (the alias merges into build/numerics: put it back after)
    saved = tmp_path / "saved"
    shutil.copytree(OUT, saved)
    try:
        proc = scons("numerics", f"merge={base / 'bad'}", check=False)
        assert proc.returncode != 0
        assert "VIOLATION gelu_erf[" in proc.stdout
    finally:
        shutil.rmtree(OUT)
        shutil.copytree(saved, OUT)


def test_bad_reports_are_named_and_leave_the_report_as_it_was(two_runs, tmp_path):
    base, _, _ = two_runs
    out = tmp_path / "out"
    numerics.merge(REPO, out, [base / "good"], log=lambda m: None)
    before = (out / "report.json").read_bytes()
    with pytest.raises(SyclforgeError, match=r"/missing: no such report"):
        numerics.merge(REPO, out, [tmp_path / "missing"], log=lambda m: None)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(base / "good" / "report.json", alone)
    with pytest.raises(SyclforgeError, match=r"alone/report.json: device .* names outputs .* copy the whole folder"):
        numerics.merge(REPO, out, [alone], log=lambda m: None)
    (alone / "report.json").write_text('{"schema": "something-else/9", "devices": []}')
    with pytest.raises(SyclforgeError, match=r"not a syclforge numerics report"):
        numerics.merge(REPO, out, [alone], log=lambda m: None)
    (alone / "report.json").write_text("{not json")
    with pytest.raises(SyclforgeError, match=r"alone/report.json: not a readable JSON report"):
        numerics.merge(REPO, out, [alone], log=lambda m: None)
    assert (out / "report.json").read_bytes() == before
    assert not (tmp_path / "out.tmp").exists()
    proc = scons("numerics", f"merge={tmp_path / 'missing'}", check=False)
    assert proc.returncode == 2 and "no such report" in proc.stderr and "Traceback" not in proc.stderr


def test_an_image_this_machine_cannot_run_is_unreachable_not_a_pass(tmp_path, monkeypatch):
    # As an SSE4.2 host wherever the CPU has more (SYCLFORGE_CPU_ISAS): never a skip.
    monkeypatch.setenv("SYCLFORGE_CPU_ISAS", "sse4.2")
    rep = numerics.run_local(REPO, _spec(["avx512"]), tmp_path / "o", plugin=PLUGIN, runner="ci:a",
                             log=lambda m: None)
    (d,) = rep["devices"]
    assert d["status"] == "unreachable" and "lacks this ISA" in d["reason"]
    assert rep["violations"] and rep["violations"][0].startswith("no device image ran")


@pytest.mark.skipif(shutil.which("acpp") is not None, reason="acpp is installed: cpu-x86 would build with it")
def test_numerics_with_nothing_buildable_is_a_clear_error():
    proc = scons("numerics", "target=cpu-x86", "toolchain=acpp", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "numerics: no chosen target can be built here" in proc.stderr and "  cpu-x86: " in proc.stderr
