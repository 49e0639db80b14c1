"""The real path: oneapi-pip builds cpu-x86 on this machine and kl-info runs
every image this CPU can run. Never skipped: any x86-64 machine has it.
tests/test_isa_paths.py runs the image-choice tests here again as an AVX2 and
an SSE4.2 host (SYCLFORGE_CPU_ISAS), so each path runs on every CPU."""
import re

import pytest

from helpers import REPO, best_image, copy_checkout, cpu_isas, run, scons

KL_INFO = REPO / "build" / "cpu-x86" / "bin" / "kl-info"


@pytest.fixture(scope="session")
def built():
    """`scons target=all` in the repository, as the README says."""
    proc = scons("target=all")
    return proc


# The native images below this process's best, which the loader must try
# and refuse first.
ABOVE = ["avx512", "avx2", "sse4.2"][:["avx512", "avx2", "sse4.2"].index(best_image())]


def test_build_all_summarises_every_target(built):
    out = built.stdout
    assert re.search(r"^cpu-x86\s+BUILT\s+oneapi-pip\s+avx512, avx2, sse4.2, spirv$", out, re.M), out
    # nvidia is built where AdaptiveCpp's CUDA flavour is installed
    # (./install.sh --acpp-cuda: no GPU needed to build), else SKIPPED.
    from syclforge.core import toolchains as tc
    (acpp,) = tc.detect([f for f in tc.load_families(REPO / "toolchains") if f.name == "acpp"])
    cuda = acpp.available and "cuda" in acpp.info.get("backends", [])
    if cuda:
        assert re.search(r"^nvidia\s+BUILT\s+acpp\s+sm_90, sm_80, ptx$", out, re.M), out
    for gpu in ("intel-gpu", "amd") + (() if cuda else ("nvidia",)):
        row = re.search(rf"^{gpu}\s+SKIPPED\s+-\s+(.+)$", out, re.M)
        assert row, f"no SKIPPED row for {gpu}:\n{out}"
        assert len(row.group(1)) > 10  # a reason, not a blank


def test_kl_info_runs_best_native_image(built):
    proc = run([KL_INFO], env={"SYCLFORGE_VERBOSE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = best_image()
    assert re.search(rf'^syclforge: device="[^"]+" image={re.escape(want)}$', proc.stderr, re.M), proc.stderr
    assert re.search(r"^  saxpy\s+PASS", proc.stdout, re.M)
    for image in ABOVE:   # the loader tried the better images first and fell back
        assert re.search(rf"{re.escape(image)}\s+refused: CL_INVALID_BINARY", proc.stdout), proc.stdout


@pytest.mark.parametrize("image", ["spirv"] + cpu_isas())
def test_forced_image_passes(built, image):
    proc = run([KL_INFO], env={"SYCLFORGE_IMAGE": image, "SYCLFORGE_VERBOSE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"image={image}\n" in proc.stderr
    assert "0 failed" in proc.stdout


def test_forcing_an_image_the_cpu_cannot_run_is_a_clear_error(built):
    # As an SSE4.2 host wherever the CPU has more (SYCLFORGE_CPU_ISAS): never a skip.
    proc = run([KL_INFO], env={"SYCLFORGE_IMAGE": "avx512", "SYCLFORGE_CPU_ISAS": "sse4.2"})
    assert proc.returncode == 2
    assert "SYCLFORGE_IMAGE=avx512 cannot run on device" in proc.stderr
    assert "CL_INVALID_BINARY" in proc.stderr
    assert "Traceback" not in proc.stderr and "terminate called" not in proc.stderr


def test_forcing_an_unknown_image_lists_the_real_ones(built):
    proc = run([KL_INFO], env={"SYCLFORGE_IMAGE": "sm_90"})
    assert proc.returncode == 2
    assert "no such image in this binary (it holds: avx512, avx2, sse4.2, spirv)" in proc.stderr


def test_second_build_is_a_noop(built):
    proc = scons("target=all", "--debug=explain")
    assert "Rebuilding" not in proc.stdout and "because" not in proc.stdout, proc.stdout
    for step in ("CXX ", "SPIRV ", "AOT ", "LINK "):
        assert step not in proc.stdout, proc.stdout
    assert re.search(r"^cpu-x86\s+BUILT", proc.stdout, re.M)


def test_clean_checkout_rebuilds_from_cache(built, tmp_path):
    cache = tmp_path / "cache"
    first = copy_checkout(tmp_path / "a")
    scons("target=cpu-x86", f"cache={cache}", cwd=first)
    second = copy_checkout(tmp_path / "b")
    proc = scons("target=cpu-x86", f"cache={cache}", cwd=second)
    assert "Retrieved" in proc.stdout, proc.stdout
    for step in ("CXX ", "SPIRV ", "AOT ", "LINK "):
        assert step not in proc.stdout, proc.stdout
    prog = second / "build" / "cpu-x86" / "bin" / "kl-info"
    assert run([prog]).returncode == 0
