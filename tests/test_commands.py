"""Exact command lines for each single-source family x each shipped target,
built from the family files, and run against the fakes."""
import os
import subprocess
from pathlib import Path

import pytest

import fakes
from syclforge.core import toolchains as tc
from syclforge.core.commands import compile_command, device_flags, link_command
from syclforge.core import commands
from syclforge.errors import SyclforgeError
from syclforge.core.model import Image, Target

REPO = Path(__file__).resolve().parent.parent
FAMILIES = {f.name: f for f in tc.load_families(REPO / "toolchains")}

from shipped import AMD, CPU_X86, INTEL_GPU, NVIDIA
TARGETS = {t.name: t for t in (CPU_X86, INTEL_GPU, NVIDIA, AMD)}


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """Detected icpx, intel-llvm and acpp (fakes with every plugin/backend)."""
    root = tmp_path_factory.mktemp("tools")
    icpx = fakes.fake_icpx(root / "oneapi", plugins=("cuda", "hip"))
    llvm = fakes.fake_intel_llvm(root / "dpcpp", plugins=("cuda", "hip"))
    acpp = fakes.fake_acpp(root / "acpp", backends=("omp", "cuda", "hip"))
    env = fakes.fake_env(*(Path(p).parent for p in (icpx, llvm, acpp)))
    found = {d.name: d for d in tc.detect([FAMILIES[n] for n in ("icpx", "intel-llvm", "acpp")],
                                          environ=env)}
    assert all(d.available for d in found.values()), [d.reason for d in found.values()]
    return found


# Device flags per target, as given at link time; compile time drops the
# -Xsycl-target-backend pair. (DPC++: UsersManual.md -fsycl-targets and
# -Xsycl-target-backend; AdaptiveCpp: using-acpp.md --acpp-targets.)
DPCPP_LINK = {
    "cpu-x86": ["-fsycl", "-fsycl-targets=spir64_x86_64,spir64",
                "-Xsycl-target-backend=spir64_x86_64", "-march=avx512"],
    "intel-gpu": ["-fsycl", "-fsycl-targets=intel_gpu_pvc,intel_gpu_dg2_g10,spir64"],
    "nvidia": ["-fsycl", "-fsycl-targets=nvidia_gpu_sm_90,nvidia_gpu_sm_80"],
    "amd": ["-fsycl", "-fsycl-targets=amd_gpu_gfx942,amd_gpu_gfx90a"],
}
DPCPP_COMPILE = {
    "cpu-x86": ["-fsycl", "-fsycl-targets=spir64_x86_64,spir64"],
    "intel-gpu": DPCPP_LINK["intel-gpu"],
    "nvidia": DPCPP_LINK["nvidia"],
    "amd": DPCPP_LINK["amd"],
}
ACPP = {
    "nvidia": ["--acpp-targets=cuda:sm_90,sm_80"],
    "amd": ["--acpp-targets=hip:gfx942,gfx90a"],
}

CASES = ([("icpx", t) for t in TARGETS] + [("intel-llvm", t) for t in TARGETS]
         + [("acpp", t) for t in ACPP])


@pytest.mark.parametrize("family,target", CASES)
def test_exact_command_lines(tools, family, target):
    d = tools[family]
    t = TARGETS[target]
    exe = d.path
    if family == "acpp":
        link_dev = compile_dev = ACPP[target]
    else:
        link_dev, compile_dev = DPCPP_LINK[target], DPCPP_COMPILE[target]
    assert device_flags(d, t) == link_dev
    fixed = ["-std=c++17", "-O3"] if family == "acpp" else ["-std=c++17"]
    assert compile_command(d, t, "kernels/saxpy.cpp", "build/saxpy.o",
                           includes=["include", "/opt/x/include"], defines=["NDEBUG", "N=4"],
                           extra=["-O2"]) == [
        exe, *fixed, *compile_dev, "-Iinclude", "-I/opt/x/include", "-DNDEBUG", "-DN=4",
        "-O2", "-c", "kernels/saxpy.cpp", "-o", "build/saxpy.o"]
    assert link_command(d, t, ["a.o", Path("b.o")], "build/app",
                        libdirs=["/opt/lib"], libs=["m", ":libfoo.so.2"],
                        rpaths=["$ORIGIN"]) == [
        exe, *link_dev, "a.o", "b.o", "-o", "build/app", "-L/opt/lib", "-Wl,-rpath,$ORIGIN",
        "-lm", "-l:libfoo.so.2"]
    assert link_command(d, t, ["a.o"], "libk.so", shared=True) == [
        exe, "-shared", *link_dev, "a.o", "-o", "libk.so"]


@pytest.mark.parametrize("target", ["intel-gpu"])
def test_acpp_refuses_intel_gpus(tools, target):
    with pytest.raises(SyclforgeError) as e:
        device_flags(tools["acpp"], TARGETS[target])
    assert str(e.value).startswith(f"acpp cannot build {target}: cannot produce ")


def test_acpp_builds_one_module_per_x86_isa(tools):
    # The omp flow compiles one ISA per binary: the binary's own flags carry
    # no -march, each module adds its ISA's x86-64 level (toolchains/acpp.yaml).
    d = tools["acpp"]
    assert commands.uses_modules(d, CPU_X86) and not commands.uses_modules(d, NVIDIA)
    assert commands.compile_flags(d, CPU_X86) == ["-std=c++17", "-O3", "--acpp-targets=omp.library-only"]
    for isa, level in (("avx512", "v4"), ("avx2", "v3"), ("sse4.2", "v2")):
        assert commands.module_compile_flags(d, CPU_X86, isa) == [
            "-std=c++17", "-O3", "--acpp-targets=omp.library-only", f"-march=x86-64-{level}"]
        assert commands.module_link_flags(d, CPU_X86, isa) == [
            "--acpp-targets=omp.library-only", f"-march=x86-64-{level}"]
    with pytest.raises(SyclforgeError, match="makes no spirv module"):
        commands.module_compile_flags(d, CPU_X86, "spirv")
    with pytest.raises(SyclforgeError, match="not as modules"):
        commands.module_compile_flags(tools["icpx"], CPU_X86, "avx2")


def test_one_module_per_x86_isa(tools):
    d = tools["icpx"]
    assert device_flags(d, CPU_X86, images=["avx2"]) == [
        "-fsycl", "-fsycl-targets=spir64_x86_64", "-Xsycl-target-backend=spir64_x86_64",
        "-march=avx2"]
    assert device_flags(d, CPU_X86, images=["sse4.2", "spirv"]) == [
        "-fsycl", "-fsycl-targets=spir64_x86_64,spir64", "-Xsycl-target-backend=spir64_x86_64",
        "-march=sse4.2"]
    assert device_flags(d, CPU_X86, images=["spirv"]) == ["-fsycl", "-fsycl-targets=spir64"]
    with pytest.raises(SyclforgeError, match="at most 1 native x86 image"):
        device_flags(d, CPU_X86, images=["avx512", "avx2"])
    with pytest.raises(SyclforgeError, match="cannot produce avx10"):
        device_flags(d, CPU_X86, images=["avx10"])


def test_portable_ptx_comes_with_the_natives(tools):
    # ptx has no flag of its own: the CUDA fatbin of each arch carries it.
    assert device_flags(tools["icpx"], NVIDIA, images=["sm_80", "ptx"]) == [
        "-fsycl", "-fsycl-targets=nvidia_gpu_sm_80"]
    assert device_flags(tools["acpp"], NVIDIA, images=["sm_90"]) == ["--acpp-targets=cuda:sm_90"]


def test_runtime_compiler_and_unavailable_toolchains_have_no_commands(tools):
    pip = tc.Detected("oneapi-pip", FAMILIES["oneapi-pip"], True, version="2025.3.3",
                      path="/venv", capabilities={"x86": ["avx512", "avx2", "sse4.2", "spirv"]})
    with pytest.raises(SyclforgeError, match="oneapi-pip is a runtime-compiler toolchain"):
        compile_command(pip, CPU_X86, "a.cpp", "a.o")
    gone = tc.Detected("icpx", FAMILIES["icpx"], False, reason="not installed: no icpx on PATH")
    with pytest.raises(SyclforgeError, match="icpx is not available: not installed"):
        link_command(gone, NVIDIA, ["a.o"], "app")


def test_icpx_without_cuda_plugin_cannot_make_nvidia_commands(tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=())
    (d,) = tc.detect([FAMILIES["icpx"]], environ=fakes.fake_env(Path(icpx).parent))
    with pytest.raises(SyclforgeError) as e:
        device_flags(d, NVIDIA)
    assert str(e.value).startswith("icpx cannot build nvidia: cannot produce sm_90, sm_80, ptx: "
                                   "needs Codeplay's oneAPI for NVIDIA GPUs plugin")


def test_commands_run_against_the_fakes(tools, tmp_path):
    """The argv runs as is; the fake logs it and writes the -o file."""
    log = tmp_path / "argv.log"
    env = {**os.environ, "FAKE_ARGV_LOG": str(log)}
    d = tools["intel-llvm"]
    obj, app = tmp_path / "obj" / "k.o", tmp_path / "bin" / "app"
    cc = compile_command(d, NVIDIA, "k.cpp", obj)
    ld = link_command(d, NVIDIA, [obj], app)
    for argv in (cc, ld):
        subprocess.run(argv, env=env, check=True)
    assert obj.is_file() and app.is_file()
    assert fakes.read_argv_log(log) == [cc, [str(a) for a in ld]]
    failing = fakes.make_fake(tmp_path / "broken", "icpx", fakes.icpx_version_text(), exit_code=1)
    result = subprocess.run([failing, "-c", "k.cpp", "-o", str(tmp_path / "never.o")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "fake failure" in result.stderr
    assert not (tmp_path / "never.o").exists()
