"""syclforge as a product: another team's project, in a folder of its own,
with syclforge installed from this checkout into a fresh venv (none of this
repository's files on its path), builds cpu-x86 with every ISA image plus
SPIR-V, runs right on the best and every forced image, and passes release
and verify. `syclforge init DIR && cd DIR && scons` does the same from
nothing. The SYCL runtime is the machine's (SYCLFORGE_ONEAPI_PIP_PREFIX):
the venv holds only syclforge and what it needs."""
import os
import re
import subprocess
import sys
import venv

import pytest

from helpers import REPO, copy_checkout, cpu_isas

IMAGES = ["avx512", "avx2", "sse4.2", "spirv"]

SCONSTRUCT = """\
import syclforge.scons as sf

project = sf.Project(name="axpy", version="1.2.0")
for env in project.envs():
    env.Append(CPPPATH=["include"], CPPDEFINES=["AXPY_SCALE=3"])
    app = env.SyclProgram("axpy", ["src/main.cpp"], device=["src/device.cpp"])
    project.release(env, programs=app, headers="include")
project.finish()
"""

TARGETS = """\
version: 1
targets:
  cpu-x86:
    description: x86-64 CPUs
    vendor: x86
    device: cpu
    isas: [avx512, avx2, sse4.2]
    portable: spirv
"""

HEADER = """\
#pragma once
// the math, once: device code includes it
inline float axpy_one(float a, float x, float y) { return a * x + y; }
"""

DEVICE = """\
#include <sycl/sycl.hpp>
#include "axpy/math.hpp"
namespace syclexp = sycl::ext::oneapi::experimental;
extern "C" SYCL_EXT_ONEAPI_FUNCTION_PROPERTY((syclexp::nd_range_kernel<1>))
void axpy(float a, const float *x, float *y, unsigned long n) {
  size_t i = sycl::ext::oneapi::this_work_item::get_nd_item<1>().get_global_id(0);
  if (i < n) y[i] = axpy_one(a, x[i], y[i]);
}
"""

MAIN = """\
#include <cstdio>
#include <syclforge/fatbin.hpp>
int main() try {
  syclforge::Program p;
  sycl::queue &q = p.queue();
  const unsigned long n = 1000;
  float *x = sycl::malloc_shared<float>(n, q), *y = sycl::malloc_shared<float>(n, q);
  for (unsigned long i = 0; i < n; ++i) x[i] = float(i), y[i] = 1.0f;
  sycl::kernel k = p.kernel("axpy");
  q.submit([&](sycl::handler &h) { h.set_args(float(AXPY_SCALE), x, y, n);
                                   h.parallel_for(sycl::nd_range<1>{1024, 64}, k); }).wait();
  std::printf("image=%s target=%s y[999]=%g\\n", p.image().c_str(), syclforge::build_target().c_str(), y[999]);
  return y[999] == 3.0f * 999 + 1 ? 0 : 1;
} catch (const std::exception &e) { std::fprintf(stderr, "error: %s\\n", e.what()); return 2; }
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with syclforge installed from a copy of this checkout."""
    base = tmp_path_factory.mktemp("ext")
    src = copy_checkout(base / "syclforge-src")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return env_dir


def _env(env_dir, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SYCLFORGE_IMAGE", "SYCLFORGE_VERBOSE")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}",
               SYCLFORGE_ONEAPI_PIP_PREFIX=sys.prefix, SOURCE_DATE_EPOCH="1700000000", **extra)
    return env


def _run(cmd, cwd, env_dir, check=True, **extra):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_env(env_dir, **extra), capture_output=True,
                          text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    return proc


def _write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


@pytest.fixture(scope="module")
def project(installed, tmp_path_factory):
    root = tmp_path_factory.mktemp("axpy")
    _write(root, {"SConstruct": SCONSTRUCT, "targets.yaml": TARGETS, "include/axpy/math.hpp": HEADER,
                  "src/device.cpp": DEVICE, "src/main.cpp": MAIN})
    build = _run([installed / "bin" / "scons", "-Q"], root, installed)
    return root, build


def test_installed_syclforge_is_the_one_used(installed, tmp_path):
    proc = _run([installed / "bin" / "python", "-c", "import syclforge, sys; print(syclforge.__file__); "
                 "print(sys.path)"], tmp_path, installed)
    where = proc.stdout.splitlines()[0]
    assert where.startswith(str(installed)), where
    assert str(REPO) not in proc.stdout


def test_the_sconstruct_is_short():
    lines = [ln for ln in SCONSTRUCT.splitlines() if ln.strip()]
    assert len(lines) <= 15, len(lines)


def test_builds_every_image_and_runs_on_each(project, installed):
    root, build = project
    assert re.search(r"^cpu-x86\s+BUILT\s+oneapi-pip\s+avx512, avx2, sse4.2, spirv$", build.stdout, re.M), \
        build.stdout
    app = root / "build" / "cpu-x86" / "bin" / "axpy"
    best = _run([app], root, installed, SYCLFORGE_VERBOSE="1")
    assert f"image={cpu_isas()[0]} target=cpu-x86 y[999]=2998" in best.stdout, best.stdout + best.stderr
    assert f"image={cpu_isas()[0]}" in best.stderr            # SYCLFORGE_VERBOSE reports the choice
    for image in cpu_isas() + ["spirv"]:
        forced = _run([app], root, installed, SYCLFORGE_IMAGE=image)
        assert f"image={image} " in forced.stdout and "y[999]=2998" in forced.stdout, forced.stdout
    refused = _run([app], root, installed, check=False, SYCLFORGE_IMAGE="avx512", SYCLFORGE_CPU_ISAS="sse4.2")
    assert refused.returncode == 2 and "SYCLFORGE_IMAGE=avx512 cannot run" in refused.stderr
    # compile_commands.json covers the host and the device source (clangd on kernels)
    import json
    files = {e["file"] for e in json.loads((root / "compile_commands.json").read_text())}
    assert {str(root / "src" / "main.cpp"), str(root / "src" / "device.cpp")} <= files


def test_header_edit_rebuilds_only_that_kernels_images(project, installed):
    root, _ = project
    scons = installed / "bin" / "scons"
    noop = _run([scons, "-Q"], root, installed)
    assert not re.search(r"^  (CXX|SPIRV|AOT|LINK)", noop.stdout, re.M), noop.stdout
    header = root / "include" / "axpy" / "math.hpp"
    header.write_text(HEADER.replace("a * x + y", "a * x + 2 * y"))
    again = _run([scons, "-Q"], root, installed)
    steps = re.findall(r"^  (\w+)\s+(\S+)", again.stdout, re.M)
    assert ("SPIRV", "build/cpu-x86/images/axpy/device.spv") in steps, again.stdout
    assert sum(s == "AOT" for s, _ in steps) == 3, again.stdout
    assert not any(s == "CXX" and "main" in t for s, t in steps), again.stdout   # host code untouched
    ran = _run([root / "build" / "cpu-x86" / "bin" / "axpy"], root, installed, check=False)
    assert "y[999]=2999" in ran.stdout, ran.stdout      # the new math runs (main.cpp still wants 2998)


def test_release_and_verify(project, installed):
    root, _ = project
    scons = installed / "bin" / "scons"
    rel = _run([scons, "-Q", "release"], root, installed)
    bundle = root / "dist" / "axpy-1.2.0-cpu-x86.tar.gz"
    assert bundle.is_file(), rel.stdout
    ok = _run([installed / "bin" / "syclforge", "verify", bundle], root, installed)
    assert "sound" in ok.stdout.lower() or ok.returncode == 0
    ver = _run([scons, "-Q", "verify", f"bundle={bundle}"], root, installed)
    assert ver.returncode == 0
    import tarfile
    names = tarfile.open(bundle).getnames()
    assert "axpy-1.2.0-cpu-x86/bin/axpy" in names and "axpy-1.2.0-cpu-x86/include/axpy/math.hpp" in names


def test_help_lists_the_variables_and_aliases(project, installed):
    root, _ = project
    out = _run([installed / "bin" / "scons", "-h"], root, installed).stdout
    for word in ("target", "toolchain", "strict", "cache", "toolchains", "explain", "release", "verify",
                 "numerics", "SYCLFORGE_IMAGE", "SYCLFORGE_CPU_ISAS"):
        assert word in out, word
    assert re.search(r"^axpy: built with syclforge", out, re.M), out


def test_init_makes_a_project_that_builds(installed, tmp_path):
    sf = installed / "bin" / "syclforge"
    _run([sf, "init", tmp_path / "hello"], tmp_path, installed)
    build = _run([installed / "bin" / "scons", "-Q"], tmp_path / "hello", installed)
    assert re.search(r"^cpu-x86\s+BUILT\s+oneapi-pip\s+avx512, avx2, sse4.2, spirv$", build.stdout, re.M)
    app = _run([tmp_path / "hello" / "build" / "cpu-x86" / "bin" / "hello"], tmp_path / "hello", installed)
    assert "y[999] = 1999" in app.stdout
    again = _run([sf, "init", tmp_path / "hello"], tmp_path, installed, check=False)
    assert again.returncode == 2 and "not empty" in again.stderr
    tc = _run([sf, "toolchains", "--top", tmp_path / "hello"], tmp_path, installed)
    assert re.search(r"^oneapi-pip\s+sycl\s+yes\s+2025", tc.stdout, re.M), tc.stdout
    ex = _run([sf, "explain", "cpu-x86", "--top", tmp_path / "hello"], tmp_path, installed)
    assert re.search(r"^  oneapi-pip\s+ACCEPTED", ex.stdout, re.M) and "Selected oneapi-pip" in ex.stdout, ex.stdout
