from syclforge.core import summary


def test_summary_table_rows():
    rows = [summary.Row("cpu-x86", "BUILT", "oneapi-pip", ("avx2", "spirv")),
            summary.Row("nvidia", "SKIPPED", "", (), "icpx: not installed"),
            summary.Row("amd", "FAILED", "acpp", ("gfx942",), "build/amd/lib/x.so: Error 1")]
    lines = summary.format_summary(rows).splitlines()
    assert lines[0].split() == ["target", "status", "toolchain", "images", "/", "reason"]
    assert lines[2].split() == ["cpu-x86", "BUILT", "oneapi-pip", "avx2,", "spirv"]
    assert lines[3].split()[:3] == ["nvidia", "SKIPPED", "-"] and lines[3].endswith("icpx: not installed")
    assert lines[4].endswith("build/amd/lib/x.so: Error 1")
    # columns line up
    assert len({l.index(l.split()[1]) for l in lines[2:]}) == 1


def test_first_failure_matches_only_its_target():
    failures = [("build/amd/obj/a.o", "Error 1"), ("build/cpu-x86/lib/libk.so", "Error 2")]
    assert summary.first_failure("build/cpu-x86", failures) == ("build/cpu-x86/lib/libk.so", "Error 2")
    assert summary.first_failure("build/cpu", failures) is None
    assert summary.first_failure("build/nvidia", failures) is None


def test_a_variant_failure_is_its_own_not_its_targets():
    # build/cpu-x86/acpp/ lies inside build/cpu-x86/: the default variant
    # must not claim the acpp build's failure, nor the other way round.
    failures = [("build/cpu-x86/acpp/lib/libk.so", "Error 1")]
    assert summary.first_failure("build/cpu-x86", failures, inner=["build/cpu-x86/acpp"]) is None
    assert summary.first_failure("build/cpu-x86/acpp", failures) == failures[0]


def test_a_built_row_says_what_it_left_out_and_why():
    rows = [summary.Row("cpu-x86", "BUILT", "acpp", ("avx2", "(not spirv)"), note="no SPIR-V flow here"),
            summary.Row("cpu-x86", "BUILT", "oneapi-pip", ("avx2", "spirv"))]
    lines = summary.format_summary(rows).splitlines()
    assert lines[2].split()[:3] == ["cpu-x86", "BUILT", "acpp"]
    assert lines[3].strip() == "left out: no SPIR-V flow here"
    assert lines[4].split()[:3] == ["cpu-x86", "BUILT", "oneapi-pip"] and len(lines) == 5
