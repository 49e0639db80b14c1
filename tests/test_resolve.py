"""Bazel-style resolution: preference order, complete-before-partial, pins,
and an explanation that accounts for every SYCL toolchain."""
from pathlib import Path

import pytest

import fakes
from syclforge.core import toolchains as tc
from syclforge.errors import SyclforgeError
from syclforge.core.model import Image, Target
from syclforge.core.resolve import Resolution, Verdict, explain, resolve

REPO = Path(__file__).resolve().parent.parent

from shipped import AMD, CPU_X86, INTEL_GPU, NVIDIA

FAMILIES = {f.name: f for f in tc.load_families(REPO / "toolchains")}

NOT_INSTALLED = "not installed: no {0} on PATH"
GPU_REASON = FAMILIES["oneapi-pip"].data["unsupported"]


def det(name, available=True, caps=None, unsupported=None, version="1.0.0"):
    """A Detected built directly (no tools run)."""
    fam = FAMILIES[name]
    if not available:
        return tc.Detected(name, fam, False, reason=NOT_INSTALLED.format(name))
    return tc.Detected(name, fam, True, version=version, path=f"/opt/{name}/bin/{name}",
                       capabilities=caps or {}, unsupported=unsupported or {})


ICPX_ALL = {"x86": ["avx512", "avx2", "sse4.2", "spirv"], "intel": ["pvc", "dg2", "spirv"],
            "nvidia": ["sm_90", "sm_80", "ptx"], "amd": ["gfx942", "gfx90a"]}
PIP = {"x86": ["avx512", "avx2", "sse4.2", "spirv"]}
PIP_UNSUPPORTED = dict(GPU_REASON)
ACPP_CAPS = {"x86": ["avx512", "avx2", "sse4.2"], "nvidia": ["sm_90", "sm_80", "ptx"],
             "amd": ["gfx942", "gfx90a"]}
ACPP_UNSUPPORTED = dict(FAMILIES["acpp"].data["unsupported"])


def everything():
    return [det("gcc"), det("icpx", caps=ICPX_ALL), det("intel-llvm", caps=ICPX_ALL),
            det("acpp", caps=ACPP_CAPS, unsupported=ACPP_UNSUPPORTED),
            det("oneapi-pip", caps=PIP, unsupported=PIP_UNSUPPORTED)]


def reasons(res):
    return {v.toolchain: v.reason for v in res.verdicts}


def test_first_complete_toolchain_in_preference_order_wins():
    res = resolve(NVIDIA, everything())
    assert res.ok and res.toolchain.name == "icpx"
    assert res.images == ("sm_90", "sm_80", "ptx") and res.dropped == ()
    assert [v.toolchain for v in res.verdicts] == ["icpx", "intel-llvm", "acpp", "oneapi-pip"]
    assert reasons(res) == {
        "icpx": "accepted: builds sm_90, sm_80, ptx",
        "intel-llvm": "not selected: icpx preferred",
        "acpp": "not selected: icpx preferred",
        "oneapi-pip": "refused: cannot produce sm_90, sm_80, ptx: " + GPU_REASON["nvidia"],
    }
    assert [v.accepted for v in res.verdicts] == [True, False, False, False]
    assert [v.status for v in res.verdicts] == ["accepted", "not selected", "not selected",
                                                "refused"]
    assert res.skip_reason is None


def test_unavailable_ones_are_skipped_with_their_reason():
    detected = [det("icpx", available=False), det("intel-llvm", available=False),
                det("acpp", caps=ACPP_CAPS, unsupported=ACPP_UNSUPPORTED),
                det("oneapi-pip", caps=PIP, unsupported=PIP_UNSUPPORTED)]
    res = resolve(AMD, detected)
    assert res.toolchain.name == "acpp"
    assert reasons(res)["icpx"] == "refused: not installed: no icpx on PATH"
    assert reasons(res)["acpp"] == "accepted: builds gfx942, gfx90a"


def test_complete_binary_beats_earlier_partial_one():
    # DPC++ holds one spir64_x86_64 image: oneapi-pip builds all four.
    res = resolve(CPU_X86, everything())
    assert res.toolchain.name == "oneapi-pip"
    assert res.images == ("avx512", "avx2", "sse4.2", "spirv")
    assert reasons(res)["icpx"] == (
        "not selected: oneapi-pip builds all of avx512, avx2, sse4.2, spirv in one binary; "
        "icpx would build only avx512, spirv (pin toolchain=icpx to build with it)")
    # acpp makes the natives but no SPIR-V: partial, so the complete one wins
    # although acpp comes first in preference.
    assert reasons(res)["acpp"] == (
        "not selected: oneapi-pip builds all of avx512, avx2, sse4.2, spirv in one binary; "
        "acpp would build only avx512, avx2, sse4.2 (pin toolchain=acpp to build with it)")


def test_portable_image_a_family_cannot_make_is_dropped_with_its_reason():
    # Rule 2: every native image, no portable one (the family's not_made).
    only_acpp = [det("icpx", available=False), det("intel-llvm", available=False),
                 det("acpp", caps=ACPP_CAPS, unsupported=ACPP_UNSUPPORTED), det("oneapi-pip", available=False)]
    pinned = resolve(CPU_X86, everything(), pin="acpp")
    for res in (resolve(CPU_X86, only_acpp), pinned):
        assert res.ok and res.toolchain.name == "acpp"
        assert res.images == ("avx512", "avx2", "sse4.2") and res.dropped == ("spirv",)
        assert res.note.startswith("AdaptiveCpp makes no SPIR-V image")
        assert reasons(res)["acpp"].startswith("accepted: builds avx512, avx2, sse4.2 (leaves out spirv: "
                                               "AdaptiveCpp makes no SPIR-V image")
        assert "  not in this binary: spirv (AdaptiveCpp makes no SPIR-V" in explain(res)


def test_a_missing_native_image_is_never_partial_service():
    # Without avx512 acpp would serve only part of the CPUs the target names:
    # refused, even though spirv alone would be dropped.
    caps = {"x86": ["avx2", "sse4.2"]}
    res = resolve(CPU_X86, [det("acpp", caps=caps, unsupported=ACPP_UNSUPPORTED), det("oneapi-pip", available=False)])
    assert not res.ok
    assert reasons(res)["acpp"].startswith("refused: cannot produce avx512: its x86 images are avx2, sse4.2")


def test_partial_toolchain_selected_when_nothing_builds_all():
    res = resolve(CPU_X86, [det("icpx", caps=ICPX_ALL), det("intel-llvm", caps=ICPX_ALL),
                            det("oneapi-pip", available=False)])
    assert res.ok and res.toolchain.name == "icpx"
    assert res.images == ("avx512", "spirv") and res.dropped == ("avx2", "sse4.2")
    assert "one spir64_x86_64 image per binary" in res.note
    accepted = reasons(res)["icpx"]
    assert accepted.startswith("accepted: builds avx512, spirv (leaves out avx2, sse4.2: "
                               "DPC++ embeds one spir64_x86_64 image per binary")
    assert "\n" not in accepted
    assert reasons(res)["intel-llvm"] == "not selected: icpx preferred"
    text = explain(res)
    assert "Selected icpx 1.0.0 (/opt/icpx/bin/icpx): images avx512, spirv" in text
    assert "  not in this binary: avx2, sse4.2 (DPC++ embeds one spir64_x86_64" in text


def test_nothing_can_build_gives_one_line_skip_reason():
    detected = [det("gcc"), det("icpx", available=False), det("intel-llvm", available=False),
                det("acpp", caps={"nvidia": ["sm_90", "sm_80", "ptx"]},
                    unsupported={**ACPP_UNSUPPORTED, "amd": "needs the HIP runtime backend"}),
                det("oneapi-pip", caps=PIP, unsupported=PIP_UNSUPPORTED)]
    res = resolve(AMD, detected)
    assert not res.ok and res.toolchain is None and res.images == ()
    assert res.skip_reason == (
        "no toolchain can build amd: "
        "icpx: not installed: no icpx on PATH; "
        "intel-llvm: not installed: no intel-llvm on PATH; "
        "acpp: cannot produce gfx942, gfx90a: needs the HIP runtime backend; "
        "oneapi-pip: cannot produce gfx942, gfx90a: " + GPU_REASON["amd"])
    assert "\n" not in res.skip_reason
    assert ("No toolchain selected for amd: icpx, intel-llvm: not installed; "
            "acpp, oneapi-pip: cannot produce gfx942, gfx90a") in explain(res)
    assert res.brief_reason == ("icpx, intel-llvm: not installed; "
                                "acpp, oneapi-pip: cannot produce gfx942, gfx90a")


def test_image_a_family_does_not_list_is_refused():
    target = Target("nv-new", "x", "nvidia", "gpu", (Image("sm_100", "native"), Image("ptx", "portable")))
    res = resolve(target, [det("icpx", caps=ICPX_ALL)])
    assert not res.ok
    assert reasons(res)["icpx"] == "refused: cannot produce sm_100: its nvidia images are sm_90, sm_80, ptx"


def test_pin_considers_only_that_toolchain():
    res = resolve(NVIDIA, everything(), pin="acpp")
    assert res.ok and res.toolchain.name == "acpp" and res.pinned == "acpp"
    assert reasons(res) == {
        "icpx": "not considered: toolchain=acpp pinned",
        "intel-llvm": "not considered: toolchain=acpp pinned",
        "acpp": "accepted: builds sm_90, sm_80, ptx",
        "oneapi-pip": "not considered: toolchain=acpp pinned",
    }
    text = explain(res)
    assert "toolchain=acpp pinned" in text.splitlines()[1]


def test_pin_that_cannot_serve():
    res = resolve(NVIDIA, everything(), pin="oneapi-pip")
    assert not res.ok and res.pinned == "oneapi-pip"
    assert res.skip_reason == ("toolchain=oneapi-pip was pinned but cannot serve nvidia: "
                               "cannot produce sm_90, sm_80, ptx: " + GPU_REASON["nvidia"])
    res = resolve(NVIDIA, [det("icpx", available=False), det("oneapi-pip", caps=PIP)], pin="icpx")
    assert res.skip_reason == ("toolchain=icpx was pinned but cannot serve nvidia: "
                               "not installed: no icpx on PATH")


def test_pin_of_partial_toolchain_is_served_partially():
    res = resolve(CPU_X86, everything(), pin="intel-llvm")
    assert res.toolchain.name == "intel-llvm"
    assert res.images == ("avx512", "spirv")


def test_unknown_pin_lists_known_toolchains():
    with pytest.raises(SyclforgeError) as e:
        resolve(NVIDIA, everything(), pin="acp")
    assert str(e.value) == ("toolchain=acp: unknown toolchain (did you mean acpp?); known SYCL "
                            "toolchains: icpx, intel-llvm, acpp, oneapi-pip")
    with pytest.raises(SyclforgeError) as e:
        resolve(NVIDIA, everything(), pin="gcc")
    assert str(e.value).startswith("toolchain=gcc: gcc is a host C++ compiler, not a SYCL toolchain; "
                                   "known SYCL toolchains: icpx, intel-llvm, acpp, oneapi-pip")


def test_explain_lists_every_family_with_its_verdict():
    res = resolve(INTEL_GPU, everything())
    lines = explain(res).splitlines()
    assert lines[0] == ("Toolchain resolution for target intel-gpu (vendor intel, gpu; "
                        "images pvc, dg2, spirv (portable))")
    body = lines[1:5]
    assert [l.split()[0] for l in body] == ["icpx", "intel-llvm", "acpp", "oneapi-pip"]
    assert body[0].split(None, 2)[1:] == ["ACCEPTED:", "builds pvc, dg2, spirv"]
    assert body[1].split(None, 1)[1] == "not selected: icpx preferred"
    assert body[2].split(None, 1)[1].startswith("refused: cannot produce pvc, dg2, spirv: "
                                                "AdaptiveCpp reaches Intel GPUs only")
    assert body[3].split(None, 1)[1] == ("refused: cannot produce pvc, dg2, spirv: "
                                         + GPU_REASON["intel"])
    assert lines[5] == "Selected icpx 1.0.0 (/opt/icpx/bin/icpx): images pvc, dg2, spirv"
    assert len(lines) == 6


def test_host_compilers_are_never_candidates():
    res = resolve(CPU_X86, [det("gcc"), det("clang")])
    assert not res.ok and res.verdicts == []
    assert res.skip_reason == "no toolchain can build cpu-x86: no SYCL toolchain families are loaded"


def test_resolution_on_this_machine(tmp_path):
    """The real oneapi-pip in .venv serves cpu-x86; GPUs are skipped (no
    GPU compilers installed here)."""
    env = {"PATH": "/usr/bin:/bin"}
    detected = tc.detect(list(FAMILIES.values()), environ=env, python_prefix=REPO / ".venv")
    cpu = resolve(CPU_X86, detected)
    assert cpu.ok and cpu.toolchain.name == "oneapi-pip" and cpu.toolchain.version == "2025.3.3"
    assert cpu.images == ("avx512", "avx2", "sse4.2", "spirv")
    gpu = resolve(NVIDIA, detected)
    assert not gpu.ok
    assert gpu.skip_reason.startswith("no toolchain can build nvidia: icpx: not installed: ")
    assert "; oneapi-pip: cannot produce sm_90, sm_80, ptx: the PyPI runtime has no GPU backend" \
        in gpu.skip_reason


def test_resolution_with_fakes_end_to_end(tmp_path):
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=())           # no CUDA plugin
    acpp = fakes.fake_acpp(tmp_path / "acpp", backends=("omp", "cuda"))
    env = fakes.fake_env(Path(icpx).parent, Path(acpp).parent)
    detected = tc.detect(list(FAMILIES.values()), environ=env, python_prefix=tmp_path / "none")
    res = resolve(NVIDIA, detected)
    assert res.toolchain.name == "acpp"
    assert reasons(res)["icpx"].startswith(
        "refused: cannot produce sm_90, sm_80, ptx: needs Codeplay's oneAPI for NVIDIA GPUs plugin")
    assert resolve(INTEL_GPU, detected).toolchain.name == "icpx"
    assert isinstance(res, Resolution) and all(isinstance(v, Verdict) for v in res.verdicts)


# --- several toolchains side by side (toolchain=a,b / all) -------------------------

def test_variants_build_side_by_side_in_their_own_folders():
    from syclforge.core.resolve import parse_pins, resolve_variants
    found = everything()
    assert parse_pins("", found) is None
    assert parse_pins("all", found) == ["icpx", "intel-llvm", "acpp", "oneapi-pip"]
    assert parse_pins(" oneapi-pip, acpp ", found) == ["oneapi-pip", "acpp"]
    with pytest.raises(SyclforgeError, match="named twice"):
        parse_pins("acpp,acpp", found)
    (plain,) = resolve_variants(CPU_X86, found, None)
    assert (plain.toolchain.name, plain.variant, plain.build_dir) == ("oneapi-pip", "", "build/cpu-x86")
    pip, acpp = resolve_variants(CPU_X86, found, ["oneapi-pip", "acpp"])
    # the resolver's own pick keeps build/<target>/; any other gets a folder of its own
    assert (pip.variant, pip.build_dir, pip.label) == ("", "build/cpu-x86", "cpu-x86")
    assert (acpp.variant, acpp.build_dir, acpp.label) == ("acpp", "build/cpu-x86/acpp", "cpu-x86/acpp")
    assert acpp.dropped == ("spirv",)


def test_all_leaves_out_toolchains_that_cannot_serve_but_a_named_one_is_skipped():
    from syclforge.core.resolve import resolve_variants
    found = [det("icpx", available=False), det("intel-llvm", available=False),
             det("acpp", caps=ACPP_CAPS, unsupported=ACPP_UNSUPPORTED),
             det("oneapi-pip", caps=PIP, unsupported=PIP_UNSUPPORTED)]
    every = resolve_variants(AMD, found, ["acpp", "oneapi-pip"], every=True)
    assert [(r.toolchain.name, r.variant) for r in every] == [("acpp", "")]
    named = resolve_variants(AMD, found, ["acpp", "oneapi-pip"])
    assert [r.ok for r in named] == [True, False]
    assert named[1].skip_reason.startswith("toolchain=oneapi-pip was pinned but cannot serve amd")
    # nothing serves: 'all' still gives one row, saying why
    (none,) = resolve_variants(AMD, [det("oneapi-pip", caps=PIP, unsupported=PIP_UNSUPPORTED)], ["oneapi-pip"],
                               every=True)
    assert not none.ok and "no toolchain can build amd" in none.skip_reason
