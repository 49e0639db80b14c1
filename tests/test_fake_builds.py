"""The SCons glue against fake icpx / intel-llvm / acpp: resolution picks
them for GPU targets, and the builders call them with the exact device flags
of their family file. The fakes record argv and write their -o output."""
import os
import re

import pytest

import fakes
from helpers import copy_checkout, scons


@pytest.fixture
def checkout(tmp_path):
    return copy_checkout(tmp_path / "src")


def env_with(bin_dir, log):
    # Fakes first; the real g++ and the oneapi-pip venv stay reachable.
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_ARGV_LOG": str(log)}


def sycl_calls(log, tool):
    return [argv for argv in fakes.read_argv_log(log) if os.path.basename(argv[0]) == tool
            and "--version" not in argv and "--acpp-version" not in argv]


def test_icpx_builds_nvidia_with_its_device_flags(checkout, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",))
    log = tmp_path / "argv.jsonl"
    proc = scons("target=nvidia", cwd=checkout, env=env_with(os.path.dirname(icpx), log))
    assert re.search(r"^nvidia\s+BUILT\s+icpx\s+sm_90, sm_80, ptx$", proc.stdout, re.M), proc.stdout
    calls = sycl_calls(log, "icpx")
    compiles = [c for c in calls if "-c" in c]
    links = [c for c in calls if "-c" not in c]
    sources = {os.path.basename(a) for c in compiles for a in c if a.endswith(".cpp")}
    assert {"common.cpp", "launch_lambda.cpp", "kl-info.cpp", "minillm.cpp"} <= sources, sources
    assert "free_kernels.cpp" not in sources and "loader_opencl.cpp" not in sources  # runtime-compiler only
    outputs = {os.path.basename(c[c.index("-o") + 1]) for c in links}
    assert outputs == {"libsyclforge_kl.so.tmp", "kl-info.tmp", "minillm.tmp"}, outputs
    for argv in compiles + links:
        assert "-fsycl" in argv and "-fsycl-targets=nvidia_gpu_sm_90,nvidia_gpu_sm_80" in argv, argv
    # The binary's image table (syclforge/fatbin.hpp) says what the driver embedded.
    table = (checkout / "build" / "nvidia" / "obj" / "syclforge" / "syclforge_kl.images.cpp").read_text()
    assert 'syclforge_build_toolchain[] = "icpx"' in table and '{"sm_90", "native", nullptr, 0}' in table
    assert (checkout / "build" / "nvidia" / "bin" / "kl-info").exists()
    assert (checkout / "build" / "nvidia" / "lib" / "libsyclforge_kl.so").exists()
    assert not list((checkout / "build").rglob("*.tmp"))


def test_pinned_acpp_builds_amd_with_acpp_targets(checkout, tmp_path):
    acpp = fakes.fake_acpp(tmp_path / "acpp", backends=("omp", "hip"))
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("hip",))
    log = tmp_path / "argv.jsonl"
    bins = f"{os.path.dirname(acpp)}{os.pathsep}{os.path.dirname(icpx)}"
    proc = scons("target=amd", "toolchain=acpp", cwd=checkout, env=env_with(bins, log))
    assert re.search(r"^amd\s+BUILT\s+acpp\s+gfx942, gfx90a$", proc.stdout, re.M), proc.stdout
    calls = sycl_calls(log, "acpp")
    assert calls and all("--acpp-targets=hip:gfx942,gfx90a" in c for c in calls), calls
    assert not sycl_calls(log, "icpx")  # the pin kept the preferred icpx out


def test_pin_that_cannot_serve_is_skipped_with_reason(checkout, tmp_path):
    acpp = fakes.fake_acpp(tmp_path / "acpp", backends=("omp",))
    log = tmp_path / "argv.jsonl"
    proc = scons("target=nvidia", "toolchain=acpp", cwd=checkout, env=env_with(os.path.dirname(acpp), log))
    assert re.search(r"^nvidia\s+SKIPPED\s+-\s+toolchain=acpp cannot serve it", proc.stdout, re.M), proc.stdout
    strict = scons("target=nvidia", "toolchain=acpp", "strict=1", cwd=checkout,
                   env=env_with(os.path.dirname(acpp), log), check=False)
    assert strict.returncode == 1 and "toolchain=acpp cannot serve it" in strict.stderr


def test_failing_compiler_fails_the_target_and_leaves_no_output(checkout, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",), exit_code=1)
    log = tmp_path / "argv.jsonl"
    proc = scons("target=nvidia", cwd=checkout, env=env_with(os.path.dirname(icpx), log), check=False)
    assert proc.returncode != 0
    assert re.search(r"^nvidia\s+FAILED\s+icpx\s+build/nvidia/\S+: Error 1", proc.stdout, re.M), proc.stdout
    build = checkout / "build" / "nvidia"
    assert not list(build.rglob("*.o")) and not list(build.rglob("*.tmp"))
    assert not (build / "bin" / "kl-info").exists()


def test_explain_says_why_for_every_family(checkout, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=())
    # an empty cache folder: ./install.sh --acpp's build stays out
    proc = scons("explain", "target=nvidia", cwd=checkout,
                 env={**env_with(os.path.dirname(icpx), tmp_path / "log"),
                      "XDG_CACHE_HOME": str(tmp_path / "cache")})
    out = proc.stdout
    assert re.search(r"^  icpx\s+refused: .*libur_adapter_cuda\.so", out, re.M), out
    assert re.search(r"^  acpp\s+refused: not installed", out, re.M), out
    assert re.search(r"^  oneapi-pip\s+refused: cannot produce sm_90, sm_80, ptx", out, re.M), out
    assert re.search(r"^  intel-llvm\s+refused", out, re.M), out


def test_toolchains_json_lists_every_family(checkout, tmp_path):
    import json
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",))
    proc = scons("toolchains", "format=json", cwd=checkout,   # without ./install.sh --acpp's build
                 env={**env_with(os.path.dirname(icpx), tmp_path / "l"),
                      "XDG_CACHE_HOME": str(tmp_path / "cache")})
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) >= {"gcc", "clang", "oneapi-pip", "icpx", "intel-llvm", "acpp"}
    assert rows["icpx"]["available"] and rows["icpx"]["version"] == "2025.1.0"
    assert "nvidia" in rows["icpx"]["targets"] and "amd" not in rows["icpx"]["targets"]
    assert rows["oneapi-pip"]["targets"] == ["cpu-x86"]
    assert not rows["acpp"]["available"] and rows["acpp"]["reason"]
    for r in rows.values():
        assert {"name", "available", "version", "path", "targets"} <= set(r)


def test_icpx_on_cpu_x86_holds_one_native_isa_and_says_so(checkout, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=())
    log = tmp_path / "argv.jsonl"
    proc = scons("target=cpu-x86", "toolchain=icpx", cwd=checkout, env=env_with(os.path.dirname(icpx), log))
    row = re.search(r"^cpu-x86\s+BUILT\s+icpx\s+(.+)$", proc.stdout, re.M)
    assert row and row.group(1) == "avx512, spirv, (not avx2), (not sse4.2)", proc.stdout
    calls = sycl_calls(log, "icpx")
    # the library's objects are position-independent, the programs' are not
    for argv in (c for c in calls if "-c" in c):
        app_object = any(a.endswith(("kl-info.cpp", "minillm.cpp")) for a in argv)
        assert ("-fPIC" in argv) != app_object, argv
    links = [c for c in calls if "-c" not in c]
    for argv in links:
        i = argv.index("-Xsycl-target-backend=spir64_x86_64")
        assert argv[i + 1] == "-march=avx512", argv
        assert "-fsycl-targets=spir64_x86_64,spir64" in argv
    assert any("-shared" in c for c in links)
