"""What a bundle carries of a toolchain's runtime (syclforge/release/carry.py),
with fake ldd and package lookups: the installation's files, the needed
libraries by pattern, per-vendor plugins, and clear errors."""
import os

import pytest

from syclforge.errors import SyclforgeError
from syclforge.release import carry

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibacpp-common.so => {root}/lib/libacpp-common.so (0x00007f01)
\tlibboost_fiber.so.1.74.0 => /usr/lib/x86_64-linux-gnu/libboost_fiber.so.1.74.0 (0x00007f02)
\tlibgomp.so.1 => /usr/lib/x86_64-linux-gnu/libgomp.so.1 (0x00007f03)
\tlibstdc++.so.6 => /usr/lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f04)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f05)
"""
SPEC = {"carry": ["lib/libacpp-rt.so", "lib/libacpp-common.so"],
        "carry_for": {"x86": ["lib/hipSYCL/librt-backend-omp.so"],
                      "nvidia": ["lib/hipSYCL/librt-backend-omp.so", "lib/hipSYCL/librt-backend-cuda.so"]},
        "carry_needed": ["libboost_fiber.so*", "libgomp.so*"]}


@pytest.fixture
def root(tmp_path):
    for rel in ("lib/libacpp-rt.so", "lib/libacpp-common.so", "lib/hipSYCL/librt-backend-omp.so",
                "lib/hipSYCL/librt-backend-cuda.so"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\x7fELF")
    return tmp_path


def test_parse_ldd_reads_resolved_and_missing_libraries():
    found, missing = carry.parse_ldd(LDD.format(root="/opt/acpp") + "\tlibcuda.so.1 => not found\n")
    assert found["libgomp.so.1"] == "/usr/lib/x86_64-linux-gnu/libgomp.so.1"
    assert "linux-vdso.so.1" not in found and missing == ["libcuda.so.1"]


def test_plan_carries_the_installation_then_the_needed_libraries_by_pattern(root):
    packages = {"/usr/lib/x86_64-linux-gnu/libgomp.so.1": ("libgomp1", "12.2.0-14")}
    out = carry.plan(family="acpp", version="24.06.0", root=str(root), spec=SPEC, binaries=["/b/kl.so"],
                     vendor="x86", ldd=lambda f: LDD.format(root=root),
                     package_of=lambda p: packages.get(p, (None, None)))
    dests = [c["dest"] for c in out]
    assert dests == ["lib/libacpp-rt.so", "lib/libacpp-common.so", "lib/hipSYCL/librt-backend-omp.so",
                     "lib/libboost_fiber.so.1.74.0", "lib/libgomp.so.1"]
    by = {c["dest"]: c for c in out}
    assert by["lib/libacpp-rt.so"]["component"] == "acpp" and by["lib/libacpp-rt.so"]["version"] == "24.06.0"
    assert (by["lib/libgomp.so.1"]["component"], by["lib/libgomp.so.1"]["version"]) == ("libgomp1", "12.2.0-14")
    # no Debian package known: the soname's version stands in
    assert by["lib/libboost_fiber.so.1.74.0"]["version"] == "1.74.0"
    assert "libstdc++.so.6" not in " ".join(dests)          # the system's: not carried


def test_plugins_are_carried_only_for_their_vendor(root):
    run = lambda vendor: [c["dest"] for c in carry.plan(
        family="acpp", version="1", root=str(root), spec=dict(SPEC, carry_needed=[]), binaries=[],
        vendor=vendor)]
    assert run("x86")[-1] == "lib/hipSYCL/librt-backend-omp.so" and len(run("x86")) == 3
    assert run("nvidia")[-2:] == ["lib/hipSYCL/librt-backend-omp.so", "lib/hipSYCL/librt-backend-cuda.so"]


def test_a_missing_installation_file_or_needed_library_is_named(root):
    os.unlink(root / "lib" / "libacpp-common.so")
    with pytest.raises(SyclforgeError, match=r"acpp: its runtime file lib/libacpp-common.so is not in .*reinstall"):
        carry.plan(family="acpp", version="1", root=str(root), spec=SPEC, binaries=[], vendor="x86")
    (root / "lib" / "libacpp-common.so").write_bytes(b"x")
    lost = "\tlibgomp.so.1 => not found\n"
    with pytest.raises(SyclforgeError, match=r"libraries the bundle must carry are not found.*needs libgomp.so.1"):
        carry.plan(family="acpp", version="1", root=str(root), spec=SPEC, binaries=["/b/kl.so"], vendor="x86",
                   ldd=lambda f: lost, package_of=lambda p: (None, None))


def test_rpath_reaches_lib_from_a_plugin_folder():
    assert carry.rpath_for("lib/libacpp-rt.so") == "$ORIGIN"
    assert carry.rpath_for("lib/hipSYCL/librt-backend-omp.so") == "$ORIGIN/.."
