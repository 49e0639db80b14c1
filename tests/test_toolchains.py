"""Family files load and validate; detection finds real and fake tools and
reports broken or missing ones instead of raising."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

import fakes
from syclforge.core import toolchains as tc
from syclforge.errors import ConfigError
from syclforge.core.model import Image, Target

REPO = Path(__file__).resolve().parent.parent
TOOLCHAINS = REPO / "toolchains"
VENV = REPO / ".venv"

from shipped import AMD, CPU_X86, INTEL_GPU, NVIDIA
TARGETS = [CPU_X86, INTEL_GPU, NVIDIA, AMD]


@pytest.fixture(scope="module")
def families():
    return tc.load_families(TOOLCHAINS)


def by_name(detected):
    return {d.name: d for d in detected}


def only(families, *names):
    return [f for f in families if f.name in names]


# --- loading ----------------------------------------------------------------

def test_shipped_families_load_sorted_by_preference(families):
    assert [(f.name, f.role, f.kind, f.preference) for f in families] == [
        ("gcc", "host", "host", 10),
        ("icpx", "sycl", "single-source", 10),
        ("clang", "host", "host", 20),
        ("intel-llvm", "sycl", "single-source", 20),
        ("acpp", "sycl", "single-source", 30),
        ("oneapi-pip", "sycl", "runtime-compiler", 40),
    ]
    for f in families:
        assert Path(f.path).name == f"{f.name}.yaml"
        assert f.data["name"] == f.name
    # The SCons glue picks its builder from the family file.
    assert {f.name: f.data.get("scons_tool") for f in families} == {
        "gcc": None, "clang": None, "icpx": "sycl_single_source",
        "intel-llvm": "sycl_single_source", "acpp": "sycl_single_source",
        "oneapi-pip": "sycl_runtime_compiler"}


def test_oneapi_pip_isa_mapping_is_data(families):
    pip = next(f for f in families if f.name == "oneapi-pip")
    native = pip.data["capabilities"]["x86"]["native"]
    assert {k: v["env"]["CL_CONFIG_CPU_TARGET_ARCH"] for k, v in native.items()} == {
        "avx512": "skx", "avx2": "core-avx2", "sse4.2": "corei7"}


def _family_dir(tmp_path, name, text):
    shutil.copy(TOOLCHAINS / tc.SCHEMA_NAME, tmp_path / tc.SCHEMA_NAME)
    (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


GOOD = """\
name: mini
description: a minimal host family
role: host
kind: host
preference: 5
find:
  search:
    - path: mini-cc
version:
  args: [--version]
  regex: 'mini (\\d+\\.\\d+)'
"""


def test_minimal_family_loads(tmp_path):
    (fam,) = tc.load_families(_family_dir(tmp_path, "mini", GOOD))
    assert (fam.name, fam.role, fam.preference) == ("mini", "host", 5)


@pytest.mark.parametrize("old,new,line,key,words", [
    ("role: host", "role: device", 3, "role", "'device' is not one of host, sycl"),
    ("preference: 5", "preference: 5\ncolour: blue", 6, "colour", "unknown key(s) 'colour'"),
    ("name: mini", "name: other", 1, "name", "must equal the file name 'mini'"),
    ("regex: 'mini (\\d+\\.\\d+)'", "regex: 'mini (\\d+'", 11, "version.regex",
     "invalid regular expression"),
    ("regex: 'mini (\\d+\\.\\d+)'", "regex: 'mini \\d+'", 11, "version.regex",
     "needs a capture group"),
    ("    - path: mini-cc", "    - path: mini-cc\n      env: X", 8, "find.search[0]",
     "matches none of the allowed forms"),
    # Role and kind must agree (the schema's if/then).
    ("role: host", "role: sycl", 4, "kind", "'host' is not one of runtime-compiler, single-source"),
    # A single-source family must say its flags.
    ("role: host\nkind: host", "role: sycl\nkind: single-source", 1, "flags",
     "missing required key 'flags'"),
])
def test_bad_family_is_config_error_with_line_and_key(tmp_path, old, new, line, key, words):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(ConfigError) as e:
        tc.load_families(_family_dir(tmp_path, "mini", text))
    err = e.value
    assert err.path.endswith("mini.yaml")
    assert err.line == line
    assert err.key == key
    if words:
        assert words in err.message


def test_info_template_with_unknown_field_is_rejected(tmp_path):
    text = GOOD + "info:\n  cxx: '{compiler}'\n"
    with pytest.raises(ConfigError) as e:
        tc.load_families(_family_dir(tmp_path, "mini", text))
    assert (e.value.line, e.value.key) == (13, "info.cxx")
    assert "unknown field(s) ['compiler']" in e.value.message


def test_missing_schema_or_files_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="schema not found"):
        tc.load_families(tmp_path)
    shutil.copy(TOOLCHAINS / tc.SCHEMA_NAME, tmp_path / tc.SCHEMA_NAME)
    with pytest.raises(ConfigError, match="no toolchain family files"):
        tc.load_families(tmp_path)


# --- the real machine ---------------------------------------------------------

def test_real_oneapi_pip_and_gxx(families):
    env = {"PATH": "/usr/bin:/bin"}
    det = by_name(tc.detect(only(families, "gcc", "clang", "oneapi-pip"),
                            environ=env, python_prefix=VENV))
    gxx = det["gcc"]
    assert gxx.available, gxx.reason
    real = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True,
                          env=env).stdout.strip()
    assert Version(gxx.version) == Version(real)
    assert gxx.path == shutil.which("g++", path=env["PATH"])

    pip = det["oneapi-pip"]
    assert pip.available, pip.reason
    assert pip.version == "2025.3.3"
    assert pip.path == str(VENV)
    assert pip.capabilities == {"x86": ["avx512", "avx2", "sse4.2", "spirv"]}
    assert set(pip.unsupported) == {"intel", "nvidia", "amd"}
    assert all("no GPU backend compiler" in why for why in pip.unsupported.values())
    info = pip.info
    assert info["prefix"] == str(VENV)
    assert info["include"] == f"{VENV}/include"
    assert info["lib"] == f"{VENV}/lib"
    assert info["icd"] == f"{VENV}/lib/libintelocl.so"
    assert info["host_cxx"] == gxx.path and info["host_family"] == "gcc"
    assert os.path.isfile(Path(info["include"]) / "sycl" / "sycl.hpp")
    assert os.path.isfile(info["icd"])
    assert info["image_env"]["avx2"] == {"CL_CONFIG_CPU_TARGET_ARCH": "core-avx2"}
    assert pip.can_produce("x86", "avx512") and not pip.can_produce("nvidia", "sm_90")
    assert pip.to_json(TARGETS) == {
        "name": "oneapi-pip", "available": True, "version": "2025.3.3", "path": str(VENV),
        "targets": ["cpu-x86"], "capabilities": {"x86": ["avx512", "avx2", "sse4.2", "spirv"]},
        "description": pip.family.description}


def test_oneapi_pip_prefix_from_environment(families, tmp_path):
    prefix = fakes.fake_oneapi_pip_prefix(tmp_path / "py", version="2025.3.1")
    gxx = fakes.fake_gxx(tmp_path / "gcc")
    env = fakes.fake_env(Path(gxx).parent, SYCLFORGE_ONEAPI_PIP_PREFIX=prefix)
    det = by_name(tc.detect(only(families, "gcc", "oneapi-pip"), environ=env,
                            python_prefix=VENV))
    pip = det["oneapi-pip"]
    assert pip.available, pip.reason
    assert (pip.version, pip.path, pip.info["host_cxx"]) == ("2025.3.1", prefix, gxx)
    assert pip.info["files"]["lib/libsycl.so"] == f"{prefix}/lib/libsycl.so.8"


def test_oneapi_pip_needs_a_host_compiler(families, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    det = by_name(tc.detect(only(families, "gcc", "clang", "oneapi-pip"),
                            environ={"PATH": str(empty)}, python_prefix=VENV))
    pip = det["oneapi-pip"]
    assert not pip.available
    assert pip.reason.startswith("needs a host C++ compiler (gcc or clang) and none is available")
    assert "gcc: not installed: no g++ on PATH" in pip.reason
    assert pip.capabilities == {} and not pip.can_produce("x86", "avx2")
    assert pip.to_json(TARGETS)["reason"] == pip.reason
    assert pip.to_json(TARGETS)["targets"] == []


@pytest.mark.parametrize("omit,words", [
    (("lib/libsycl-jit.so",), "lacks lib/libsycl-jit.so"),
    (("lib/libsycl.so.8",), "lacks lib/libsycl.so or lib/libsycl.so.8"),
    (("METADATA",), "cannot read its version: no lib/python3*/site-packages/intel_sycl_rt-"),
])
def test_oneapi_pip_incomplete_prefix(families, tmp_path, omit, words):
    prefix = fakes.fake_oneapi_pip_prefix(tmp_path / "py", omit=omit)
    gxx = fakes.fake_gxx(tmp_path / "gcc")
    det = by_name(tc.detect(only(families, "gcc", "oneapi-pip"),
                            environ=fakes.fake_env(Path(gxx).parent), python_prefix=prefix))
    assert not det["oneapi-pip"].available
    assert words in det["oneapi-pip"].reason


def test_oneapi_pip_2026_is_refused(families, tmp_path):
    prefix = fakes.fake_oneapi_pip_prefix(tmp_path / "py", version="2026.0.0")
    gxx = fakes.fake_gxx(tmp_path / "gcc")
    (pip,) = [d for d in tc.detect(only(families, "gcc", "oneapi-pip"),
                                   environ=fakes.fake_env(Path(gxx).parent),
                                   python_prefix=prefix) if d.name == "oneapi-pip"]
    assert not pip.available
    assert "version 2026.0.0" in pip.reason and "no CPU device" in pip.reason


# --- fakes ----------------------------------------------------------------------

def test_icpx_fake_with_plugins(families, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda", "hip"), version="2025.2.1")
    log = tmp_path / "argv.log"
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(Path(icpx).parent, log=log))
    assert det.available, det.reason
    assert Version(det.version) == Version("2025.2.1") and det.path == icpx
    assert det.capabilities["x86"] == ["avx512", "avx2", "sse4.2", "spirv"]
    assert det.capabilities["intel"][:3] == ["pvc", "pvc_vg", "dg2"]
    assert "sm_90" in det.capabilities["nvidia"] and "ptx" in det.capabilities["nvidia"]
    assert "gfx942" in det.capabilities["amd"]
    assert det.unsupported == {}
    assert det.info["tools"]["ptxas"] == str(Path(icpx).parent / "ptxas")
    assert det.info["lib_dir"] == str(tmp_path / "oneapi" / "lib")
    assert fakes.read_argv_log(log) == [[icpx, "--version"]]
    # DPC++ holds one spir64_x86_64 image: cpu-x86 is possible, not complete.
    plan = det.plan(CPU_X86)
    assert (plan.images, plan.dropped, plan.missing) == (("avx512", "spirv"), ("avx2", "sse4.2"), ())
    assert "one spir64_x86_64 image per binary" in plan.note
    assert det.to_json(TARGETS)["targets"] == ["intel-gpu", "nvidia", "amd"]


def test_plugin_probing_changes_capabilities(families, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=())
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(Path(icpx).parent))
    assert det.available
    assert set(det.capabilities) == {"x86", "intel"}
    lib_dir = tmp_path / "oneapi" / "lib"
    assert det.unsupported["nvidia"] == (
        f"needs Codeplay's oneAPI for NVIDIA GPUs plugin: no libur_adapter_cuda.so in {lib_dir}; "
        f"the CUDA toolkit's PTX assembler (ptxas): ptxas not found in {Path(icpx).parent} "
        "or on PATH")
    assert det.unsupported["amd"].startswith("needs Codeplay's oneAPI for AMD GPUs plugin")
    assert det.why_not(NVIDIA).startswith("cannot produce sm_90, sm_80, ptx: needs Codeplay")
    assert det.why_not(INTEL_GPU) is None
    # ptxas on PATH (not next to icpx) satisfies the tool requirement.
    lib_dir.mkdir()
    (lib_dir / "libur_adapter_cuda.so").write_bytes(b"")
    cuda = fakes.make_fake(tmp_path / "cuda" / "bin", "ptxas", "ptxas fake\n")
    (det,) = tc.detect(only(families, "icpx"),
                       environ=fakes.fake_env(Path(icpx).parent, Path(cuda).parent))
    assert "nvidia" in det.capabilities and det.info["tools"]["ptxas"] == cuda


def test_icpx_missing_aot_tools(families, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",), aot_tools=False)
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(Path(icpx).parent))
    assert det.available and det.capabilities == {}
    assert "no opencl-aot in" in det.unsupported["x86"]
    assert "ocloc not found" in det.unsupported["intel"]


def test_icpx_found_through_oneapi_root(families, tmp_path):
    root = tmp_path / "intel" / "oneapi"
    icpx = fakes.fake_icpx(root / "compiler" / "latest", plugins=())
    empty = tmp_path / "empty"
    empty.mkdir()
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(empty, ONEAPI_ROOT=root))
    assert det.available and det.path == icpx


def test_intel_llvm_fake_and_upstream_clang_refused(families, tmp_path):
    up = fakes.fake_upstream_clang(tmp_path / "usr")
    (det,) = tc.detect(only(families, "intel-llvm"), environ=fakes.fake_env(Path(up).parent))
    assert not det.available
    assert det.reason == (f"{up} prints 'Debian clang version 19.1.7 (3+b1)': upstream clang "
                          "has no SYCL runtime (its --version does not name github.com/intel/llvm)")
    # The same upstream clang is a fine host compiler.
    (host,) = tc.detect(only(families, "clang"), environ=fakes.fake_env(Path(up).parent))
    assert host.available and Version(host.version) == Version("19.1.7")

    # DPCPP_HOME wins over an upstream clang++ on PATH.
    home = tmp_path / "sycl_workspace"
    llvm = fakes.fake_intel_llvm(home / "llvm" / "build", plugins=("hip",), version="21.0.0")
    (det,) = tc.detect(only(families, "intel-llvm"),
                       environ=fakes.fake_env(Path(up).parent, DPCPP_HOME=home))
    assert det.available, det.reason
    assert det.path == llvm and Version(det.version) == Version("21.0.0")
    assert "amd" in det.capabilities and "nvidia" not in det.capabilities
    assert "the CUDA adapter of a CUDA-enabled build" in det.unsupported["nvidia"]


def test_intel_llvm_on_path_after_upstream_candidate(families, tmp_path):
    llvm = fakes.fake_intel_llvm(tmp_path / "dpcpp", plugins=("cuda",))
    (det,) = tc.detect(only(families, "intel-llvm"),
                       environ=fakes.fake_env(Path(llvm).parent, SYCL_LLVM_ROOT=tmp_path / "nowhere"))
    assert det.available and det.path == llvm and det.version == "19.0.0"
    assert det.can_produce("nvidia", "sm_80")


def test_clang_versioned_names_highest_first(families, tmp_path):
    bin_dir = tmp_path / "bin"
    fakes.make_fake(bin_dir, "clang++-14", fakes.UPSTREAM_CLANG_VERSION_TEXT.replace("19.1.7 (3+b1)", "14.0.6"))
    newest = fakes.make_fake(bin_dir, "clang++-19", fakes.UPSTREAM_CLANG_VERSION_TEXT)
    (det,) = tc.detect(only(families, "clang"), environ=fakes.fake_env(bin_dir))
    assert det.path == newest and det.version == "19.1.7"


@pytest.mark.parametrize("backends,vendors", [
    (("omp",), {"x86"}),
    (("omp", "cuda"), {"x86", "nvidia"}),
    (("omp", "cuda", "hip", "ocl"), {"x86", "nvidia", "amd"}),
    (("cuda",), {"nvidia"}),
])
def test_acpp_backends_from_its_version_output(families, tmp_path, backends, vendors):
    acpp = fakes.fake_acpp(tmp_path / "acpp", backends=backends, version="24.10.0")
    (det,) = tc.detect(only(families, "acpp"), environ=fakes.fake_env(Path(acpp).parent))
    assert det.available, det.reason
    assert Version(det.version) == Version("24.10.0")
    assert det.info["backends"] == list(backends)
    assert set(det.capabilities) == vendors
    if "x86" in vendors:   # the omp backend: one module per ISA
        assert det.capabilities["x86"] == ["avx512", "avx2", "sse4.2"]
    else:
        assert "OpenMP host backend" in det.unsupported["x86"]
    if "nvidia" in vendors:
        assert det.capabilities["nvidia"][-1] == "ptx"
    else:
        assert "not among its runtime backends" in det.unsupported["nvidia"]


# --- found in the user's cache folder (cache_glob) ------------------------------

CACHED = """\
name: cached
description: a compiler that an installer builds into the user's cache folder
role: host
kind: host
preference: 5
find:
  search:
    - path: cached-cc
    - cache_glob: tools/cached-*/bin/cached-cc
version:
  args: [--version]
  regex: 'cached-cc (\\d+\\.\\d+)'
"""


def _cached_cc(root, version):
    return fakes.make_fake(Path(root) / "bin", "cached-cc", f"cached-cc {version}\n")


def test_cache_glob_finds_under_xdg_cache_home_then_home(tmp_path):
    (fam,) = tc.load_families(_family_dir(tmp_path, "cached", CACHED))
    empty = tmp_path / "empty"
    empty.mkdir()
    xdg = _cached_cc(tmp_path / "xdg" / "tools" / "cached-aaaa", "1.0")
    home = _cached_cc(tmp_path / "home" / ".cache" / "tools" / "cached-bbbb", "2.0")
    env = {"PATH": str(empty), "HOME": str(tmp_path / "home")}
    (det,) = tc.detect([fam], environ={**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert (det.available, det.path, det.version) == (True, xdg, "1.0")
    (det,) = tc.detect([fam], environ=env)            # no $XDG_CACHE_HOME: ~/.cache
    assert (det.available, det.path, det.version) == (True, home, "2.0")
    (det,) = tc.detect([fam], environ={**env, "XDG_CACHE_HOME": ""})   # empty = unset
    assert det.path == home


def test_cache_glob_after_path_and_newest_first(tmp_path):
    (fam,) = tc.load_families(_family_dir(tmp_path, "cached", CACHED))
    cache = tmp_path / "cache"
    # "newest": the installation folder's mtime (install.sh touches it when it
    # moves a build into place); the executables keep the archive's own times.
    old = _cached_cc(cache / "tools" / "cached-old", "1.0")
    new = _cached_cc(cache / "tools" / "cached-new", "2.0")
    os.utime(new, (1_000_000, 1_000_000))
    os.utime(old, (2_000_000, 2_000_000))
    os.utime(cache / "tools" / "cached-old", (3_000_000, 3_000_000))
    os.utime(cache / "tools" / "cached-new", (4_000_000, 4_000_000))
    env = {"PATH": str(tmp_path / "nothing"), "XDG_CACHE_HOME": str(cache)}
    (det,) = tc.detect([fam], environ=env)
    assert det.path == new
    on_path = _cached_cc(tmp_path / "usr", "3.0")
    (det,) = tc.detect([fam], environ={**env, "PATH": str(Path(on_path).parent)})
    assert det.path == on_path                          # PATH is tried first
    # a candidate that fails is refused and the next one taken
    fakes.make_fake(Path(new).parent, "cached-cc", "", version_exit=1)
    (det,) = tc.detect([fam], environ=env)
    assert det.path == old


def test_cache_glob_ignores_what_is_not_an_installation(tmp_path):
    (fam,) = tc.load_families(_family_dir(tmp_path, "cached", CACHED))
    tools = tmp_path / "cache" / "tools"
    (tools / "cached-nobin").mkdir(parents=True)               # no bin/cached-cc
    _cached_cc(tools / ".cached-x.partial-123", "9.9")          # a build in progress
    plain = tools / "cached-plain" / "bin" / "cached-cc"        # not executable
    plain.parent.mkdir(parents=True)
    plain.write_text("#!/bin/sh\necho cached-cc 9.9\n")
    env = {"PATH": str(tmp_path / "nothing"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (det,) = tc.detect([fam], environ=env)
    assert not det.available
    assert det.reason == (f"not installed: no cached-cc on PATH, "
                          f"no {tmp_path / 'cache' / 'tools/cached-*/bin/cached-cc'}")
    (det,) = tc.detect([fam], environ={"PATH": str(tmp_path / "nothing")})
    assert det.reason == ("not installed: no cached-cc on PATH, no tools/cached-*/bin/cached-cc "
                          "in the cache folder ($XDG_CACHE_HOME and $HOME unset)")


def test_acpp_found_where_install_sh_builds_it(families, tmp_path):
    acpp = fakes.fake_acpp_in_cache(tmp_path / "cache", backends=("omp",))
    assert "/syclforge/toolchains/acpp-0123456789abcdef/bin/acpp" in acpp
    env = {"PATH": str(tmp_path / "nothing"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (det,) = tc.detect(only(families, "acpp"), environ=env)
    assert (det.available, det.path, det.version) == (True, acpp, "24.06.0")
    assert det.info["backends"] == ["omp"]
    assert det.info["cxx"] == acpp
    # omp only: cpu-x86's ISAs as modules (not its SPIR-V, so no target in
    # full), and without cuda/hip backends neither nvidia nor amd
    assert det.capabilities == {"x86": ["avx512", "avx2", "sse4.2"]}
    assert det.to_json(TARGETS)["targets"] == []
    assert det.to_json(TARGETS)["backends"] == ["omp"]
    (line,) = tc.format_table([det], TARGETS).splitlines()[1:]
    assert line.split(None, 5) == ["acpp", "sycl", "yes", "24.06.0", acpp,
                                   "cpu-x86 (only avx512, avx2, sse4.2) (backends: omp)"]


def test_format_table_names_probed_backends(families, tmp_path):
    acpp = fakes.fake_acpp(tmp_path / "acpp", backends=("omp", "cuda"))
    (det,) = tc.detect(only(families, "acpp"), environ=fakes.fake_env(Path(acpp).parent))
    (line,) = tc.format_table([det], TARGETS).splitlines()[1:]
    assert line.endswith("  cpu-x86 (only avx512, avx2, sse4.2), nvidia (backends: omp, cuda)")


# --- broken and missing tools ----------------------------------------------------

def test_broken_tool_is_reported_not_raised(families, tmp_path):
    icpx = fakes.make_fake(tmp_path / "bin", "icpx", "icpx: error: licence server gone\n",
                           version_exit=3)
    acpp = fakes.make_fake(tmp_path / "bin", "acpp", "something else entirely\n",
                           version_args=("--acpp-version",))
    det = by_name(tc.detect(only(families, "icpx", "acpp"),
                            environ=fakes.fake_env(tmp_path / "bin")))
    assert not det["icpx"].available
    assert det["icpx"].reason == (f"'{icpx} --version' failed (exit 3): "
                                  "icpx: error: licence server gone")
    assert not det["acpp"].available
    assert det["acpp"].reason == (f"unrecognised '{acpp} --acpp-version' output: "
                                  "'something else entirely'")


def test_hanging_tool_times_out(families, tmp_path):
    icpx = fakes.make_fake(tmp_path / "bin", "icpx", fakes.icpx_version_text(), hang=30)
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(tmp_path / "bin"),
                       timeout=0.5)
    assert not det.available
    assert det.reason == f"'{icpx} --version' timed out after 0.5 s"


def test_tool_that_cannot_run(families, tmp_path):
    bad = tmp_path / "bin" / "icpx"
    bad.parent.mkdir()
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(bad.parent))
    assert not det.available
    assert det.reason.startswith(f"'{bad} --version' could not run: ")

    def exploding_run(argv, *, env=None, timeout=None):
        raise subprocess.TimeoutExpired(argv, timeout)
    icpx = fakes.fake_icpx(tmp_path / "ok")
    (det,) = tc.detect(only(families, "icpx"), environ=fakes.fake_env(Path(icpx).parent),
                       run=exploding_run, timeout=2)
    assert det.reason == f"'{icpx} --version' timed out after 2 s"


def test_missing_tools_are_reported_with_reason(families, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    det = by_name(tc.detect(families, environ={"PATH": str(empty)},
                            python_prefix=tmp_path / "nopython"))
    assert not any(d.available for d in det.values())
    assert det["icpx"].reason.startswith("not installed: no icpx on PATH, $ONEAPI_ROOT not set; ")
    assert det["intel-llvm"].reason.startswith(
        "not installed: $SYCL_LLVM_ROOT not set, $DPCPP_HOME not set, no clang++ on PATH; ")
    assert det["acpp"].reason.startswith(
        "not installed: no acpp on PATH, no syclforge/toolchains/acpp-*/bin/acpp in the "
        "cache folder ($XDG_CACHE_HOME and $HOME unset); run ./install.sh --acpp")
    assert det["clang"].reason == "not installed: no clang++ on PATH, no clang++-[0-9]* on PATH"
    assert det["oneapi-pip"].reason.startswith(
        f"not installed: {tmp_path / 'nopython'} (the Python prefix) lacks lib/libsycl.so or "
        "lib/libsycl.so.8, lib/libsycl-jit.so")
    table = tc.format_table(list(det.values()), TARGETS)
    lines = table.splitlines()
    assert lines[0].split() == ["TOOLCHAIN", "ROLE", "AVAILABLE", "VERSION", "PATH",
                                "TARGETS", "/", "REASON"]
    assert len(lines) == 1 + len(families)
    icpx_line = next(l for l in lines if l.startswith("icpx "))
    assert icpx_line.split()[:5] == ["icpx", "sycl", "no", "-", "-"]
    assert icpx_line.rstrip().endswith(det["icpx"].reason)


def test_format_table_lists_served_targets(families, tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",))
    gxx = fakes.fake_gxx(tmp_path / "gcc")
    det = tc.detect(only(families, "gcc", "icpx"),
                    environ=fakes.fake_env(Path(icpx).parent, Path(gxx).parent))
    lines = tc.format_table(det, TARGETS).splitlines()
    assert lines[1].split() == ["gcc", "host", "yes", "12.2.0", gxx, "host", "compiler"]
    assert lines[2].split(None, 5) == ["icpx", "sycl", "yes", "2025.1.0", icpx,
                                       "cpu-x86 (only avx512, spirv), intel-gpu, nvidia"]
