"""AdaptiveCpp's CUDA flavour as `./install.sh --acpp-cuda` builds it
(README.md, "AdaptiveCpp"; ../shared/ENVIRONMENT.md, "SYCL on an NVIDIA H200:
AdaptiveCpp's CUDA flow"): a CUDA 12.4 SDK assembled from PyPI wheels, with a
fatbinary wrapper around CUDA 13's and a libcuda.so link stub, then
AdaptiveCpp with its CUDA backend against it.

Without a GPU and without the flavour installed: the wrapper's argument
rewriting (against a fake fatbinary that records its argv), the stub's
symbols (compiled here, read with nm -D; every driver function the vendored
AdaptiveCpp's CUDA backend calls), the group.hpp source fix, and install.sh's
--acpp-cuda failing softly when CUDA 13's fatbinary is missing.

With the flavour installed (else they skip, naming why): the SDK's layout,
the plugin's link (libcuda.so.1 from the driver, the stub unreachable),
detection reporting the cuda backend and claiming nvidia (sm_90, sm_80, ptx),
`scons explain target=nvidia` accepting acpp, a real compile for
cuda:sm_90,sm_80 whose cubins and PTX are read from the binary with cuobjdump,
and the project's own nvidia build with acpp. Nothing here runs on a GPU.
"""
import json
import os
import re
import shutil
import subprocess
import tarfile
import warnings
from pathlib import Path

import pytest

from helpers import copy_checkout, install_sh_checkout, run, scons
from syclforge.core import toolchains as tc

REPO = Path(__file__).resolve().parent.parent
PIECES = REPO / "toolchains" / "acpp-cuda"
SCONS = REPO / ".venv" / "bin" / "scons"
VENDOR = REPO.parent / "shared" / "vendor"
DRIVER_CALL = re.compile(r"\b(cu[A-Z]\w*)\s*\(")


def _tools_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME", "~"), ".cache")
    return Path(os.path.expanduser(cache)) / "syclforge" / "toolchains"


def _compiler():
    for cc in ("clang-19", "cc", "gcc"):
        if shutil.which(cc):
            return cc
    pytest.skip("needs a C compiler (clang-19: ./install.sh --acpp installs it)")


def _vendored_archive():
    hits = sorted(VENDOR.glob("AdaptiveCpp-*.tar.gz"))
    if not hits:
        pytest.skip(f"no AdaptiveCpp-*.tar.gz in {VENDOR}")
    return hits[-1]


def _members(archive, pattern):
    """{path inside the source tree: text} of the archive's files matching pattern."""
    out = {}
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            rel = m.name.split("/", 1)[-1]
            if m.isfile() and re.fullmatch(pattern, rel):
                out[rel] = t.extractfile(m).read().decode(errors="replace")
    return out


# --------------------------------------------------------------------------
# The fatbinary wrapper (toolchains/acpp-cuda/fatbinary.in)

@pytest.fixture
def wrapper(tmp_path):
    """The wrapper as install.sh renders it, calling a fake fatbinary that
    writes its argv, one argument a line, and exits 3."""
    log = tmp_path / "argv.txt"
    fake = tmp_path / "cuda13" / "fatbinary"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{log}'\nexit 3\n")
    fake.chmod(0o755)
    out = tmp_path / "sdk" / "bin" / "fatbinary"
    out.parent.mkdir(parents=True)
    # what install.sh does: sed "s|@FATBINARY@|$fatbinary_real|"
    subprocess.run(f"sed 's|@FATBINARY@|{fake}|' '{PIECES / 'fatbinary.in'}' > '{out}'", shell=True, check=True)
    out.chmod(0o755)
    return out, log


def test_fatbinary_wrapper_rewrites_clangs_image_arguments(wrapper, tmp_path):
    out, log = wrapper
    odd = tmp_path / "a dir, with space" / "k.cubin"   # kept whole, commas and all
    # what clang 19 runs (clang/lib/Driver/ToolChains/Cuda.cpp, NVPTX::FatBinary)
    argv = ["--cuda", "-64", "--create", "/tmp/x.fatbin", "-g",
            "--image=profile=sm_90,file=/tmp/x-sm_90.cubin",
            "--image=profile=compute_90,file=/tmp/x-sm_90.s",
            "--image=profile=sm_80,file=/tmp/x-sm_80.cubin",
            "--image=profile=compute_80,file=/tmp/x-sm_80.s",
            "--image=profile=sm_90a,file=/tmp/y.cubin",
            f"--image=profile=sm_75,file={odd}"]
    proc = subprocess.run([str(out), *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, proc.stderr            # the real one's status, passed on
    assert log.read_text().splitlines() == [
        "--cuda", "-64", "--create", "/tmp/x.fatbin", "-g",
        "--image3=kind=elf,sm=90,file=/tmp/x-sm_90.cubin",
        "--image3=kind=ptx,sm=90,file=/tmp/x-sm_90.s",
        "--image3=kind=elf,sm=80,file=/tmp/x-sm_80.cubin",
        "--image3=kind=ptx,sm=80,file=/tmp/x-sm_80.s",
        "--image3=kind=elf,sm=90a,file=/tmp/y.cubin",
        f"--image3=kind=elf,sm=75,file={odd}"]


def test_fatbinary_wrapper_passes_everything_else_through(wrapper):
    out, log = wrapper
    argv = ["--image3=kind=elf,sm=90,file=a.cubin", "--image2=kind=elf,file=b.o", "--version", "",
            "--image=profile=sm_90"]                  # no file=: not clang's form, left alone
    proc = subprocess.run([str(out), *argv], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert log.read_text().split("\n")[:-1] == argv


# --------------------------------------------------------------------------
# The libcuda link stub (toolchains/acpp-cuda/libcuda_stub.c)

NEEDED_BY_THE_BACKEND = {"cuLaunchKernel", "cuModuleGetFunction", "cuModuleLoadDataEx", "cuModuleUnload"}


def _defined(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                         check=True).stdout
    return {f[2] for f in (l.split() for l in out.splitlines()) if len(f) == 3 and f[1] == "T"}


def _soname(lib):
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[(.*)\]", out)
    return m and m.group(1)


def test_stub_defines_the_driver_functions_under_soname_libcuda_so_1(tmp_path):
    lib = tmp_path / "libcuda.so"
    # as install.sh compiles it
    subprocess.run([_compiler(), "-shared", "-fPIC", "-O2", "-Wl,-soname,libcuda.so.1", "-o", str(lib),
                    str(PIECES / "libcuda_stub.c")], check=True, capture_output=True, timeout=120)
    assert _soname(lib) == "libcuda.so.1"
    assert NEEDED_BY_THE_BACKEND <= _defined(lib)


def test_stub_covers_every_driver_call_of_the_vendored_cuda_backend():
    """The source the stub stands in for: every cu*() the CUDA backend of
    the vendored AdaptiveCpp calls is one the stub defines (install.sh also
    checks the built plugin's undefined symbols)."""
    sources = _members(_vendored_archive(), r"src/runtime/cuda/.*\.(cpp|hpp)")
    assert sources, "no src/runtime/cuda/ in the archive"
    calls = {name for text in sources.values() for name in DRIVER_CALL.findall(text)}
    assert calls == NEEDED_BY_THE_BACKEND, calls
    stub = (PIECES / "libcuda_stub.c").read_text()
    assert all(f"STUB({name})" in stub for name in calls)


# --------------------------------------------------------------------------
# The group.hpp fix (toolchains/acpp-cuda/patch_group_eq.py)

GROUP_HPP = "include/hipSYCL/sycl/libkernel/group.hpp"


def _patch(root):
    return subprocess.run(["python3", str(PIECES / "patch_group_eq.py"), str(root)], capture_output=True,
                          text=True, timeout=60)


def test_group_eq_fix_applies_once_to_the_vendored_source(tmp_path):
    (text,) = _members(_vendored_archive(), re.escape(GROUP_HPP)).values()
    header = tmp_path / GROUP_HPP
    header.parent.mkdir(parents=True)
    header.write_text(text)
    first = _patch(tmp_path)
    assert first.returncode == 0 and "patched" in first.stdout, first.stderr
    patched = header.read_text()
    body = patched[patched.index("friend bool operator==("):]
    body = body[:body.index("friend bool operator!=(")]
    assert "#ifdef HIPSYCL_ONDEMAND_ITERATION_SPACE_INFO" in body
    ondemand = body[:body.index("#else")]
    assert "get_group_id()" in ondemand and "get_local_range()" in ondemand and "get_group_range()" in ondemand
    assert not re.search(r"\b(_num_groups|_group_id|_local_range)\b", ondemand), ondemand   # members it lacks
    assert "lhs._num_groups == rhs._num_groups" in body[body.index("#else"):]   # other flows: as before
    assert patched.replace(body, "") == text.replace(text[text.index("friend bool operator==("):
                                                          text.index("friend bool operator!=(")], "")
    again = _patch(tmp_path)                  # idempotent
    assert again.returncode == 0 and "already patched" in again.stdout
    assert header.read_text() == patched


def test_group_eq_fix_fails_loudly_where_it_does_not_apply(tmp_path):
    header = tmp_path / GROUP_HPP
    header.parent.mkdir(parents=True)
    header.write_text("// some other AdaptiveCpp\n")
    proc = _patch(tmp_path)
    assert proc.returncode != 0
    assert f"{header}: group::operator== is not as in AdaptiveCpp 24.06" in proc.stderr
    assert header.read_text() == "// some other AdaptiveCpp\n"
    missing = _patch(tmp_path / "nowhere")
    assert missing.returncode != 0 and "cannot read" in missing.stderr


# --------------------------------------------------------------------------
# install.sh --acpp-cuda, without building (a copy, as tests/test_acpp.py does)

def _checkout(tmp_path):
    return install_sh_checkout(tmp_path, folders=["toolchains/acpp-cuda"])


def test_install_sh_usage_names_acpp_cuda(tmp_path):
    co, env = _checkout(tmp_path)
    proc = subprocess.run(["bash", str(co / "install.sh"), "--help"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert "usage: ./install.sh [--containers] [--acpp [ARCHIVE]] [--acpp-cuda [ARCHIVE]]" in proc.stderr
    text = (REPO / "install.sh").read_text()
    assert re.search(r"^# --acpp-cuda +also AdaptiveCpp with its CUDA backend", text, re.M)


def test_install_sh_builds_both_flavours_from_one_archive_only(tmp_path):
    co, env = _checkout(tmp_path)
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp", str(a), "--acpp-cuda", str(b)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--acpp-cuda {b}: --acpp and --acpp-cuda build from one archive (already {a})" in proc.stderr


def test_without_cuda_13s_fatbinary_the_cuda_flavour_says_why_and_install_goes_on(tmp_path):
    co, env = _checkout(tmp_path)
    archive = tmp_path / "AdaptiveCpp-fake.tar.gz"
    archive.write_bytes(b"never extracted")
    env["SYCLFORGE_CUDA_FATBINARY"] = str(tmp_path / "no-cuda-13" / "fatbinary")
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp-cuda", str(archive)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    why = f"no CUDA 13 fatbinary at {tmp_path / 'no-cuda-13' / 'fatbinary'}"
    assert f"AdaptiveCpp with CUDA NOT installed: {why}" in proc.stderr
    assert f"done, except AdaptiveCpp with CUDA: {why}" in proc.stderr
    assert "installing syclforge" in proc.stdout          # the rest was done
    assert "[cuda-sdk" not in proc.stdout and "[acpp" not in proc.stdout
    tools = tmp_path / "cache" / "syclforge" / "toolchains"
    assert not tools.exists() or not list(tools.iterdir())


def test_a_failed_sdk_assembly_leaves_nothing_and_builds_no_acpp(tmp_path):
    # the stand-in .venv's python downloads nothing: the SDK cannot be laid out
    co, env = _checkout(tmp_path)
    archive = tmp_path / "AdaptiveCpp-fake.tar.gz"
    archive.write_bytes(b"never extracted")
    fat = tmp_path / "cuda13" / "fatbinary"
    fat.parent.mkdir()
    fat.write_text("#!/bin/sh\nexit 0\n")
    fat.chmod(0o755)
    env["SYCLFORGE_CUDA_FATBINARY"] = str(fat)
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp-cuda", str(archive)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[cuda-sdk 1/3] downloading" in proc.stdout
    assert "AdaptiveCpp with CUDA NOT installed: assembling the CUDA 12.4 SDK failed" in proc.stderr
    assert "[acpp" not in proc.stdout
    tools = tmp_path / "cache" / "syclforge" / "toolchains"
    assert sorted(p.name for p in tools.iterdir() if not p.name.endswith(".log")) == []


# --------------------------------------------------------------------------
# Real: the CUDA flavour install.sh built (skips where there is none)

def _versions():
    """(acpp, its --acpp-version text) for every acpp on PATH or in the
    cache (newest first, as detection orders them)."""
    found = [shutil.which("acpp")] + sorted(
        (str(p) for p in _tools_dir().glob("acpp-*/bin/acpp")),
        key=lambda p: -os.stat(Path(p).parent.parent).st_mtime)
    out = []
    for exe in dict.fromkeys(p for p in found if p):
        try:
            proc = subprocess.run([exe, "--acpp-version"], capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        out.append((exe, proc.stdout + proc.stderr))
    return out


def _why_not_built():
    logs = sorted(_tools_dir().glob("*.log"), key=lambda p: p.stat().st_mtime)
    for log in reversed(logs):
        if not (log.parent / log.name[:-len(".log")]).is_dir():
            tail = [l for l in log.read_text(errors="replace").splitlines() if l.strip()][-1:]
            return f"; the last build that did not finish: {log} ({' '.join(tail)})"
    return ""


@pytest.fixture(scope="module")
def cuda_acpp():
    """(acpp, its installation, the CUDA SDK it compiles with)."""
    for exe, text in _versions():
        if "librt-backend-cuda.so" in text:
            prefix = Path(exe).resolve().parent.parent
            cfg = json.loads((prefix / "etc" / "AdaptiveCpp" / "acpp-cuda.json").read_text())
            return exe, prefix, Path(cfg["default-cuda-path"])
    why = (f"no AdaptiveCpp with a CUDA backend (./install.sh --acpp-cuda) on PATH or in "
           f"{_tools_dir()}/acpp-*{_why_not_built()}")
    warnings.warn(f"tests/test_acpp_cuda.py: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def cuobjdump(cuda_acpp):
    for c in (cuda_acpp[2] / "bin" / "cuobjdump", shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"):
        if c and os.access(c, os.X_OK):
            return str(c)
    pytest.skip("no cuobjdump (the SDK's bin/, PATH or /usr/local/cuda/bin)")


def test_the_sdk_is_laid_out_as_clang_and_cmake_want_it(cuda_acpp):
    _, _, sdk = cuda_acpp
    assert sdk.parent == _tools_dir() and re.fullmatch(r"cuda-12\.4-[0-9a-f]{16}", sdk.name), sdk
    for rel in ("include/cuda.h", "include/cuda_runtime.h", "include/cuda/std/type_traits",
                "include/fatbinary_section.h", "nvvm/libdevice/libdevice.10.bc"):
        assert (sdk / rel).is_file(), rel
    assert (sdk / "include" / "curand_mtgp32_kernel.h").read_bytes() == b""
    assert (sdk / "version.txt").read_text() == "CUDA Version 12.4.127\n"
    for tool in ("ptxas", "fatbinary", "cuobjdump"):
        assert os.access(sdk / "bin" / tool, os.X_OK), tool
    ptxas = subprocess.run([str(sdk / "bin" / "ptxas"), "--version"], capture_output=True, text=True)
    assert "release 12.4" in ptxas.stdout, ptxas.stdout
    # the wrapper is toolchains/acpp-cuda/fatbinary.in, calling an executable fatbinary
    wrapper = (sdk / "bin" / "fatbinary").read_text()
    (real,) = re.findall(r"^real='(.*)'$", wrapper, re.M)
    assert wrapper == (PIECES / "fatbinary.in").read_text().replace("@FATBINARY@", real)
    assert os.access(real, os.X_OK), real
    lib64 = sdk / "lib64"
    assert os.readlink(lib64 / "libcudart.so") == "libcudart.so.12" and (lib64 / "libcudart.so.12").is_file()
    # the link stub: stub/libcuda.so alone, and no libcuda anywhere else
    assert sorted(p.name for p in (sdk / "stub").iterdir()) == ["libcuda.so"]
    assert _soname(sdk / "stub" / "libcuda.so") == "libcuda.so.1"
    assert NEEDED_BY_THE_BACKEND <= _defined(sdk / "stub" / "libcuda.so")
    assert [str(p.relative_to(sdk)) for p in sdk.rglob("libcuda.so*")] == ["stub/libcuda.so"]


def test_the_backend_plugin_needs_the_drivers_libcuda_and_cannot_reach_the_stub(cuda_acpp):
    _, prefix, sdk = cuda_acpp
    plugin = prefix / "lib" / "hipSYCL" / "librt-backend-cuda.so"
    dyn = subprocess.run(["readelf", "-d", str(plugin)], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", dyn)
    assert "libcuda.so.1" in needed and "libcudart.so.12" in needed, needed
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(plugin)], capture_output=True, text=True,
                               check=True).stdout
    calls = {l.split()[-1] for l in undefined.splitlines() if re.match(r"\s*U cu[A-Z]", l)}
    assert calls and calls <= _defined(sdk / "stub" / "libcuda.so"), calls
    # whatever its RUNPATH names, no folder there holds a libcuda.so.1: at
    # run time the loader finds the driver's or none (never the stub)
    (runpath,) = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dyn)
    for d in runpath.split(":"):
        d = d.replace("$ORIGIN", str(plugin.parent))
        assert not os.path.exists(os.path.join(d, "libcuda.so.1")), d
    # nor is any libcuda part of the installation (release bundles carry from it)
    assert not list(prefix.rglob("libcuda.so*"))


def test_detection_reports_the_cuda_backend_and_claims_nvidia(cuda_acpp):
    exe, _, _ = cuda_acpp
    env = dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    families = tc.load_families(REPO / "toolchains")
    (det,) = tc.detect([f for f in families if f.name == "acpp"], environ=env)
    assert det.available and det.path == exe, (det.path, det.reason)
    assert det.version == "24.06.0"
    assert {"omp", "cuda"} <= set(det.info["backends"]), det.info["backends"]
    for image in ("sm_90", "sm_80", "ptx"):
        assert det.can_produce("nvidia", image), det.capabilities
    assert det.can_produce("x86", "avx2")               # the OpenMP backend is still there


def test_scons_explain_accepts_acpp_for_nvidia(cuda_acpp):
    exe, _, _ = cuda_acpp
    env = dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(SCONS), "-Q", "explain", "target=nvidia"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (line,) = [l for l in proc.stdout.splitlines() if l.split()[:1] == ["acpp"]]
    assert line.split(None, 1)[1] == "ACCEPTED: builds sm_90, sm_80, ptx", proc.stdout
    assert f"Selected acpp 24.06.0 ({exe}): images sm_90, sm_80, ptx" in proc.stdout, proc.stdout


def _fatbin_entries(cuobjdump, binary):
    """[(kind, arch)] of the fat binary's entries, as cuobjdump reads them
    from the file: ('elf', 'sm_90'), ('ptx', 'sm_90'), ..."""
    out = subprocess.run([cuobjdump, str(binary)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.findall(r"^Fatbin (elf|ptx) code:\n=+\narch = (sm_\w+)$", out.stdout, re.M)


def test_a_cuda_compile_holds_sm_90_and_sm_80_cubins_and_their_ptx(cuda_acpp, cuobjdump, tmp_path):
    exe, _, _ = cuda_acpp
    binary = tmp_path / "check_reduce"
    proc = subprocess.run([exe, "-O3", "--acpp-targets=cuda:sm_90,sm_80", str(PIECES / "check_reduce.cpp"),
                           "-o", str(binary)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entries = _fatbin_entries(cuobjdump, binary)
    assert sorted(set(entries)) == [("elf", "sm_80"), ("elf", "sm_90"), ("ptx", "sm_80"), ("ptx", "sm_90")], \
        entries
    listing = subprocess.run([cuobjdump, "--list-elf", "--list-ptx", str(binary)], capture_output=True,
                             text=True, check=True).stdout
    assert re.search(r"^ELF file +\d+: \S+\.sm_90\.cubin$", listing, re.M), listing
    assert re.search(r"^ELF file +\d+: \S+\.sm_80\.cubin$", listing, re.M), listing
    ptx = subprocess.run([cuobjdump, "-ptx", str(binary)], capture_output=True, text=True, check=True).stdout
    assert {".target sm_80", ".target sm_90"} <= set(re.findall(r"^\.target sm_\d+", ptx, re.M))
    # the kernel itself is there: a group reduction needs a barrier and shared memory
    assert "bar.sync" in ptx and ".shared" in ptx


def test_scons_builds_the_nvidia_target_with_acpp(cuda_acpp, cuobjdump, tmp_path):
    """The project's own nvidia build (the kernel library, kl-info, minillm)
    through acpp's cuda flow, in a copy of the checkout: every source is
    compiled for the devices too (host-only code such as the x86 CPU
    builtins must stay out of their way), and the library holds the sm_90
    and sm_80 cubins and their PTX."""
    exe, _, _ = cuda_acpp
    co = copy_checkout(tmp_path / "co")
    env = {"PATH": f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = scons("target=nvidia", "toolchain=acpp", cwd=co, env=env, timeout=1800)
    assert re.search(r"^nvidia\s+BUILT\s+acpp\s+sm_90, sm_80, ptx$", proc.stdout, re.M), proc.stdout[-3000:]
    entries = _fatbin_entries(cuobjdump, co / "build" / "nvidia" / "lib" / "libsyclforge_kl.so")
    assert sorted(set(entries)) == [("elf", "sm_80"), ("elf", "sm_90"), ("ptx", "sm_80"), ("ptx", "sm_90")], \
        entries
    # No GPU here: a GPU target's program refuses to run rather than fall
    # back to AdaptiveCpp's OpenMP host device, and names what it found.
    info = run([co / "build" / "nvidia" / "bin" / "kl-info"], env={"ACPP_DEBUG_LEVEL": "1"}, timeout=600)
    assert info.returncode != 0, info.stdout[-3000:]
    assert ("target nvidia needs a GPU, and the SYCL runtime (acpp) finds none (devices: AdaptiveCpp OpenMP "
            "host device)") in info.stderr, info.stderr

    # The release bundle: the runtime an nvidia machine lacks, carried;
    # never the link stub (libcuda.so.1 is the driver's).
    subprocess.run(["git", "init", "-q"], cwd=co, check=True)
    subprocess.run(["git", "add", "-A"], cwd=co, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"], cwd=co, check=True)
    scons("release", "target=nvidia", "toolchain=acpp", cwd=co, env=env, timeout=1800)
    (archive,) = (co / "dist").glob("*-nvidia.tar.gz")
    assert archive.stat().st_size < 64 * 2**20          # what travels to a GPU machine
    check = run([REPO / ".venv" / "bin" / "syclforge", "verify", archive])
    assert check.returncode == 0, check.stdout + check.stderr
    with tarfile.open(archive) as t:
        names = t.getnames()
        manifest = json.load(t.extractfile(next(n for n in names if n.endswith("/manifest.json"))))
    carried = {c["path"] for c in manifest["runtime"]["carried"]}
    assert {"lib/libacpp-rt.so", "lib/libacpp-common.so", "lib/hipSYCL/librt-backend-cuda.so",
            "lib/hipSYCL/librt-backend-omp.so", "lib/libcudart.so.12"} <= carried, carried
    assert not [n for n in names if "libcuda." in n.rsplit("/", 1)[-1]], names
    assert "libcuda.so.1" in manifest["runtime"]["system_libraries"]
    assert manifest["runtime"]["drivers"] == ["the nvidia GPU driver for the device"]
