"""The single-source launch layer (kernels/runtime/launch_lambda.cpp), which
icpx, intel/llvm clang++ and acpp build but this machine's toolchain does
not, still compiles against the ops it calls: the host compiler checks it
against the PyPI runtime's SYCL headers (host code only, -fsyntax-only), so a
change of an op's signature that only the runtime-compiler path was built
with fails here rather than on a GPU machine."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

SYCL_INCLUDE = Path(sys.prefix) / "include"
CXX = shutil.which("g++") or shutil.which("clang++")


def syntax_check(source):
    return subprocess.run([CXX, "-std=c++17", "-fsyntax-only", "-DSYCL_DISABLE_FSYCL_SYCLHPP_WARNING",
                           f"-I{SYCL_INCLUDE}", f"-I{REPO / 'kernels'}", f"-I{REPO / 'kernels' / 'include'}", f"-I{REPO / 'site_scons' / 'syclforge' / 'runtime' / 'include'}",
                           str(source)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def compiler():
    assert CXX, "no g++ or clang++ on PATH (install.sh installs g++)"
    assert (SYCL_INCLUDE / "sycl" / "sycl.hpp").exists(), f"no SYCL headers under {SYCL_INCLUDE}: run ./install.sh"
    return CXX


def test_launch_lambda_compiles_against_the_ops(compiler):
    proc = syntax_check(REPO / "kernels" / "runtime" / "launch_lambda.cpp")
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_the_check_catches_a_call_the_ops_do_not_take(compiler, tmp_path):
    # the row ops take a team (a group or a sub-group), not an nd_item
    text = (REPO / "kernels" / "runtime" / "launch_lambda.cpp").read_text()
    broken = text.replace("ops::row_sum(it.get_group(), ", "ops::row_sum(it, ")
    assert broken != text
    src = tmp_path / "launch_lambda.cpp"
    src.write_text(broken)                           # its includes resolve through -I
    proc = syntax_check(src)
    assert proc.returncode != 0 and "reduce_over_group" in proc.stderr, proc.stderr[-2000:]
