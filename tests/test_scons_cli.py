"""What a user sees from SCons itself: help, and errors without tracebacks."""
import re

import pytest

from helpers import copy_checkout, scons


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("cli") / "src")


def test_help_documents_every_variable_and_alias(checkout):
    out = scons("-h", cwd=checkout).stdout
    for name in ("target", "toolchain", "strict", "cache", "format", "verbose", "docker", "bundle", "merge"):
        assert re.search(rf"^{name}: \S", out, re.M), f"{name} undocumented:\n{out}"
    for alias in ("toolchains", "explain", "release", "verify", "numerics", "bench"):
        assert re.search(rf"^  {alias}\s+\S", out, re.M), f"{alias} undocumented"
    assert "SYCLFORGE_IMAGE" in out and "SYCLFORGE_VERBOSE" in out and "SYCLFORGE_CPU_ISAS" in out


def test_unknown_target_lists_known_ones(checkout):
    proc = scons("target=cpu-x68", cwd=checkout, check=False)
    assert proc.returncode == 2
    assert "unknown target 'cpu-x68' (known: cpu-x86, intel-gpu, nvidia, amd)" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_variable_is_an_error(checkout):
    proc = scons("targte=all", cwd=checkout, check=False)
    assert proc.returncode == 2 and "unknown variable(s) targte" in proc.stderr


def test_malformed_targets_yaml_names_file_line_key_and_builds_nothing(checkout, tmp_path):
    bad = copy_checkout(tmp_path / "bad")
    text = (bad / "targets.yaml").read_text()
    text = text.replace("archs: [sm_90, sm_80]", "archs: [sm_90, sm_999]")
    (bad / "targets.yaml").write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "sm_999" in l)
    proc = scons("target=all", cwd=bad, check=False)
    assert proc.returncode == 2
    assert f"targets.yaml:{line}: targets.nvidia.archs[1]: unknown arch 'sm_999'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (bad / "build").exists()


def test_broken_toolchain_file_is_named(checkout, tmp_path):
    bad = copy_checkout(tmp_path / "badtc")
    path = bad / "toolchains" / "acpp.yaml"
    path.write_text(path.read_text().replace("preference:", "preferance:", 1))
    proc = scons("toolchains", cwd=bad, check=False)
    assert proc.returncode == 2
    assert "acpp.yaml:" in proc.stderr and "preferance" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
