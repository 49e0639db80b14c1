"""Fake compilers for tests: tiny executables that behave like real ones as
far as syclforge can tell.

A fake (a Python script run by this interpreter)
  - prints the tool's REAL version text (copied from public sources, cited
    next to each text below) when given its version flag;
  - appends its argv (sys.argv, as a JSON list) as one line to the file
    named by $FAKE_ARGV_LOG, if set, for every invocation;
  - when given `-o OUT`, creates OUT (parents too), so builders 'succeed';
  - exits with exit_code (0 by default; nonzero to simulate a failing build).

Layout: helpers named fake_*(root, ...) make an install tree root/bin/<tool>
(plus root/lib/... for plugins) and return the executable's path; put
os.path.dirname(path) on PATH to have detection find it. make_fake() makes
a single executable in a given directory.

Used by syclforge's unit tests and by the SCons integration tests.
"""
import json
import os
import sys
from pathlib import Path

# --- real version texts ----------------------------------------------------

# g++ on Debian 12 (this project's machines), `g++ --version`.
GXX_VERSION_TEXT = """\
g++ (Debian 12.2.0-14+deb12u1) 12.2.0
Copyright (C) 2022 Free Software Foundation, Inc.
This is free software; see the source for copying conditions.  There is NO
warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
"""

# Debian 13's clang (`clang++ --version`; "Debian clang version 19.1.7
# (3+b1)" is what debian:stable-slim ships). Upstream clang: accepts -fsycl,
# has no SYCL runtime.
UPSTREAM_CLANG_VERSION_TEXT = """\
Debian clang version 19.1.7 (3+b1)
Target: x86_64-pc-linux-gnu
Thread model: posix
InstalledDir: /usr/lib/llvm-19/bin
"""


def icpx_version_text(version="2025.1.0", build="20250317", root="/opt/intel/oneapi"):
    """`icpx --version` of oneAPI 2025.1 (as posted in a public README:
    "Intel(R) oneAPI DPC++/C++ Compiler 2025.1.0 (2025.1.0.20250317)")."""
    series = ".".join(version.split(".")[:2])
    return (f"Intel(R) oneAPI DPC++/C++ Compiler {version} ({version}.{build})\n"
            "Target: x86_64-unknown-linux-gnu\n"
            "Thread model: posix\n"
            f"InstalledDir: {root}/compiler/{series}/bin/compiler\n"
            f"Configuration file: {root}/compiler/{series}/bin/compiler/../icpx.cfg\n")


def intel_llvm_version_text(version="19.0.0", commit="44c34c14326a189f719fbbe3393a8ee4a790f1c2",
                            installed_dir="/opt/sycl_workspace/llvm/build/bin"):
    """`clang++ --version` of an intel/llvm build (llm.c's SYCL port README:
    "clang version 19.0.0git (https://github.com/intel/llvm.git 44c34c1...)")."""
    return (f"clang version {version}git (https://github.com/intel/llvm.git {commit})\n"
            "Target: x86_64-unknown-linux-gnu\n"
            "Thread model: posix\n"
            f"InstalledDir: {installed_dir}\n"
            "Build config: +assertions\n")


def acpp_version_text(version="25.10.0", backends=("omp", "cuda", "hip", "ocl"),
                      root="/opt/AdaptiveCpp", llvm=19):
    """`acpp --acpp-version` of AdaptiveCpp 25.10.0 (AdaptiveCpp issue 2068),
    with the runtime backend list as given."""
    major, minor, patch = version.split(".")
    lines = [
        "acpp [AdaptiveCpp compilation driver], Copyright (C) 2018-2025 Aksel Alpay "
        "and the AdaptiveCpp project",
        f"  AdaptiveCpp version: {version}",
        f"  Installation root: {root}",
        f"  Plugin LLVM version: {llvm}, can accelerate CPU: True",
        "  Available runtime backends:",
        *[f"     librt-backend-{b}.so" for b in backends],
        "",
        "",
        "Full configuration [can be overridden using environment variables or command "
        "line arguments]:",
        f"    version-major: {major}",
        f"    version-minor: {minor}",
        f"    version-patch: {patch}",
        "    version-suffix: (unconfigured)",
        "    plugin-linked-into-llvm: false",
        f"    plugin-llvm-version-major: {llvm}",
        "    plugin-with-cpu-acceleration: true",
        "    plugin-with-sscp-compiler: true",
        "    default-targets: generic",
        "",
    ]
    return "\n".join(lines)


# --- making fakes ----------------------------------------------------------

_SCRIPT = '''\
#!{python}
# Fake {name}, made by syclforge tests/fakes.py.
import json, os, sys, time
VERSION_TEXT = {version_text!r}
VERSION_ARGS = {version_args!r}
VERSION_EXIT = {version_exit!r}
EXIT_CODE = {exit_code!r}
HANG = {hang!r}
log = os.environ.get("FAKE_ARGV_LOG")
if log:
    with open(log, "a") as f:
        f.write(json.dumps(sys.argv) + "\\n")
if HANG:
    time.sleep(HANG)
args = sys.argv[1:]
if any(a in VERSION_ARGS for a in args):
    sys.stdout.write(VERSION_TEXT)
    sys.exit(VERSION_EXIT)
if EXIT_CODE:
    sys.stderr.write("{name}: error: fake failure\\n")
    sys.exit(EXIT_CODE)
if "-o" in args and args.index("-o") + 1 < len(args):
    out = args[args.index("-o") + 1]
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(("fake output of " + os.path.basename(sys.argv[0]) + "\\n").encode())
sys.exit(0)
'''


def make_fake(dir, name, version_text, *, lib_files=(), version_args=("--version",),
              version_exit=0, exit_code=0, hang=0):
    """Create executable dir/name; return its path (str).

    lib_files are created (empty) in dir/../lib, where compilers keep their
    plugins. version_exit makes the version query fail with that status;
    exit_code makes every other invocation fail; hang sleeps that many
    seconds first (for timeout tests)."""
    bin_dir = Path(dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(_SCRIPT.format(python=sys.executable, name=name,
                                   version_text=version_text,
                                   version_args=tuple(version_args),
                                   version_exit=version_exit, exit_code=exit_code,
                                   hang=hang))
    path.chmod(0o755)
    if lib_files:
        lib_dir = bin_dir.parent / "lib"
        lib_dir.mkdir(parents=True, exist_ok=True)
        for f in lib_files:
            (lib_dir / f).write_bytes(b"")
    return str(path)


def _helper_tools(bin_dir, names):
    for n in names:
        make_fake(bin_dir, n, f"fake {n}\n")


def fake_gxx(root):
    """root/bin/g++ (Debian 12's g++ 12.2.0)."""
    return make_fake(Path(root) / "bin", "g++", GXX_VERSION_TEXT)


def fake_upstream_clang(root, *, name="clang++"):
    """root/bin/clang++ printing Debian's upstream clang 19 version."""
    return make_fake(Path(root) / "bin", name, UPSTREAM_CLANG_VERSION_TEXT)


def fake_icpx(root, plugins=("cuda",), *, version="2025.1.0", aot_tools=True, **kw):
    """root/bin/icpx of oneAPI `version`, with Codeplay plugins
    (root/lib/libur_adapter_<p>.so for p in plugins: 'cuda', 'hip').
    aot_tools also makes the tools AOT needs next to it: opencl-aot (x86),
    ocloc (Intel GPUs) and, with the cuda plugin, ptxas."""
    bin_dir = Path(root) / "bin"
    path = make_fake(bin_dir, "icpx", icpx_version_text(version, root=str(root)),
                     lib_files=[f"libur_adapter_{p}.so" for p in plugins], **kw)
    if aot_tools:
        _helper_tools(bin_dir, ["opencl-aot", "ocloc"] + (["ptxas"] if "cuda" in plugins else []))
    return path


def fake_intel_llvm(root, plugins=("cuda",), *, version="19.0.0", aot_tools=True, **kw):
    """root/bin/clang++ of an intel/llvm build with the given UR adapters
    (root/lib/libur_adapter_<p>.so) and, with aot_tools, opencl-aot, ocloc
    and (cuda) ptxas."""
    bin_dir = Path(root) / "bin"
    path = make_fake(bin_dir, "clang++",
                     intel_llvm_version_text(version, installed_dir=str(bin_dir)),
                     lib_files=[f"libur_adapter_{p}.so" for p in plugins], **kw)
    if aot_tools:
        _helper_tools(bin_dir, ["opencl-aot", "ocloc"] + (["ptxas"] if "cuda" in plugins else []))
    return path


def fake_acpp(root, backends=("omp", "cuda", "hip"), *, version="25.10.0", **kw):
    """root/bin/acpp of AdaptiveCpp `version` listing the given runtime
    backends in `acpp --acpp-version`."""
    return make_fake(Path(root) / "bin", "acpp",
                     acpp_version_text(version, backends, root=str(root)),
                     version_args=("--acpp-version",), **kw)


def fake_acpp_in_cache(cache, sha="0123456789abcdef", backends=("omp",), *,
                       version="24.06.0", **kw):
    """cache/syclforge/toolchains/acpp-<sha>/bin/acpp, where
    `./install.sh --acpp` builds AdaptiveCpp (cache: $XDG_CACHE_HOME)."""
    return fake_acpp(Path(cache) / "syclforge" / "toolchains" / f"acpp-{sha}",
                     backends=backends, version=version, **kw)


def fake_oneapi_pip_prefix(root, *, version="2025.3.3", python="python3.11", omit=()):
    """A Python prefix with the files the oneapi-pip family looks for (empty
    libraries, sycl.hpp, the intel_sycl_rt dist-info METADATA), minus the
    relative paths in omit. Returns root (str)."""
    root = Path(root)
    files = ["lib/libsycl.so.8", "lib/libsycl-jit.so", "lib/libintelocl.so",
             "lib/libOpenCL.so", "include/sycl/sycl.hpp"]
    for rel in files:
        if rel in omit:
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    meta = root / "lib" / python / "site-packages" / f"intel_sycl_rt-{version}.dist-info" / "METADATA"
    if "METADATA" not in omit:
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(f"Metadata-Version: 2.1\nName: intel-sycl-rt\nVersion: {version}\n"
                        "Summary: Intel® oneAPI DPC++/C++ Compiler SYCL* Runtime\n")
    return str(root)


def read_argv_log(path):
    """The argv lists a FAKE_ARGV_LOG file holds, in call order."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def fake_env(*bin_dirs, log=None, **extra):
    """An environ for detect() whose PATH is only the given dirs (so the
    real machine's compilers stay out), plus FAKE_ARGV_LOG=log."""
    env = {"PATH": os.pathsep.join(str(d) for d in bin_dirs), **{k: str(v) for k, v in extra.items()}}
    if log is not None:
        env["FAKE_ARGV_LOG"] = str(log)
    return env
