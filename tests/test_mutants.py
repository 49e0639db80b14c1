"""The mutation suite (kernels/python/mutants.py): every realistic defect the
kernel library (KL_FAULTS, kernels/ops/faults.hpp) and minillm
(MINILLM_FAULTS) can switch on is caught by the op's own tests and by the
numerics report, which names the op; the switches themselves refuse unknown
names, and the README's mutant table lists every mutant."""
import os
import re
import sys

import pytest

from helpers import REPO, run, scons

sys.path.insert(0, str(REPO / "kernels" / "python"))
import cases  # noqa: E402
import mutants  # noqa: E402
import syclforge_kl  # noqa: E402


@pytest.fixture(scope="module")
def built():
    scons("target=cpu-x86")
    return mutants.mutants()


@pytest.fixture(scope="module")
def results(built):
    """The whole suite, two mutants at a time (each runs its own processes)."""
    from concurrent.futures import ThreadPoolExecutor
    image = mutants.default_image()
    with ThreadPoolExecutor(2) as pool:
        return {r["mutant"]: r for r in pool.map(lambda m: mutants.check(m, image), built)}


def test_every_op_has_mutants_and_every_fault_is_in_the_suite(built):
    names = [m.name for m in built]
    assert len(names) == len(set(names))
    # the built library's list is the header's (mutants() reads the header, and refuses a fault it cannot place)
    assert syclforge_kl.faults(mutants.LIB) == mutants.source_faults()
    assert set(mutants.source_faults()) <= set(names)
    covered = {op for m in built for op in m.ops}
    assert set(cases.ops()) <= covered, sorted(set(cases.ops()) - covered)
    assert {"model_tokens", "model_logits"} <= covered
    # the kinds of defect the suite must hold, by name
    for kind in ("tail_dropped", "off_by_one", "eps", "scale", "no_max_subtraction", "half_accumulator",
                 "kv_interleaved", "kv_repeated", "approx_exp", "approx_erf"):
        assert any(kind in n for n in names), kind
    for model in ("model.rms_norm_eps", "model.fp16_weights", "model.rope_theta", "model.gqa_interleaved"):
        assert model in names


@pytest.mark.parametrize("name", [m.name for m in mutants.mutants()])
def test_the_mutant_is_caught_by_the_op_tests_and_the_report(results, name):
    r = results[name]
    assert r["tests_failed"] > 0, f"{name}: every test of {r['ops']} passes with it switched on"
    assert r["rows_failed"] > 0, f"{name}: every numerics row of {r['ops']} passes with it switched on"
    assert r["violations"] > 0 and r["worst_ratio"] > 1, r


def test_an_unknown_fault_is_an_error_naming_the_known_ones(built):
    env = dict(KL_FAULTS="softmax.no_max_subtraction,sofmax.typo")
    proc = run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO / 'kernels' / 'python')!r}); "
                                      "import syclforge_kl; syclforge_kl.Runtime()"], env=env)
    assert proc.returncode != 0
    assert "KL_FAULTS: unknown fault 'sofmax.typo'" in proc.stderr and "softmax.no_max_subtraction" in proc.stderr
    proc = run([mutants.MINILLM, "-m", REPO / "models" / "tiny-fortunes", "-p", "The ", "-n", 1],
               env={"MINILLM_FAULTS": "fp16"})
    assert proc.returncode != 0 and "MINILLM_FAULTS: unknown fault 'fp16'" in proc.stderr


def test_without_faults_the_suite_passes(built):
    """The mutants' own baseline: the same op tests and report rows pass."""
    clean = mutants.Mutant("none", {}, sorted(set(cases.ops())), ["tests/test_kernels.py", "-k", "test_sum"], "")
    failed, passed = mutants.run_tests(clean)
    assert failed == 0 and passed > 0
    bad, worst, named = mutants.run_numerics(clean, mutants.default_image())
    assert bad == 0 and worst <= 1 and not named


def test_readme_table_lists_every_mutant(built):
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Mutation testing", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w.]+)` \|", section, re.M))
    assert {m.name for m in built} == listed
