"""`scons numerics`: the generic engine (site_scons/syclforge/numerics.py),
first with a tiny fake plugin (pure Python, no SYCL), then with this
repository's plugin (kernels/python/numerics_plugin.py): every kernel case
and the mini-LLM on every cpu-x86 image this CPU runs, against float64 and
against each other; a perturbed result is caught and named; reports of other
machines merge into one matrix; bad reports are clear errors."""
import json
import os
import shutil
import subprocess
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


def test_model_logits_tolerance_catches_a_wrong_logit_and_a_uniform_relative_error():
    rng = np.random.default_rng(1)
    hidden, lm_head = rng.standard_normal((4, 32)), rng.standard_normal((258, 32)) * 0.1
    ref = hidden @ lm_head.T
    scale = {"hidden": hidden, "lm_head": lm_head}
    assert tolerance.compare("model_logits", (ref * (1 + 1e-6)).astype(np.float32), ref, **scale).ok
    bad = ref.astype(np.float32)
    bad[2, 17] += 0.05 * np.abs(ref[2]).max()
    res = tolerance.compare("model_logits", bad, ref, **scale)
    assert not res.ok and res.worst["index"] == (2, 17)
    # every logit 1e-4 off, relatively: the largest logit's 8192 eps (1e-3) let it through
    res = tolerance.compare("model_logits", (ref * (1 + 1e-4)).astype(np.float32), ref, **scale)
    assert not res.ok, str(res)


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
# The engine is generic: a fake plugin (pure Python, no SYCL)

FAKE_PLUGIN = """
'''A fake client: squares a few numbers; each image behaves as its spec's
files say (good, off, flaky, error, nostats, unreachable, failed, garbage).'''
import numpy as np
from syclforge.numerics import Check, NoOutput

TOLERANCES = "fake/tolerances.txt"
INPUTS = {"sq[3]": [1.0, 2.0, 3.0], "sq[2]": [0.5, -4.0]}
CALLS = []


def run_image(spec, image, npz_path, *, perturb, python, log):
    CALLS.append({"spec": spec, "image": image, "perturb": perturb, "python": python})
    how = spec["files"].get(image, "good")
    if how == "unreachable":
        return {"status": "unreachable", "reason": f"no {image} device here"}
    if how == "failed":
        return {"status": "failed", "reason": "the fake worker crashed"}
    if how == "garbage":
        return {"what": "no status"}
    out, errors = {}, {}
    for i, (cid, x) in enumerate(INPUTS.items()):
        if how == "error":
            errors[cid] = "out of device memory"
            continue
        y = np.square(np.float32(x))
        if how == "off" or perturb == cid:
            y = y + np.float32(0.25)
        out[f"k{i}"] = y
    out["stats"] = np.float32([6.0, 3.5 if how == "maxoff" else 3.0])
    np.savez(npz_path, **out)
    return {"status": "ran", "device": "Fake CPU", "image": image, "toolchain": spec["toolchain"],
            "nondeterministic": list(INPUTS) if how == "flaky" else [], "errors": errors,
            "stats": how != "nostats"}


class Square:
    op = "square"

    def __init__(self, i, cid, x):
        self.id, self.label, self.key, self.x = cid, str(len(x)), f"k{i}", x

    def output(self, npz, device):
        if self.id in device["errors"]:
            raise NoOutput(device["errors"][self.id])
        return npz[self.key]

    def reference(self):
        return np.square(np.float64(self.x))

    def check(self, got, want, pairwise=False):
        err = float(np.max(np.abs(np.float64(got) - want)))
        thr = 0.1 * (2 if pairwise else 1)
        return [Check("square", "abs", err, thr, err <= thr, f"got={got.tolist()}")]


class Stats:
    '''Two rows per comparison (sum, max); the sum's row counts the bits of its part.'''
    id, op, label = "stats[1,2,3]", "stats_sum", "3"

    def output(self, npz, device):
        return npz["stats"] if device["stats"] else None      # None: this device did not run it

    def reference(self):
        return np.float64([6.0, 3.0])

    def check(self, got, want, pairwise=False):
        return [Check("stats_sum", "abs", abs(float(got[0]) - float(want[0])), 0, got[0] == want[0], "",
                      (got[:1], want[:1])),
                Check("stats_max", "exact", float(got[1] != want[1]), 0, got[1] == want[1])]


def cases():
    return [Square(i, cid, x) for i, (cid, x) in enumerate(INPUTS.items())] + [Stats()]
"""
QUIET = lambda msg: None  # noqa: E731
SITE = {"PYTHONPATH": str(REPO / "site_scons")}


@pytest.fixture
def fake(tmp_path):
    (tmp_path / "fakeplugin.py").write_text(FAKE_PLUGIN)
    return numerics.load_plugin(tmp_path / "fakeplugin.py")


def _fake_run(fake, top, name, images, files=None, **kw):
    specs = [{"target": "fake-t", "toolchain": "fake-tc", "images": images, "files": files or {}}]
    return numerics.run_local(top, specs, top / name, plugin=fake, log=QUIET, **kw)


def _rows(rep, **match):
    return [r for r in rep["comparisons"] if all(r.get(k) == v for k, v in match.items())]


def test_fake_plugin_cases_pass_against_the_reference_pairwise_and_themselves(fake, tmp_path):
    files = {"gone": "unreachable", "extra": {"untouched": [1, 2]}}
    rep = _fake_run(fake, tmp_path, "out", ["a", "b", "gone"], files, runner="r1", python="/my/python")
    assert rep["violations"] == []
    assert [(d["image"], d["status"]) for d in rep["devices"]] == [("a", "ran"), ("b", "ran"), ("gone", "unreachable")]
    assert rep["devices"][2]["reason"] == "no gone device here"
    a = rep["devices"][0]
    assert {k: a[k] for k in numerics.KEY_FIELDS} == {"runner": "r1", "target": "fake-t", "toolchain": "fake-tc",
                                                      "device": "Fake CPU", "image": "a"}
    assert a["outputs"] == "outputs-r1-fake-t-fake-tc-a.npz" and (tmp_path / "out" / a["outputs"]).is_file()
    assert a["stats"] is True and a["nondeterministic"] == []           # the plugin's bookkeeping, kept
    # the spec (and its files) reach the plugin untouched, with the interpreter
    assert [c["image"] for c in fake.CALLS] == ["a", "b", "gone"]
    assert all(c["spec"]["files"] is files and c["python"] == "/my/python" and c["perturb"] == ""
               for c in fake.CALLS)
    # per case and device: reference and determinism; per case: one pairwise (b vs a)
    for cid in ("sq[3]", "sq[2]"):
        assert len(_rows(rep, case=cid, kind="reference")) == 2
        assert len(_rows(rep, case=cid, kind="determinism")) == 2
        (pw,) = _rows(rep, case=cid, kind="pairwise")
        assert pw["image"] == "b" and pw["other"]["image"] == "a" and pw["bits_differ"] == 0
        assert pw["threshold"] == 2 * _rows(rep, case=cid, kind="reference")[0]["threshold"]
    # a case of two rows: two of each kind, determinism per op; a part's bits counted
    assert [(r["op"], r["kind"]) for r in _rows(rep, case="stats[1,2,3]", image="a")] == [
        ("stats_sum", "reference"), ("stats_max", "reference"),
        ("stats_sum", "determinism"), ("stats_max", "determinism")]
    assert {(r["op"], r["bits_differ"]) for r in _rows(rep, case="stats[1,2,3]", kind="pairwise")} == {
        ("stats_sum", 0), ("stats_max", 0)}
    assert rep["plugin"] == "fakeplugin.py" and rep["tolerances"] == "fake/tolerances.txt"
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == rep
    table = (tmp_path / "out" / "table.txt").read_text()
    assert table.splitlines()[1].split() == ["op", "a", "b", "pairwise"]
    assert [line.split()[0] for line in table.splitlines()[3:6]] == ["square", "stats_sum", "stats_max"]
    assert "not run: fake-t gone (r1): unreachable: no gone device here" in table
    assert "all within tolerance" in table


def test_fake_plugin_a_result_off_the_reference_is_named_and_perturb_reaches_one_image(fake, tmp_path):
    rep = _fake_run(fake, tmp_path, "out", ["a", "b", "c"], {"c": "off"}, runner="r1", perturb="sq[2]@b")
    assert [c["perturb"] for c in fake.CALLS] == ["", "sq[2]", ""]
    failed = [(r["case"], r["kind"], r["image"], r.get("other", {}).get("image")) for r in rep["comparisons"]
              if not r["pass"]]
    assert sorted(failed, key=str) == sorted([
        ("sq[3]", "reference", "c", None), ("sq[3]", "pairwise", "c", "a"), ("sq[3]", "pairwise", "c", "b"),
        ("sq[2]", "reference", "b", None), ("sq[2]", "reference", "c", None),
        ("sq[2]", "pairwise", "b", "a"), ("sq[2]", "pairwise", "c", "a")], key=str)   # b and c agree on sq[2]
    (pw,) = [r for r in _rows(rep, case="sq[3]", kind="pairwise", image="c") if r["other"]["image"] == "a"]
    assert (pw["value"], pw["threshold"], pw["bits_differ"]) == (0.25, 0.2, 3)
    assert ("sq[3] [reference] square fake-t/fake-tc/c on Fake CPU (r1): abs = 0.25 > threshold 0.1; "
            "worst: got=[1.25, 4.25, 9.25]") in rep["violations"]
    assert ("sq[3] [pairwise] square fake-t/fake-tc/c on Fake CPU (r1) vs fake-t/fake-tc/a (r1): abs = 0.25 > "
            "threshold 0.2; worst: got=[1.25, 4.25, 9.25]") in rep["violations"]
    assert rep["summary"]["violations"] == len(rep["violations"]) == 7
    assert "7 VIOLATION(S)" in (tmp_path / "out" / "table.txt").read_text()


def test_fake_plugin_a_nondeterministic_device_fails_determinism_only(fake, tmp_path):
    rep = _fake_run(fake, tmp_path, "out", ["a", "flaky"], {"flaky": "flaky"}, runner="r1")
    failed = {(r["case"], r["kind"], r["image"], r["metric"]) for r in rep["comparisons"] if not r["pass"]}
    assert failed == {("sq[3]", "determinism", "flaky", "bits_differ"),
                      ("sq[2]", "determinism", "flaky", "bits_differ")}
    assert ("sq[3] [determinism] square fake-t/fake-tc/flaky on Fake CPU (r1): bits_differ = 1.0 > threshold 0.0"
            in rep["violations"])
    _, _, cells = numerics.matrix(rep)
    assert cells[("square", "flaky")] == float("inf") and cells[("square", "a")] == 0


def test_fake_plugin_pairwise_bits_differ_counts_what_each_row_compared(fake, tmp_path):
    rep = _fake_run(fake, tmp_path, "out", ["a", "m"], {"m": "maxoff"}, runner="r1")
    pw = {r["op"]: r for r in _rows(rep, case="stats[1,2,3]", kind="pairwise")}
    assert (pw["stats_sum"]["pass"], pw["stats_sum"]["bits_differ"]) == (True, 0)     # its part: got[:1]
    assert (pw["stats_max"]["pass"], pw["stats_max"]["bits_differ"]) == (False, 1)    # the whole outputs
    assert {v.split(" [")[0] for v in rep["violations"]} == {"stats[1,2,3]"}


def test_fake_plugin_devices_that_did_not_run_or_have_no_output(fake, tmp_path):
    files = {"x": "unreachable", "y": "failed", "z": "garbage", "e": "error", "n": "nostats"}
    rep = _fake_run(fake, tmp_path, "out", ["x", "y", "z", "e", "n"], files, runner="r1")
    assert [d["status"] for d in rep["devices"]] == ["unreachable", "failed", "failed", "ran", "ran"]
    s = rep["summary"]
    assert (s["devices_ran"], s["unreachable"], s["failed"]) == (2, 1, 2)
    assert "fake-t y (r1): the fake worker crashed" in rep["violations"]
    assert any(v.startswith("fake-t z (r1): the numerics plugin's run_image returned no status")
               for v in rep["violations"])
    # an output the device should have and has not: one failed row, named
    (err,) = _rows(rep, case="sq[3]", image="e")
    assert (err["op"], err["metric"], err["value"], err["pass"], err["worst"]) == (
        "square", "error", "inf", False, "out of device memory")
    assert not _rows(rep, case="sq[3]", kind="pairwise")       # e has no output to pair with
    # a case a device did not run: no row at all
    assert {r["image"] for r in _rows(rep, case="stats[1,2,3]")} == {"e"}
    # nothing ran: never "all within tolerance"
    rep = _fake_run(fake, tmp_path, "out2", ["x"], files, runner="r1")
    assert rep["violations"] == ["no device image ran: fake-t x: no x device here"]


def test_fake_plugin_merge_loads_the_plugin_the_report_records(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "fakeplugin.py").write_text(FAKE_PLUGIN)
    fake = numerics.load_plugin(tmp_path / "plugins" / "fakeplugin.py")
    _fake_run(fake, tmp_path, "m1", ["a", "e"], {"e": "error"}, runner="one")
    _fake_run(fake, tmp_path, "m2", ["a"], {"a": "off"}, runner="two")
    assert json.loads((tmp_path / "m1" / "report.json").read_text())["plugin"] == "plugins/fakeplugin.py"
    merged = numerics.merge(tmp_path, tmp_path / "merged", [tmp_path / "m1", tmp_path / "m2"], log=QUIET)
    assert [(d["runner"], d["image"]) for d in merged["devices"]] == [("one", "a"), ("one", "e"), ("two", "a")]
    (across,) = _rows(merged, case="sq[3]", kind="pairwise")
    assert (across["runner"], across["other"]["runner"], across["pass"]) == ("two", "one", False)
    assert merged["plugin"] == "plugins/fakeplugin.py" and merged["tolerances"] == "fake/tolerances.txt"
    # the command line: top = the current directory, or SYCLFORGE_TOP (the plugin's NoOutput is caught there too)
    (tmp_path / "cwd").mkdir()
    for cwd, args, env in ((tmp_path, ["m1", "m2", "--out", "cli"], SITE),
                           (tmp_path / "cwd", [tmp_path / "m1", tmp_path / "m2", "--out", tmp_path / "cli2"],
                            dict(SITE, SYCLFORGE_TOP=str(tmp_path)))):
        proc = subprocess.run([sys.executable, "-m", "syclforge.numerics", "merge", *map(str, args)], cwd=cwd,
                              env=dict(os.environ, **env), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr
        assert "VIOLATION sq[3] [reference] square fake-t/fake-tc/a on Fake CPU (two)" in proc.stdout
        assert "VIOLATION sq[3] [reference] square fake-t/fake-tc/e on Fake CPU (one): error = inf > threshold 0.0; " \
               "worst: out of device memory" in proc.stdout
    # an explicit plugin wins, and a missing one is named
    proc = subprocess.run([sys.executable, "-m", "syclforge.numerics", "merge", "m1", "--out", "cli3",
                           "--plugin", "nowhere.py"], cwd=tmp_path, env=dict(os.environ, **SITE),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "syclforge: error: nowhere.py: no such numerics plugin" in proc.stderr
    # a recorded plugin that is not under top, or none recorded: named, nothing written
    with pytest.raises(SyclforgeError, match=r"m1/report.json: records the numerics plugin 'plugins/fakeplugin.py', "
                                             r"which is not in .*--plugin PATH"):
        numerics.merge(tmp_path / "elsewhere", tmp_path / "x", [tmp_path / "m1"], log=QUIET)
    rep = json.loads((tmp_path / "m1" / "report.json").read_text())
    del rep["plugin"]
    (tmp_path / "m1" / "report.json").write_text(json.dumps(rep))
    with pytest.raises(SyclforgeError, match=r"m1/report.json: records no numerics plugin .*--plugin PATH"):
        numerics.merge(tmp_path, tmp_path / "x", [tmp_path / "m1"], log=QUIET)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.tmp").exists()


def test_load_plugin_errors_name_the_file(tmp_path):
    with pytest.raises(SyclforgeError, match=r"/absent.py: no such numerics plugin"):
        numerics.load_plugin(tmp_path / "absent.py")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(SyclforgeError, match=r"/broken.py: the numerics plugin failed to import: "
                                             r"ModuleNotFoundError: No module named 'no_such_module_here'"):
        numerics.load_plugin(tmp_path / "broken.py")
    (tmp_path / "half.py").write_text("def cases():\n    return []\n")
    with pytest.raises(SyclforgeError, match=r"/half.py: not a numerics plugin: it defines no run_image\(\)"):
        numerics.load_plugin(tmp_path / "half.py")
    # two plugins of one file name are two modules
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "p.py").write_text(f"WHO = {d!r}\ndef run_image(*a, **k): pass\ndef cases(): return []\n")
    one, two = numerics.load_plugin(tmp_path / "one" / "p.py"), numerics.load_plugin(tmp_path / "two" / "p.py")
    assert (one.WHO, two.WHO) == ("one", "two") and one.__name__ != two.__name__


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


def test_every_op_and_the_model_perturbed_by_3x_its_threshold_is_caught_and_named(scons_numerics, tmp_path):
    """SYCLFORGE_NUMERICS_PERTURB=all: every op's outputs and the model's
    logits and tokens carry an error of 3x their own threshold (exact ops: one
    element changed); every one of their reference rows fails, by 2-4x."""
    spec = _spec(["spirv"])
    spec[0]["files"]["minillm"] = str(REPO / "build" / "cpu-x86" / "bin" / "minillm")
    rep = numerics.run_local(REPO, spec, tmp_path / "p", plugin=PLUGIN, perturb="all", log=lambda m: None)
    assert rep["summary"]["devices_ran"] == 1
    for op in set(cases.ops()) | MODEL_OPS:
        rows = [r for r in rep["comparisons"] if r["op"] == op and r["kind"] == "reference"]
        assert rows and not any(r["pass"] for r in rows), (op, [r for r in rows if r["pass"]][:1])
        for r in rows:
            value, threshold = float(r["value"]), float(r["threshold"])
            if threshold:
                assert 2 <= value / threshold <= 4, (op, r["case"], value / threshold)
            else:
                assert value >= 1, (op, r["case"], value)
        assert any(v.startswith(op + "[") or f"] {op} " in v for v in rep["violations"]), op


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


def test_numerics_with_nothing_buildable_is_a_clear_error():
    # Pinned to a toolchain that can never serve the target, whatever this
    # machine has installed: oneapi-pip (always here) builds no GPU images.
    proc = scons("numerics", "target=nvidia", "toolchain=oneapi-pip", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "numerics: no chosen target can be built here" in proc.stderr
    assert "  nvidia: toolchain=oneapi-pip cannot serve it: cannot produce sm_90" in proc.stderr


def test_the_report_names_the_plugin_under_top_through_a_link(tmp_path):
    """A container's tree links the source in (containers/inside.py): the
    report must name the plugin as seen under the tree's top, or the host's
    merge cannot find it (it named '../../src/...')."""
    (tmp_path / "src" / "plugins").mkdir(parents=True)
    (tmp_path / "src" / "plugins" / "fakeplugin.py").write_text(FAKE_PLUGIN)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "plugins").symlink_to(tmp_path / "src" / "plugins")
    fake = numerics.load_plugin(tree / "plugins" / "fakeplugin.py")
    rep = _fake_run(fake, tree, "out", ["a"])
    assert rep["plugin"] == "plugins/fakeplugin.py"
