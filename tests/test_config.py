"""targets.yaml loading: the shipped file, and every way a user can get it
wrong, each reported as file:line: key: message."""
import json
import textwrap
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from syclforge.core import config, yamlpos
from syclforge.errors import ConfigError, SyclforgeError
from syclforge.core.model import Image

REPO = Path(__file__).resolve().parent.parent

# A valid file whose line numbers the tests rely on:
# 1 version, 2 targets, 3 nvidia, 4 description, 5 vendor, 6 device, 7 archs, 8 portable
NVIDIA = """\
version: 1
targets:
  nvidia:
    description: NVIDIA GPUs
    vendor: nvidia
    device: gpu
    archs: [sm_90, sm_80]
    portable: ptx
"""


def write(tmp_path, text, name="targets.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load_targets(path)
    return path, info.value


def check(path, err, line, key, *fragments):
    """The error names the file, the exact line and the key, in that order,
    and its message says each of fragments."""
    assert (err.path, err.line, err.key) == (str(path), line, key)
    prefix = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert str(err).startswith(prefix), str(err)
    for fragment in fragments:
        assert fragment in err.message, err.message


# --- the shipped file -----------------------------------------------------

def test_shipped_targets_load_in_file_order_with_images_best_first():
    targets = config.load_targets(REPO / "targets.yaml")
    assert list(targets) == ["cpu-x86", "intel-gpu", "nvidia", "amd"]
    images = {name: [(i.id, i.kind) for i in t.images] for name, t in targets.items()}
    assert images == {
        "cpu-x86": [("avx512", "native"), ("avx2", "native"), ("sse4.2", "native"),
                    ("spirv", "portable")],
        "intel-gpu": [("pvc", "native"), ("dg2", "native"), ("spirv", "portable")],
        "nvidia": [("sm_90", "native"), ("sm_80", "native"), ("ptx", "portable")],
        "amd": [("gfx942", "native"), ("gfx90a", "native")],
    }
    assert [(t.vendor, t.device) for t in targets.values()] == [
        ("x86", "cpu"), ("intel", "gpu"), ("nvidia", "gpu"), ("amd", "gpu")]
    assert all(t.description for t in targets.values())
    # Target.line is the line declaring it, so later errors can point there.
    lines = (REPO / "targets.yaml").read_text().splitlines()
    for name, t in targets.items():
        assert lines[t.line - 1] == f"  {name}:"


def test_schema_is_valid_draft_2020_12():
    assert config.schema_path() == REPO / "site_scons/syclforge/core/targets.schema.json"
    schema = json.loads(config.schema_path().read_text())
    Draft202012Validator.check_schema(schema)


def test_minimal_file_builds_targets(tmp_path):
    targets = config.load_targets(write(tmp_path, NVIDIA))
    t = targets["nvidia"]
    assert t.images == (Image("sm_90", "native"), Image("sm_80", "native"),
                        Image("ptx", "portable"))
    assert (t.native, t.portable, t.line) == (["sm_90", "sm_80"], ["ptx"], 3)


# --- schema errors, humanised ---------------------------------------------

def test_unknown_key_is_reported_on_its_own_line(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    archs:", "    arch:"))
    # Not "missing archs" on the target's line: the typo is the real problem.
    check(path, err, 7, "targets.nvidia.arch",
          "unknown key 'arch' (allowed: description, vendor, device, isas, archs, "
          "portable)", "did you mean 'archs'?")


def test_unknown_top_level_key(tmp_path):
    path, err = load_error(tmp_path, NVIDIA + "toolchain: icpx\n")
    check(path, err, 9, "toolchain", "unknown key 'toolchain' (allowed: version, targets)")


def test_unknown_arch_points_at_the_list_item(tmp_path):
    text = NVIDIA.replace("    archs: [sm_90, sm_80]\n",
                          "    archs:\n      - sm_90\n      - sm_999\n")
    path, err = load_error(tmp_path, text)
    check(path, err, 9, "targets.nvidia.archs[1]",
          "unknown arch 'sm_999' for vendor nvidia; known: sm_50, ", "sm_90, sm_100, sm_120")


def test_unknown_isa_for_x86(tmp_path):
    path, err = load_error(tmp_path, """\
        version: 1
        targets:
          cpu:
            description: CPUs
            vendor: x86
            device: cpu
            isas: [avx2, neon]
        """)
    check(path, err, 7, "targets.cpu.isas[1]",
          "unknown ISA 'neon' for vendor x86; known: avx512, avx2, sse4.2")


def test_arch_of_another_vendor_is_unknown(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("sm_80]", "gfx90a]"))
    check(path, err, 7, "targets.nvidia.archs[1]", "unknown arch 'gfx90a' for vendor nvidia")


def test_unknown_vendor(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("vendor: nvidia", "vendor: arm"))
    check(path, err, 5, "targets.nvidia.vendor",
          "unknown vendor 'arm' (known: x86, intel, nvidia, amd)")


def test_wrong_type_says_expected_and_got(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("[sm_90, sm_80]", "sm_90"))
    check(path, err, 7, "targets.nvidia.archs", "expected a list, got str 'sm_90'")


def test_wrong_type_wins_over_enum_at_the_same_key(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("vendor: nvidia", "vendor: [nvidia]"))
    check(path, err, 5, "targets.nvidia.vendor", "expected a string, got a list")


def test_yaml_boolean_trap_is_explained(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("portable: ptx", "portable: no"))
    check(path, err, 8, "targets.nvidia.portable",
          "expected a string, got bool False", "quote it")


def test_device_must_match_vendor(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("device: gpu", "device: cpu"))
    check(path, err, 6, "targets.nvidia.device", "must be 'gpu' for vendor nvidia, got 'cpu'")


def test_isas_on_a_gpu_vendor(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    portable: ptx\n", "    isas: [avx2]\n"))
    check(path, err, 8, "targets.nvidia.isas", "'isas' does not apply to vendor nvidia; use 'archs'")


def test_amd_has_no_portable_image(tmp_path):
    text = NVIDIA.replace("nvidia", "amd").replace("[sm_90, sm_80]", "[gfx942]")
    path, err = load_error(tmp_path, text.replace("portable: ptx", "portable: spirv"))
    check(path, err, 8, "targets.amd.portable", "vendor amd has no portable image; remove 'portable'")


def test_wrong_portable_image_for_vendor(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("portable: ptx", "portable: spirv"))
    check(path, err, 8, "targets.nvidia.portable",
          "unknown portable image 'spirv' for vendor nvidia; known: ptx")


def test_empty_native_list(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("[sm_90, sm_80]", "[]"))
    check(path, err, 7, "targets.nvidia.archs", "must not be empty", "at least one native image")


def test_native_list_needed(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    archs: [sm_90, sm_80]\n", ""))
    # The key is absent, so the line is the target's.
    check(path, err, 3, "targets.nvidia.archs", "missing required key 'archs'",
          "a gpu target lists its native archs")


def test_missing_description(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    description: NVIDIA GPUs\n", ""))
    check(path, err, 3, "targets.nvidia.description", "missing required key 'description'")


def test_arch_listed_twice(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("sm_80]", "sm_90]"))
    check(path, err, 7, "targets.nvidia.archs", "'sm_90' is listed twice")


def test_bad_target_name(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("  nvidia:", "  NVIDIA_gpu:"))
    check(path, err, 3, "targets.NVIDIA_gpu", "invalid target name 'NVIDIA_gpu'",
          "lowercase letters, digits and '-'")


def test_unsupported_version(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("version: 1", "version: 2"))
    check(path, err, 1, "version", "unsupported version 2; this syclforge reads version 1")


def test_no_targets(tmp_path):
    path, err = load_error(tmp_path, "version: 1\ntargets: {}\n")
    check(path, err, 2, "targets", "no targets declared")


def test_top_level_must_be_a_mapping(tmp_path):
    path, err = load_error(tmp_path, "- nvidia\n- amd\n")
    check(path, err, 1, None, "expected a mapping, got a list")


def test_first_error_in_file_order_is_reported(tmp_path):
    # Two errors: the device on line 6 and the arch on line 7; the schema
    # happens to check archs first, the report must not depend on that.
    text = NVIDIA.replace("device: gpu", "device: tpu").replace("sm_80", "sm_0")
    path, err = load_error(tmp_path, text)
    check(path, err, 6, "targets.nvidia.device", "unknown device 'tpu' (known: cpu, gpu)")


# --- YAML-level errors ----------------------------------------------------

def test_duplicate_key(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    device: gpu\n",
                                                    "    device: gpu\n    vendor: amd\n"))
    check(path, err, 7, "targets.nvidia.vendor", "duplicate key 'vendor' (first defined on line 5)")


def test_duplicate_target(tmp_path):
    path, err = load_error(tmp_path, NVIDIA + NVIDIA.split("targets:\n")[1])
    check(path, err, 9, "targets.nvidia", "duplicate key 'nvidia' (first defined on line 3)")


def test_yaml_syntax_error_has_the_line(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    vendor: nvidia", "    vendor: 'nvidia"))
    check(path, err, 9, None, "invalid YAML", "while scanning a quoted scalar started on line 5")


def test_yaml_syntax_error_bad_indent(tmp_path):
    path, err = load_error(tmp_path, NVIDIA.replace("    device: gpu", "     device: gpu"))
    check(path, err, 6, None, "invalid YAML: mapping values are not allowed here")


def test_missing_file_says_to_create_it(tmp_path):
    path = tmp_path / "targets.yaml"
    with pytest.raises(ConfigError) as info:
        config.load_targets(path)
    assert str(info.value).startswith(f"{path}: file not found; create it")
    assert "version: 1" in str(info.value)


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    path, err = load_error(tmp_path, text)
    check(path, err, 1, None, "file is empty")


# --- yamlpos on its own ---------------------------------------------------

def test_yamlpos_lines_for_block_and_flow():
    data, lines = yamlpos.loads("a:\n  b: [x, y]\n  c:\n    - 1\n    - on\n")
    assert data == {"a": {"b": ["x", "y"], "c": [1, True]}}
    assert lines == {(): 1, ("a",): 1, ("a", "b"): 2, ("a", "b", 0): 2, ("a", "b", 1): 2,
                     ("a", "c"): 3, ("a", "c", 0): 4, ("a", "c", 1): 5}
    assert yamlpos.line_of(lines, ("a", "c", "missing")) == 3
    assert yamlpos.dotted(("a", "c", 1)) == "a.c[1]"


# --- select_targets -------------------------------------------------------

@pytest.fixture
def shipped():
    return config.load_targets(REPO / "targets.yaml")


def test_select_all_keeps_file_order(shipped):
    assert [t.name for t in config.select_targets(shipped, "all")] == [
        "cpu-x86", "intel-gpu", "nvidia", "amd"]


def test_select_list_in_given_order(shipped):
    picked = config.select_targets(shipped, " amd, nvidia,amd ")
    assert [t.name for t in picked] == ["amd", "nvidia"]
    assert picked[0] is shipped["amd"]


def test_select_unknown_target(shipped):
    with pytest.raises(SyclforgeError) as info:
        config.select_targets(shipped, "nvidia,foo")
    assert str(info.value) == ("unknown target 'foo' (known: cpu-x86, intel-gpu, nvidia, "
                               "amd); targets are declared in targets.yaml")


def test_select_misspelled_target_suggests(shipped):
    with pytest.raises(SyclforgeError, match=r"unknown target 'nvida' .*did you mean 'nvidia'\?$"):
        config.select_targets(shipped, "nvida")


def test_select_several_unknown(shipped):
    with pytest.raises(SyclforgeError, match=r"^unknown targets 'foo', 'bar' \(known: "):
        config.select_targets(shipped, "foo,bar")


def test_select_nothing(shipped):
    with pytest.raises(SyclforgeError, match="no targets selected"):
        config.select_targets(shipped, " , ")


def test_shipped_file_yields_the_targets_unit_tests_use():
    import shipped
    loaded = config.load_targets(REPO / "targets.yaml")
    assert [(t.name, t.vendor, t.device, t.images) for t in loaded.values()] == \
        [(t.name, t.vendor, t.device, t.images) for t in shipped.TARGETS]
