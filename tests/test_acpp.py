"""AdaptiveCpp as `./install.sh --acpp` installs it (README.md, "Run the
tests"; ../shared/ENVIRONMENT.md, "AdaptiveCpp, built here from source").

The real tests run against the acpp that detection finds (on PATH, or in
${XDG_CACHE_HOME:-~/.cache}/syclforge/toolchains/acpp-*/): detection, a real
compile and run on the OpenMP host device, `scons toolchains`, and that
resolution still gives cpu-x86 to oneapi-pip. Where none is installed they
skip, naming why (CI included: building AdaptiveCpp may legitimately fail on
a machine; install.sh then says why and goes on), and the reason is also
printed in pytest's warnings summary.

The install.sh tests need no AdaptiveCpp: a tiny fake source archive that
fails to configure, or whose build is interrupted, must leave nothing that
detection would take for an installation.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import pytest
from packaging.version import Version

import fakes
from helpers import best_image, copy_checkout, cpu_isas, install_sh_checkout, run, scons
from syclforge.core import toolchains as tc

REPO = Path(__file__).resolve().parent.parent
SCONS = REPO / ".venv" / "bin" / "scons"


def _tools_dir(env=os.environ):
    cache = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME", "~"), ".cache")
    return Path(os.path.expanduser(cache)) / "syclforge" / "toolchains"


def _why_not_built():
    """What the last `./install.sh --acpp` left to say why there is no build:
    its log, when a build failed."""
    logs = sorted(_tools_dir().glob("acpp-*.log"), key=lambda p: p.stat().st_mtime)
    for log in reversed(logs):
        if not (log.parent / log.name[:-len(".log")] / "bin" / "acpp").exists():
            tail = [l for l in log.read_text(errors="replace").splitlines() if l.strip()][-1:]
            return f"; the last ./install.sh --acpp build did not finish ({log}: {' '.join(tail)})"
    return ""


@pytest.fixture(scope="module")
def acpp():
    families = tc.load_families(REPO / "toolchains")
    (det,) = tc.detect([f for f in families if f.name == "acpp"])
    if not det.available:
        why = f"no AdaptiveCpp: {det.reason}{_why_not_built()}"
        warnings.warn(f"tests/test_acpp.py skipped: {why}")
        pytest.skip(why)
    return det


# --------------------------------------------------------------------------
# Real: the installed acpp

def test_detection_reports_version_and_omp_backend(acpp):
    assert acpp.available
    in_cache = Path(acpp.path).resolve().is_relative_to(_tools_dir().resolve())
    if in_cache:   # built by install.sh from ../shared/vendor's snapshot
        assert acpp.version == "24.06.0", acpp.path
    else:
        assert Version(acpp.version) >= Version("24.06.0"), acpp.path
    assert "omp" in acpp.info["backends"]
    # without its CUDA/HIP backends it claims no GPU vendor
    assert ("nvidia" in acpp.capabilities) == ("cuda" in acpp.info["backends"])
    assert ("amd" in acpp.capabilities) == ("hip" in acpp.info["backends"])


GROUP_REDUCTION = r"""
#include <sycl/sycl.hpp>
#include <cstdio>

int main() {
  sycl::queue q;
  constexpr int n = 1024, wg = 64;
  float *in = sycl::malloc_shared<float>(n, q);
  float *out = sycl::malloc_shared<float>(n / wg, q);
  for (int i = 0; i < n; ++i) in[i] = float(i % 7);
  q.parallel_for(sycl::nd_range<1>(n, wg), [=](sycl::nd_item<1> it) {
    float s = sycl::reduce_over_group(it.get_group(), in[it.get_global_id(0)],
                                      sycl::plus<float>());
    if (it.get_local_id(0) == 0) out[it.get_group(0)] = s;
  }).wait();
  double total = 0;
  for (int g = 0; g < n / wg; ++g) total += out[g];
  std::printf("device: %s\nsum: %.1f\n",
              q.get_device().get_info<sycl::info::device::name>().c_str(), total);
  sycl::free(in, q);
  sycl::free(out, q);
}
"""


def test_compiles_and_runs_a_group_reduction_on_the_omp_host_device(acpp, tmp_path):
    src = tmp_path / "reduce.cpp"
    src.write_text(GROUP_REDUCTION)
    exe = tmp_path / "reduce"
    proc = subprocess.run([acpp.path, "-O3", "--acpp-targets=omp", str(src), "-o", str(exe)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    expected = sum(i % 7 for i in range(1024))
    assert "device: AdaptiveCpp OpenMP host device" in run.stdout, run.stdout
    assert f"sum: {expected:.1f}" in run.stdout, run.stdout


def _scons(*args):
    proc = subprocess.run([str(SCONS), "-Q", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_scons_toolchains_shows_version_and_backends(acpp):
    out = _scons("toolchains")
    (row,) = [l for l in out.splitlines() if l.startswith("acpp ")]
    assert row.split()[:5] == ["acpp", "sycl", "yes", acpp.version, acpp.path]
    assert f"(backends: {', '.join(acpp.info['backends'])})" in row


def test_explain_keeps_oneapi_pip_the_default_and_says_what_acpp_leaves_out(acpp):
    # acpp makes every native image but no SPIR-V: partial service, so the
    # complete oneapi-pip wins though acpp comes first in preference.
    out = _scons("explain", "target=cpu-x86")
    lines = out.splitlines()
    (acpp_line,) = [l for l in lines if l.split()[:1] == ["acpp"]]
    assert acpp_line.split(None, 1)[1] == (
        "not selected: oneapi-pip builds all of avx512, avx2, sse4.2, spirv in one binary; "
        "acpp would build only avx512, avx2, sse4.2 (pin toolchain=acpp to build with it)"), out
    (selected,) = [l for l in lines if l.startswith("Selected ")]
    assert selected.startswith("Selected oneapi-pip "), out
    pinned = _scons("explain", "target=cpu-x86", "toolchain=acpp")
    assert "ACCEPTED: builds avx512, avx2, sse4.2 (leaves out spirv: AdaptiveCpp makes no SPIR-V" in pinned
    assert "  not in this binary: spirv (AdaptiveCpp makes no SPIR-V image" in pinned


# --------------------------------------------------------------------------
# Real: cpu-x86 built with acpp (one module per ISA), in a copy of the checkout

LEVELS = {"avx512": "v4", "avx2": "v3", "sse4.2": "v2"}
VARIANT = "build/cpu-x86/acpp"


@pytest.fixture(scope="module")
def built(acpp, tmp_path_factory):
    """A checkout copy with cpu-x86 built by acpp (verbose: the command lines)."""
    co = copy_checkout(tmp_path_factory.mktemp("acpp-build") / "co")
    proc = scons("verbose=1", "target=cpu-x86", "toolchain=acpp", cwd=co, timeout=1800)
    return co, proc.stdout


def _lines(out, *words):
    return [l for l in out.splitlines() if all(w in l.split() or w in l for w in words)]


def test_the_exact_command_lines_run(acpp, built):
    co, out = built
    flow = "--acpp-targets=omp.library-only"
    for isa, level in LEVELS.items():
        obj = f"{VARIANT}/modules/syclforge_kl/{isa}/obj/kernels/runtime/launch_lambda.os"
        (compile_,) = _lines(out, f"-o {obj}.tmp")
        words = compile_.split()
        assert words[0] == acpp.path
        assert words[1:4] == ["-o", f"{obj}.tmp", "-c"], compile_
        assert "-std=c++17" in words and "-O3" in words and flow in words and "-fPIC" in words
        assert f"-march=x86-64-{level}" in words and "kernels/runtime/launch_lambda.cpp" in words
        assert f"-ffile-prefix-map={co}=." in words
        (link,) = _lines(out, f"-o {VARIANT}/images/syclforge_kl/{isa}.so.tmp")
        lw = link.split()
        assert lw[0] == acpp.path and "-shared" in lw and "-Wl,--no-undefined" in lw and flow in lw
        assert f"-march=x86-64-{level}" in lw and obj in lw
    # the binary's own code: the same flow, no -march (it runs on any x86-64)
    for src in ("api", "common", "c_api", "runtime_sycl"):
        (line,) = _lines(out, f"-o {VARIANT}/obj/kernels/runtime/{src}.os.tmp")
        assert line.split()[0] == acpp.path and flow in line.split() and "-march" not in line
    for prog in ("kl-info", "minillm"):
        (line,) = _lines(out, f"-o {VARIANT}/bin/{prog}.tmp")
        assert line.split()[0] == acpp.path and flow in line.split()
    assert re.search(r"^cpu-x86\s+BUILT\s+acpp\s+avx512, avx2, sse4\.2, \(not spirv\)$", out, re.M), out[-2000:]
    assert "left out: AdaptiveCpp makes no SPIR-V image" in out


def test_each_module_holds_code_for_its_isa(built):
    """Read the modules, not the command line: AVX-512 code (zmm) only in the
    avx512 one, AVX (ymm) in avx2, neither in sse4.2; no path of this machine."""
    co, _ = built
    counts = {}
    for isa in LEVELS:
        so = co / VARIANT / "images" / "syclforge_kl" / f"{isa}.so"
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so)], capture_output=True,
                              text=True, check=True).stdout
        counts[isa] = (len(re.findall(r"%zmm", text)), len(re.findall(r"%ymm", text)))
        data = so.read_bytes()
        assert str(co).encode() not in data and str(_tools_dir()).encode() not in data, so
    assert counts["avx512"][0] > 0, counts
    assert counts["avx2"] == (0, counts["avx2"][1]) and counts["avx2"][1] > 0, counts
    assert counts["sse4.2"] == (0, 0), counts


def all_kernels_pass(stdout):
    """kl-info's summary: every op of its list (one PASS line each, as many
    as the library has ops: 22 now) passed."""
    m = re.search(r"^(\d+) passed, 0 failed$", stdout, re.M)
    return bool(m) and int(m.group(1)) == len(re.findall(r"^  \w+ +PASS ", stdout, re.M)) >= 22


def test_the_cpu_picks_the_module_and_the_switches_behave(built):
    co, _ = built
    kl_info = co / VARIANT / "bin" / "kl-info"
    best = best_image()
    proc = run([kl_info], env={"SYCLFORGE_VERBOSE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'syclforge: device="AdaptiveCpp OpenMP host device" image={best}' in proc.stderr
    assert "toolchain: acpp" in proc.stdout and all_kernels_pass(proc.stdout)
    for isa in LEVELS:
        assert re.search(rf"^  {re.escape(isa)}\s+native\s+\d+ bytes$", proc.stdout, re.M), proc.stdout
    forced = run([kl_info], env={"SYCLFORGE_IMAGE": "sse4.2"})
    assert forced.returncode == 0 and "image=sse4.2" in forced.stdout, forced.stdout + forced.stderr
    lowered = run([kl_info], env={"SYCLFORGE_CPU_ISAS": "sse4.2", "SYCLFORGE_VERBOSE": "1"})
    assert lowered.returncode == 0, lowered.stderr
    assert "avx512   refused: SYCLFORGE_CPU_ISAS=sse4.2 leaves avx512 out of this process" in lowered.stdout
    assert "image=sse4.2" in lowered.stderr
    above = run([kl_info], env={"SYCLFORGE_CPU_ISAS": "sse4.2", "SYCLFORGE_IMAGE": "avx2"})
    assert above.returncode != 0
    assert "SYCLFORGE_IMAGE=avx2 cannot run on this CPU:\n  avx2: SYCLFORGE_CPU_ISAS=sse4.2 leaves avx2 out" \
        in above.stderr, above.stderr
    none = run([kl_info], env={"SYCLFORGE_IMAGE": "spirv"})
    assert none.returncode != 0
    assert "SYCLFORGE_IMAGE=spirv: no such image in this binary (it holds: avx512, avx2, sse4.2)" in none.stderr


def test_a_header_edit_rebuilds_only_the_images_that_include_it_then_nothing(built):
    co, _ = built
    header = co / "kernels" / "ops" / "attention.hpp"   # included by launch_lambda.cpp alone
    original = header.read_text()
    header.write_text(original + "\n// edited by tests/test_acpp.py\n")
    try:
        out = scons("verbose=1", "target=cpu-x86", "toolchain=acpp", cwd=co, timeout=1800).stdout
    finally:
        header.write_text(original)
    compiled = sorted(re.findall(r"-o (\S+)\.tmp -c ", out))
    assert compiled == sorted(f"{VARIANT}/modules/syclforge_kl/{isa}/obj/kernels/runtime/launch_lambda.os"
                              for isa in LEVELS), out[-3000:]
    # a comment changes no code: the modules come out the same, nothing else is linked
    assert not re.search(r"-o \S+/(lib/libsyclforge_kl\.so|bin/kl-info|bin/minillm)\.tmp", out), out[-3000:]
    out = scons("verbose=1", "target=cpu-x86", "toolchain=acpp", cwd=co, timeout=1800).stdout
    assert sorted(re.findall(r"-o (\S+)\.tmp -c ", out)) == compiled, out[-3000:]   # back as it was: the same three
    again = scons("target=cpu-x86", "toolchain=acpp", cwd=co, timeout=600).stdout
    assert not re.search(r"^  (CXX|LINK|SHLINK|MODULE|EMBED) ", again, re.M), again


def test_release_carries_the_acpp_runtime_and_runs_from_the_bundle_alone(acpp, built, tmp_path):
    co, _ = built
    subprocess.run(["git", "init", "-q"], cwd=co, check=True)
    subprocess.run(["git", "add", "-A"], cwd=co, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"], cwd=co, check=True)
    scons("release", "target=cpu-x86", "toolchain=acpp", cwd=co, timeout=1800)
    (archive,) = (co / "dist").glob("*.tar.gz")
    assert archive.name == f"syclforge-{_version()}-cpu-x86-acpp.tar.gz"
    proc = run([REPO / ".venv" / "bin" / "syclforge", "verify", archive])
    assert proc.returncode == 0 and "verify: OK" in proc.stdout, proc.stdout + proc.stderr
    with tarfile.open(archive) as t:
        t.extractall(tmp_path)
    (root,) = tmp_path.iterdir()
    m = json.loads((root / "manifest.json").read_text())
    assert m["toolchain"]["name"] == "acpp" and m["toolchain"]["version"] == acpp.version
    assert m["variant"] == "acpp"
    carried = {c["path"]: c for c in m["runtime"]["carried"]}
    for path in ("lib/libacpp-rt.so", "lib/libacpp-common.so", "lib/hipSYCL/librt-backend-omp.so"):
        assert carried[path]["component"] == "acpp" and carried[path]["version"] == acpp.version
    for soname in ("libboost_context.so", "libboost_fiber.so", "libgomp.so"):
        (hit,) = [c for p, c in carried.items() if p.startswith("lib/" + soname)]
        assert hit["version"], hit
    assert "carried in lib/" in m["runtime"]["locate"]
    sbom = json.loads((root / "sbom.spdx.json").read_text())
    names = {(p["name"], p["versionInfo"]) for p in sbom["packages"]}
    assert ("acpp", acpp.version) in names
    assert [i["id"] for i in m["images"]] == ["avx512", "avx2", "sse4.2"]
    assert all(i["embedded_in"] == "lib/libsyclforge_kl.so" for i in m["images"])
    # From the bundle alone: no acpp installation and no build folder reachable.
    hidden = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "nocache"),
              "PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "", "ACPP_DEBUG_LEVEL": "3"}
    proc = subprocess.run([str(root / "bin" / "run"), "kl-info"], env=hidden, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and all_kernels_pass(proc.stdout), proc.stdout + proc.stderr
    assert re.search(r"Successfully opened plugin: \S*" + re.escape(str(root)) + r"/bin/\.\./lib/hipSYCL/"
                     r"librt-backend-omp\.so", proc.stdout), proc.stdout[:2000]   # AdaptiveCpp logs to stdout
    (root / "lib" / "libacpp-rt.so").unlink()
    proc = subprocess.run([str(root / "bin" / "run"), "kl-info"], env=hidden, capture_output=True, text=True)
    assert proc.returncode == 127
    assert "bin/run: this bundle lacks lib/libacpp-rt.so, part of the runtime it carries" in proc.stderr


def test_numerics_compares_every_image_of_both_toolchains(acpp):
    """`scons numerics` with oneapi-pip and acpp: every image of each against
    float64, pairwise across the toolchains, and each against its own second
    run (determinism), all within kernels/tolerances.yaml."""
    proc = scons("numerics", "target=cpu-x86", "toolchain=oneapi-pip,acpp", timeout=3600)
    report = json.loads((REPO / "build" / "numerics" / "report.json").read_text())
    ran = {(d["toolchain"], d["image"]) for d in report["devices"] if d["status"] == "ran"}
    isas = cpu_isas()
    assert ran == {("oneapi-pip", i) for i in isas + ["spirv"]} | {("acpp", i) for i in isas}, ran
    acpp_devices = [d for d in report["devices"] if d["toolchain"] == "acpp" and d["status"] == "ran"]
    assert all(d["device"] == "AdaptiveCpp OpenMP host device" and not d["nondeterministic"] for d in acpp_devices), \
        acpp_devices
    # an image above this process's ISAs (SYCLFORGE_CPU_ISAS) is unreachable, never a pass
    above = {(d["toolchain"], d["image"]) for d in report["devices"] if d["status"] == "unreachable"}
    assert above == {(tc, i) for tc in ("oneapi-pip", "acpp") for i in ("avx512", "avx2", "sse4.2") if i not in isas}
    across = [c for c in report["comparisons"] if c["kind"] == "pairwise"
              and {c["toolchain"], c["other"]["toolchain"]} == {"oneapi-pip", "acpp"}]
    ops = {c["op"] for c in across}
    assert {"gemm", "softmax", "attention", "model_logits", "model_tokens"} <= ops, sorted(ops)
    checked = {tc: {c["op"] for c in report["comparisons"] if c["kind"] == "reference" and c["toolchain"] == tc}
               for tc in ("oneapi-pip", "acpp")}
    assert checked["acpp"] == checked["oneapi-pip"] and "model_tokens" in checked["acpp"], checked
    assert report["violations"] == [] and report["summary"]["violations"] == 0, proc.stdout[-3000:]


def _version():
    import syclforge
    return syclforge.__version__


def test_every_kernel_test_runs_on_the_acpp_images(acpp):
    """tests/test_kernels.py as a whole on the library acpp builds (in this
    checkout, build/cpu-x86/acpp/): every op, shape and image. None skips."""
    env = dict(os.environ, SYCLFORGE_TEST_TOOLCHAIN="acpp")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "test_kernels.py")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3600)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    m = re.search(r"^(\d+) passed in ", proc.stdout.splitlines()[-1])
    assert m and int(m.group(1)) > 300, tail
    assert "skipped" not in proc.stdout.splitlines()[-1], tail


# --------------------------------------------------------------------------
# install.sh --acpp with fake archives (no AdaptiveCpp needed)

def _checkout(tmp_path):
    return install_sh_checkout(tmp_path)


def _fake_archive(tmp_path, cmakelists):
    archive = tmp_path / "AdaptiveCpp-fake.tar.gz"
    top = tmp_path / "AdaptiveCpp-fake"
    top.mkdir()
    (top / "CMakeLists.txt").write_text(cmakelists)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    return archive


def _nothing_detection_takes(tmp_path):
    tools = tmp_path / "cache" / "syclforge" / "toolchains"
    assert not [p.name for p in tools.glob("acpp-*") if p.is_dir()]
    assert not list(tools.glob(".acpp-*")), "temporary folders left behind"
    families = tc.load_families(REPO / "toolchains")
    (det,) = tc.detect([f for f in families if f.name == "acpp"],
                       environ={"PATH": str(tmp_path / "nothing"),
                                "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert not det.available and det.reason.startswith("not installed: ")


def _need_cmake_and_ninja():
    for tool in ("cmake", "ninja"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (./install.sh --acpp installs it)")


def test_install_sh_rejects_unknown_arguments(tmp_path):
    co, env = _checkout(tmp_path)
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp", "--bogus"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown argument '--bogus'" in proc.stderr
    assert "usage: ./install.sh [--containers] [--acpp [ARCHIVE]]" in proc.stderr


def test_install_sh_without_an_archive_says_so(tmp_path):
    co, env = _checkout(tmp_path)        # no ../shared/vendor next to it
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr   # optional: the rest goes on
    assert "AdaptiveCpp NOT installed: no source archive" in proc.stderr
    assert "installing syclforge" in proc.stdout       # the rest was done


def test_failed_configure_leaves_nothing_detection_takes(tmp_path):
    _need_cmake_and_ninja()
    co, env = _checkout(tmp_path)
    archive = _fake_archive(tmp_path, 'cmake_minimum_required(VERSION 3.13)\nproject(fake NONE)\n'
                                      'message(FATAL_ERROR "fake archive: configure fails")\n')
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp", str(archive)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[acpp 2/4] configuring" in proc.stdout
    assert "AdaptiveCpp NOT installed: the build failed" in proc.stderr
    assert "fake archive: configure fails" in proc.stderr       # the log's tail
    _nothing_detection_takes(tmp_path)


def test_interrupted_build_leaves_nothing_detection_takes(tmp_path):
    _need_cmake_and_ninja()
    co, env = _checkout(tmp_path)
    archive = _fake_archive(tmp_path, 'cmake_minimum_required(VERSION 3.13)\nproject(fake NONE)\n'
                                      'add_custom_target(slow ALL COMMAND sleep 300)\n')
    # SIGINT back to its default first: a shell that starts pytest in the
    # background (CI's may) leaves it ignored, and bash cannot trap a signal
    # ignored on entry, so the Ctrl-C below would never arrive.
    proc = subprocess.Popen(["bash", str(co / "install.sh"), "--acpp", str(archive)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        import threading   # a loaded machine can take minutes to get there; a hang cannot last
        watchdog = threading.Timer(900, lambda: os.killpg(proc.pid, signal.SIGKILL))
        watchdog.daemon = True
        watchdog.start()
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "[acpp 3/4] compiling" in line:
                break
        assert seen and "[acpp 3/4] compiling" in seen[-1], "".join(seen) + proc.stderr.read()
        time.sleep(1)
        tools = tmp_path / "cache" / "syclforge" / "toolchains"
        assert list(tools.glob(".acpp-*.partial-*")), "the build has not started"
        os.killpg(proc.pid, signal.SIGINT)       # Ctrl-C: the whole process group
        _, err = proc.communicate(timeout=30)
        watchdog.cancel()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert "AdaptiveCpp build interrupted" in err
    _nothing_detection_takes(tmp_path)


def test_second_run_reuses_the_build(tmp_path):
    co, env = _checkout(tmp_path)
    archive = _fake_archive(tmp_path, "not built: the cache already holds it\n")
    # the key: the archive's sha256 and install.sh's build options
    options = re.search(r'^acpp_cmake_options="([^"]*)"', (REPO / "install.sh").read_text(), re.M).group(1)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    sha = hashlib.sha256(f"{digest}\n{options}\n".encode()).hexdigest()[:16]
    fakes.fake_acpp_in_cache(tmp_path / "cache", sha=sha)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(co / "install.sh"), "--acpp", str(archive)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"AdaptiveCpp: reusing the build of AdaptiveCpp-fake.tar.gz in "
            f"{tmp_path / 'cache' / 'syclforge' / 'toolchains' / ('acpp-' + sha)}") in proc.stdout
    assert "[acpp 1/4]" not in proc.stdout
    assert time.monotonic() - start < 30
