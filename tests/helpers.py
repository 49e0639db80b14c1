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
    for k in ("SYCLFORGE_IMAGE", "SYCLFORGE_VERBOSE"):
        full_env.pop(k, None)
    full_env.update(env or {})
    return subprocess.run([str(c) for c in cmd], env=full_env, text=True, capture_output=True,
                          timeout=timeout)


def cpu_flags():
    """This CPU's feature flags (/proc/cpuinfo): which native images it can run."""
    import re
    text = open("/proc/cpuinfo").read()
    return set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
