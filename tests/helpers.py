"""Shared helpers for tests that run SCons and the built programs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SCONS = [sys.executable, str(VENV_BIN / "scons")] if (VENV_BIN / "scons").exists() else [sys.executable, "-m", "SCons"]


def scons(*args, cwd=REPO, env=None, check=True, timeout=900):
    """Run SCons in cwd; returns the CompletedProcess (text, both streams)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(SCONS + ["-Q", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"scons {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def copy_checkout(dest):
    """A clean copy of the tracked and untracked-but-not-ignored files."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, files):
        src = REPO / rel.decode()
        if src.is_file():
            dst = Path(dest) / rel.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return Path(dest)


def run(cmd, env=None, timeout=300):
    full_env = dict(os.environ)
    for k in ("SYCLFORGE_IMAGE", "SYCLFORGE_VERBOSE"):   # SYCLFORGE_CPU_ISAS stays: a lowered run
        full_env.pop(k, None)
    full_env.update(env or {})
    return subprocess.run([str(c) for c in cmd], env=full_env, text=True, capture_output=True,
                          timeout=timeout)


def cpu_flags():
    """This CPU's feature flags (/proc/cpuinfo)."""
    import re
    text = open("/proc/cpuinfo").read()
    return set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())


# The native images' ISAs of cpu-x86, best first, with the /proc/cpuinfo flags
# each needs (as the loader's cpu_supports() asks the CPU).
# Each is the x86-64 level the images are compiled for (cpu_isa.cpp asks
# __builtin_cpu_supports("x86-64-vN")): v2, v3 = v2 + AVX2 & co, v4 = v3 + AVX-512.
_V2 = {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}
_V3 = _V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
ISA_FLAGS = {"avx512": _V4, "avx2": _V3, "sse4.2": _V2}


def cpu_isas(environ=None):
    """The native ISAs this process may use, best first: this CPU's, less those
    that SYCLFORGE_CPU_ISAS leaves out (the loader applies the same rule)."""
    environ = os.environ if environ is None else environ
    flags = cpu_flags()
    have = [isa for isa, need in ISA_FLAGS.items() if need <= flags]
    listed = environ.get("SYCLFORGE_CPU_ISAS", "")
    if listed:
        keep = {i.strip() for i in listed.split(",")}
        have = [isa for isa in have if isa in keep]
    return have


def lowered_isa_sets():
    """Every lower ISA set this CPU can pose as, as SYCLFORGE_CPU_ISAS values:
    on AVX-512, "avx2,sse4.2" (an AVX2 host) and "sse4.2"; on AVX2, "sse4.2"."""
    have = cpu_isas({})
    return [",".join(have[i:]) for i in range(1, len(have))]


def best_image(environ=None):
    """The image the loader should choose by default."""
    return cpu_isas(environ)[0]


def install_sh_checkout(tmp_path, folders=()):
    """A copy of install.sh in a folder of its own, with a stand-in .venv
    (the real one is shared: no pip runs here) and a dpkg-query that says
    every Debian package is installed (no apt-get either)."""
    co = tmp_path / "checkout"
    (co / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(REPO / "install.sh", co / "install.sh")
    for rel in folders:   # what install.sh reads besides itself
        shutil.copytree(REPO / rel, co / rel)
    (co / "requirements.txt").write_text("")
    stub = co / ".venv" / "bin" / "python"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    for name, body in (("dpkg-query", "printf 'install ok installed'\n"),
                       ("apt-get", "echo 'fake apt-get must not run' >&2; exit 1\n")):
        (fakebin / name).write_text(f"#!/bin/sh\n{body}")
        (fakebin / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PATH=f"{fakebin}:{env['PATH']}", XDG_CACHE_HOME=str(tmp_path / "cache"))
    return co, env
