"""Release bundles (README.md, "Releases"): the pure logic on tiny ELF files
made here with gcc, every way verify must refuse a bundle, and the real
thing: `scons release target=cpu-x86` in two fresh clones gives
byte-identical archives whose programs run, extracted anywhere, like build/."""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from helpers import REPO, copy_checkout
from syclforge.release import bundle, elf, verify
from syclforge.errors import SyclforgeError

ROOT = "syclforge-0.1.0-tiny"
IMAGE = bytes(range(256)) * 3 + b"syclforge-test-image"


# --------------------------------------------------------------------------
# A tiny build made with gcc: a runtime library from a fake wheel, a kernel
# library embedding a device image, a program that needs it by path (as a
# library without SONAME linked by path is recorded)

def _cc(*args, cwd):
    subprocess.run(["gcc", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    top = tmp_path_factory.mktemp("tiny")
    prefix = top / "rt"
    (prefix / "lib").mkdir(parents=True)
    (top / "src").mkdir()
    (top / "src" / "fake.c").write_text("int fake_answer(void) { return 42; }\n")
    _cc("-shared", "-fPIC", "-Wl,-soname,libfake.so.1", "-o", str(prefix / "lib" / "libfake.so.1"),
        "src/fake.c", cwd=top)
    (top / "src" / "kl.c").write_text(
        "int fake_answer(void);\n"
        "__attribute__((used)) const unsigned char kl_img[] = {" + ",".join(map(str, IMAGE)) + "};\n"
        "int kl_answer(void) { return fake_answer() + (kl_img[1] - 1); }\n")
    (top / "build" / "lib").mkdir(parents=True)
    (top / "build" / "bin").mkdir()
    rt_rel = os.path.relpath(prefix / "lib", top / "build" / "lib")
    _cc("-shared", "-fPIC", "-o", "build/lib/libsyclforge_kl.so", "src/kl.c", "-Lrt/lib", "-l:libfake.so.1",
        "-Wl,--disable-new-dtags", f"-Wl,-rpath,$ORIGIN/.:$ORIGIN/{rt_rel}", cwd=top)
    (top / "src" / "hello.c").write_text(
        '#include <stdio.h>\nint kl_answer(void);\n'
        'int main(void) { printf("answer %d\\n", kl_answer()); return 0; }\n')
    _cc("-o", "build/bin/hello", "src/hello.c", "build/lib/libsyclforge_kl.so", "-Lrt/lib", "-l:libfake.so.1",
        "-Wl,--disable-new-dtags", f"-Wl,-rpath,$ORIGIN/../lib:$ORIGIN/../{rt_rel}", cwd=top)
    (top / "build" / "images").mkdir()
    (top / "build" / "images" / "x.bin").write_bytes(IMAGE)
    (top / "include" / "syclforge").mkdir(parents=True)
    (top / "include" / "syclforge" / "kl_c.h").write_text("int kl_answer(void);\n")
    (top / "models" / "tiny").mkdir(parents=True)
    (top / "models" / "tiny" / "config.json").write_text('{"hidden_size": 8}\n')
    (top / "models" / "tiny" / "model.safetensors").write_bytes(b"\0" * 64)
    # The fake wheels, installed as pip would: dist-info in site-packages,
    # the library in <prefix>/lib (RECORD paths are relative to site-packages).
    sp = prefix / "lib" / "python3.11" / "site-packages"
    lib_sha = hashlib.sha256((prefix / "lib" / "libfake.so.1").read_bytes()).digest()
    import base64
    for name, version, requires, record in (
            ("fake-rt", "1.2.3", ["fake-dep (==2.*)"],
             [f"../../libfake.so.1,sha256={base64.urlsafe_b64encode(lib_sha).decode().rstrip('=')},1"]),
            ("fake-dep", "2.0.1", [], []),
            ("unrelated", "9.9", [], [])):
        d = sp / f"{name.replace('-', '_')}-{version}.dist-info"
        d.mkdir(parents=True)
        (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: Test\n" +
                                    "".join(f"Requires-Dist: {r}\n" for r in requires) + "\nbody\n")
        (d / "RECORD").write_text("\n".join(record + [f"{d.name}/METADATA,,"]) + "\n")
    return top


def _spec(tiny, out, **over):
    kw = dict(
        out=str(out), target={"name": "tiny", "description": "test", "vendor": "x86", "device": "cpu"},
        toolchain={"name": "fake-tc", "version": "1.0", "host_compiler": {"name": "gcc", "version": "0"}},
        programs=[str(tiny / "build" / "bin" / "hello")],
        libraries=[str(tiny / "build" / "lib" / "libsyclforge_kl.so")],
        headers=[(str(tiny / "include" / "syclforge" / "kl_c.h"), "syclforge/kl_c.h")],
        models=[("tiny", [str(tiny / "models" / "tiny" / f) for f in ("config.json", "model.safetensors")])],
        images=[{"id": "x", "kind": "native", "arch": "xarch", "file": str(tiny / "build" / "images" / "x.bin")}],
        flags={"cxx": ["-O2"]}, source_date_epoch=1700000000, git={"revision": "abc", "dirty": False},
        site_packages=str(tiny / "rt" / "lib" / "python3.11" / "site-packages"),
        forbidden=[str(tiny)])
    kw.update(over)
    return bundle.Spec(**kw)


@pytest.fixture(scope="session")
def tiny_bundle(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / f"{ROOT}.tar.gz"
    manifest = bundle.make_bundle(_spec(tiny, out))
    return out, manifest


# --------------------------------------------------------------------------
# Deterministic archives

def test_archive_is_deterministic_whatever_the_input_order(tmp_path):
    entries = [bundle.Entry("b/x", b"1", 0o755), bundle.Entry("a", b"22"), bundle.Entry("b/a/y", b"333")]
    one = bundle.write_tar_gz(str(tmp_path / "one.tar.gz"), "r", entries, 1234)
    two = bundle.write_tar_gz(str(tmp_path / "two.tar.gz"), "r", list(reversed(entries)), 1234)
    data = Path(one).read_bytes()
    assert data == Path(two).read_bytes()
    assert data[3] & 0x08 == 0, "gzip header holds a file name"
    assert data[4:8] == b"\0\0\0\0", "gzip header holds a time"
    with tarfile.open(one) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["r", "r/a", "r/b", "r/b/a", "r/b/a/y", "r/b/x"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (1234, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() or m.name == "r/b/x" else 0o644)
    assert not list(tmp_path.glob("*.tmp*")), "temporary file left behind"


def test_source_date_epoch_is_honoured_else_the_last_commit(tmp_path):
    assert bundle.source_date_epoch(str(tmp_path), {"SOURCE_DATE_EPOCH": "42"}) == 42
    with pytest.raises(SyclforgeError, match="not a number"):
        bundle.source_date_epoch(str(tmp_path), {"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(SyclforgeError, match="set SOURCE_DATE_EPOCH"):
        bundle.source_date_epoch(str(tmp_path), {})
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", GIT_COMMITTER_DATE="@1600000000 +0000")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "c"], check=True, env=env)
    assert bundle.source_date_epoch(str(tmp_path), {}) == 1600000000
    state = bundle.git_state(str(tmp_path))
    assert len(state["revision"]) == 40 and state["dirty"] is False
    (tmp_path / "f").write_text("y")
    assert bundle.git_state(str(tmp_path))["dirty"] is True
    # a folder inside someone else's repository is not a checkout of its own
    (tmp_path / "sub").mkdir()
    assert bundle.git_state(str(tmp_path / "sub")) == {"revision": None, "dirty": None}


# --------------------------------------------------------------------------
# ELF relocation

def test_elf_rewrites_rpath_and_needed_in_place(tiny):
    data = (tiny / "build" / "bin" / "hello").read_bytes()
    e = elf.Elf(data, "hello")
    assert e.rpath[0] == "RPATH" and e.rpath[1].startswith("$ORIGIN/../lib:")
    assert "build/lib/libsyclforge_kl.so" in e.needed
    e.set_rpath("$ORIGIN/../lib")
    e.set_needed("build/lib/libsyclforge_kl.so", "libsyclforge_kl.so")
    again = elf.Elf(bytes(e.data))
    assert again.rpath == ("RPATH", "$ORIGIN/../lib")
    assert again.needed[0] == "libsyclforge_kl.so"
    assert len(e.data) == len(data)
    with pytest.raises(elf.ElfError, match="longer"):
        again.set_rpath("$ORIGIN/" + "x" * 200)
    assert elf.newest_versions({"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_2.14"]}) == \
        {"GLIBC": "GLIBC_2.34"}
    with pytest.raises(elf.ElfError, match="not an ELF"):
        elf.Elf(b"#!/bin/sh\n")


# --------------------------------------------------------------------------
# A whole bundle

def _extract(archive, where):
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(where, filter="data")
        else:
            tar.extractall(where)


def _read(archive):
    with tarfile.open(archive) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()}


def test_bundle_holds_what_the_manifest_says(tiny_bundle):
    archive, manifest = tiny_bundle
    members = _read(archive)
    files = sorted(n[len(ROOT) + 1:] for n, (m, _) in members.items() if m.isreg())
    assert files == ["README", "SHA256SUMS", "bin/hello", "bin/run", "include/syclforge/kl_c.h",
                     "lib/libsyclforge_kl.so", "manifest.json", "models/tiny/config.json",
                     "models/tiny/model.safetensors", "sbom.spdx.json"]
    assert json.loads(members[f"{ROOT}/manifest.json"][1]) == manifest
    assert manifest["bundle"] == ROOT and manifest["source_date_epoch"] == 1700000000
    hello = next(f for f in manifest["files"] if f["path"] == "bin/hello")
    assert hello["elf"]["rpath"] == "$ORIGIN/../lib" and hello["elf"]["needed"][0] == "libsyclforge_kl.so"
    lib = next(f for f in manifest["files"] if f["path"] == "lib/libsyclforge_kl.so")
    assert lib["elf"]["rpath"] == "$ORIGIN"
    (img,) = manifest["images"]
    assert img["sha256"] == hashlib.sha256(IMAGE).hexdigest() and img["arch"] == "xarch"
    libdata = members[f"{ROOT}/lib/libsyclforge_kl.so"][1]
    assert libdata[img["offset"]:img["offset"] + img["size"]] == IMAGE
    rt = manifest["runtime"]
    assert [(w["name"], w["version"], w["direct"]) for w in rt["wheels"]] == \
        [("fake-dep", "2.0.1", False), ("fake-rt", "1.2.3", True)]
    assert rt["install"] == "python3 -m pip install fake-rt==1.2.3"
    assert "libc.so.6" in rt["system_libraries"]
    for name, (m, data) in members.items():
        if data is not None:
            assert str(Path(archive).parent).encode() not in data, name


def test_sbom_is_spdx_2_3_with_files_and_wheels(tiny_bundle):
    archive, manifest = tiny_bundle
    members = _read(archive)
    doc = json.loads(members[f"{ROOT}/sbom.spdx.json"][1])
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    names = {f["fileName"] for f in doc["files"]}
    assert "./bin/hello" in names and "./manifest.json" in names and "./SHA256SUMS" not in names
    for f in doc["files"]:
        assert {c["algorithm"] for c in f["checksums"]} == {"SHA1", "SHA256"}
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert pkgs["fake-rt"]["versionInfo"] == "1.2.3"
    assert pkgs["fake-rt"]["externalRefs"][0]["referenceLocator"] == "pkg:pypi/fake-rt@1.2.3"
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", pkgs["syclforge"]["SPDXID"]) in rels
    assert (pkgs["syclforge"]["SPDXID"], "DEPENDS_ON", pkgs["fake-rt"]["SPDXID"]) in rels
    assert (pkgs["fake-rt"]["SPDXID"], "DEPENDS_ON", pkgs["fake-dep"]["SPDXID"]) in rels


def test_same_inputs_same_bytes(tiny, tiny_bundle, tmp_path):
    again = tmp_path / f"{ROOT}.tar.gz"
    bundle.make_bundle(_spec(tiny, again))
    assert again.read_bytes() == Path(tiny_bundle[0]).read_bytes()


def test_a_leaking_build_path_is_refused(tiny, tmp_path):
    leak = tmp_path / "leak.json"
    leak.write_text(json.dumps({"where": str(tiny)}))
    spec = _spec(tiny, tmp_path / "x.tar.gz", models=[("tiny", [str(leak)])])
    with pytest.raises(SyclforgeError, match="models/tiny/leak.json holds " + str(tiny)):
        bundle.make_bundle(spec)
    assert not (tmp_path / "x.tar.gz").exists()


def test_extracted_bundle_runs_anywhere_with_only_its_runtime(tiny, tiny_bundle):
    where = Path(tempfile.mkdtemp(prefix="sf-relocated-"))
    try:
        _extract(tiny_bundle[0], where)
        b = where / ROOT
        base = {"PATH": "/usr/bin:/bin"}
        alone = subprocess.run([b / "bin" / "hello"], env=base, capture_output=True, text=True, cwd="/")
        assert alone.returncode != 0 and "libfake.so.1" in alone.stderr   # nothing leads to the build
        rt = subprocess.run([b / "bin" / "run", "hello"], cwd="/", capture_output=True, text=True,
                            env=dict(base, SYCLFORGE_RUNTIME=str(tiny / "rt" / "lib")))
        assert (rt.returncode, rt.stdout) == (0, "answer 42\n"), rt.stderr
        # found through the wheel installed for the python on PATH
        py = subprocess.run([b / "bin" / "run", "hello"], cwd="/", capture_output=True, text=True,
                            env=dict(base, SYCLFORGE_PYTHON=sys.executable,
                                     PYTHONPATH=str(tiny / "rt" / "lib" / "python3.11" / "site-packages")))
        assert (py.returncode, py.stdout) == (0, "answer 42\n"), py.stderr
        missing = subprocess.run([b / "bin" / "run", "hello"], cwd="/", capture_output=True, text=True,
                                 env=dict(base, SYCLFORGE_PYTHON=sys.executable))
        assert missing.returncode == 127
        assert "fake-rt is not installed" in missing.stderr and "pip install fake-rt==1.2.3" in missing.stderr
        nope = subprocess.run([b / "bin" / "run", "../../bin/sh"], capture_output=True, text=True, env=base)
        assert nope.returncode == 2 and "no program" in nope.stderr
        assert verify.verify(str(b)).ok
    finally:
        shutil.rmtree(where)


# --------------------------------------------------------------------------
# Verification: every refusal names its culprit

def _rewrite(src, dst, edit):
    """Copy archive src to dst through edit(list of (TarInfo, bytes)) -> list."""
    with tarfile.open(src) as tar:
        items = [(m, tar.extractfile(m).read() if m.isreg() else None) for m in tar.getmembers()]
    items = edit(items)
    with tarfile.open(dst, "w:gz") as out:
        for m, data in items:
            if data is not None:
                m.size = len(data)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    return str(dst)


def _file(name, data, mode=0o644):
    m = tarfile.TarInfo(name)
    m.size, m.mode = len(data), mode
    return m, data


def _link(name, target, kind=tarfile.SYMTYPE):
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, target
    return m, None


def _special(name):
    m = tarfile.TarInfo(name)
    m.type = tarfile.CHRTYPE
    return m, None


def _setuid(items, name):
    for m, _ in items:
        if m.name == name:
            m.mode = 0o4755
    return items


def _sums_fixed(items):
    """Recompute SHA256SUMS over the edited files (an attacker's move)."""
    files = {m.name[len(ROOT) + 1:]: d for m, d in items if d is not None and not m.name.endswith("SHA256SUMS")}
    text = "".join(f"{hashlib.sha256(d).hexdigest()}  {p}\n" for p, d in sorted(files.items()))
    return [(m, text.encode() if m.name.endswith("/SHA256SUMS") else d) for m, d in items]


def _flip(name):
    def edit(items):
        return [(m, (d[:len(d) // 2] + bytes([d[len(d) // 2] ^ 1]) + d[len(d) // 2 + 1:])
                    if m.name == f"{ROOT}/{name}" else d)
                for m, d in items]
    return edit


CASES = {
    "changed byte": (_flip("bin/hello"), "bin/hello", "changed file"),
    "changed model": (_flip("models/tiny/model.safetensors"), "models/tiny/model.safetensors", "changed file"),
    "extra file": (lambda it: it + [_file(f"{ROOT}/bin/evil", b"#!/bin/sh\n", 0o755)],
                   "bin/evil", "extra file"),
    "missing file": (lambda it: [x for x in it if x[0].name != f"{ROOT}/lib/libsyclforge_kl.so"],
                     "lib/libsyclforge_kl.so", "missing file"),
    "symlink out": (lambda it: it + [_link(f"{ROOT}/lib/libc.so.6", "../../../etc/passwd")],
                    f"{ROOT}/lib/libc.so.6", "symlink -> ../../../etc/passwd leads out of the bundle"),
    "absolute symlink": (lambda it: it + [_link(f"{ROOT}/bin/sh", "/bin/sh")],
                         f"{ROOT}/bin/sh", "leads out of the bundle"),
    "hard link out": (lambda it: it + [_link(f"{ROOT}/x", "/etc/shadow", tarfile.LNKTYPE)],
                      f"{ROOT}/x", "hard link -> /etc/shadow leads out of the bundle"),
    "dotdot entry": (lambda it: it + [_file(f"{ROOT}/../../evil.sh", b"x")],
                     f"{ROOT}/../../evil.sh", "path traversal"),
    "absolute entry": (lambda it: it + [_file("/tmp/evil.sh", b"x")], "/tmp/evil.sh", "absolute path"),
    "second top folder": (lambda it: it + [_file("other/x", b"x")], "other/x", "outside the bundle's one top"),
    "device file": (lambda it: it + [_special(f"{ROOT}/dev")], f"{ROOT}/dev", "device"),
    "setuid": (lambda it: _setuid(it, f"{ROOT}/bin/hello"), f"{ROOT}/bin/hello", "setuid"),
    "manifest edited, sums redone": (
        lambda it: _sums_fixed([(m, d.replace(b'"1.0"', b'"6.6"') if m.name.endswith("manifest.json") else d)
                                for m, d in it]), "manifest.json", "the SBOM has other checksums"),
    "file swapped, sums redone": (
        lambda it: _sums_fixed([(m, d + b"\n" if m.name.endswith("kl_c.h") else d) for m, d in it]),
        "include/syclforge/kl_c.h", "manifest.json has another sha256"),
    "image moved": (
        lambda it: _sums_fixed([(m, d.replace(IMAGE[:64], b"\xff" * 64) if m.name.endswith(".so") else d)
                                for m, d in it]), "lib/libsyclforge_kl.so", "device image x is not at offset"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_bundle_is_refused_naming_the_culprit(tiny_bundle, tmp_path, case):
    edit, culprit, why = CASES[case]
    bad = _rewrite(tiny_bundle[0], tmp_path / "bad.tar.gz", edit)
    result = verify.verify(bad)
    assert not result.ok
    assert any(c == culprit and why in w for c, w in result.problems), result.report()
    proc = subprocess.run([sys.executable, "-m", "syclforge.release.verify", bad], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "site_scons")))
    assert proc.returncode == 1 and "REFUSED" in proc.stderr and culprit in proc.stderr, proc.stderr


def test_entries_are_refused_before_any_content_is_read(tiny_bundle, tmp_path, monkeypatch):
    bad = _rewrite(tiny_bundle[0], tmp_path / "bad.tar.gz",
                   lambda it: it + [_file(f"{ROOT}/../evil", b"x")])
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda *a: pytest.fail("content was read"))
    assert not verify.verify(bad).ok


def test_verify_cli_ok_and_unreadable(tiny_bundle, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "site_scons"))
    ok = subprocess.run([sys.executable, "-m", "syclforge.release.verify", str(tiny_bundle[0])],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "verify: OK" in ok.stdout, ok.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    for path in (junk, tmp_path / "absent.tar.gz"):
        proc = subprocess.run([sys.executable, "-m", "syclforge.release.verify", str(path)],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 2 and str(path) in proc.stderr


def test_verify_refuses_a_symlink_out_of_an_extracted_folder(tiny_bundle, tmp_path):
    _extract(tiny_bundle[0], tmp_path)
    b = tmp_path / ROOT
    assert verify.verify(str(b)).ok
    (b / "lib" / "escape").symlink_to("/etc")
    result = verify.verify(str(b))
    assert ("lib/escape" in result.report() and "leads out of the bundle" in result.report()), result.report()


# --------------------------------------------------------------------------
# The real thing: two fresh clones, one release each

def _clone(dest):
    """A git clone of REPO at HEAD with REPO's uncommitted work laid over it
    (in CI the two are the same), and the venv running these tests at .venv,
    where install.sh puts it."""
    subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(dest)], check=True)
    copy_checkout(dest)
    gone = subprocess.run(["git", "ls-files", "-d", "-z"], cwd=REPO, capture_output=True,
                          check=True).stdout.split(b"\0")
    for rel in filter(None, gone):
        (dest / rel.decode()).unlink(missing_ok=True)
    (dest / ".venv").symlink_to(sys.prefix)
    with open(dest / ".git" / "info" / "exclude", "a") as f:
        f.write(".venv\n")
    return dest


def _release(clone):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SOURCE_DATE_EPOCH", "SYCLFORGE_IMAGE", "SYCLFORGE_VERBOSE")}
    py = clone / ".venv" / "bin" / "python"
    proc = subprocess.run([str(py), str(clone / ".venv" / "bin" / "scons"), "-Q", "release", "target=cpu-x86"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return clone / "dist" / "syclforge-0.1.0-cpu-x86.tar.gz"


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    if not (Path(sys.prefix) / "pyvenv.cfg").exists():
        pytest.skip("run from the project's venv (install.sh), which the clones share")
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    base = tmp_path_factory.mktemp("release")
    one = _clone(base / "one" / "syclforge")
    two = _clone(base / "two" / "much" / "deeper" / "checkout")
    return (one, _release(one)), (two, _release(two))


def test_two_clones_make_byte_identical_bundles(releases):
    (one, a), (two, b) = releases
    da, db = a.read_bytes(), b.read_bytes()
    if da != db:
        ma, mb = _read(a), _read(b)
        differ = sorted(n for n in set(ma) | set(mb) if (ma.get(n) or (0, 0))[1] != (mb.get(n) or (0, 0))[1])
        pytest.fail(f"bundles differ: {differ or 'in tar/gzip metadata only'}")
    assert hashlib.sha256(da).hexdigest() == hashlib.sha256(db).hexdigest()


def test_release_records_the_commit_and_its_time(releases):
    (one, a), _ = releases
    head = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%H %ct"], capture_output=True,
                          text=True, check=True).stdout.split()
    members = _read(a)
    root = "syclforge-0.1.0-cpu-x86"
    m = json.loads(members[f"{root}/manifest.json"][1])
    assert m["git"]["revision"] == head[0] and m["source_date_epoch"] == int(head[1])
    assert all(info.mtime == int(head[1]) for info, _ in members.values())
    assert {i["id"] for i in m["images"]} == {"avx512", "avx2", "sse4.2", "spirv"}
    assert all(len(i["sha256"]) == 64 and i["embedded_in"] == "lib/libsyclforge_kl.so" for i in m["images"])
    assert {w["name"] for w in m["runtime"]["wheels"] if w["direct"]} == {"intel-sycl-rt", "intel-opencl-rt"}
    assert {f["path"] for f in m["files"]} >= {"bin/kl-info", "bin/minillm", "bin/run", "lib/libsyclforge_kl.so",
                                               "include/syclforge/kl_c.h"}
    for model in sorted((REPO / "models").glob("*/config.json")):
        assert f"models/{model.parent.name}/config.json" in {f["path"] for f in m["files"]}


def test_no_build_path_inside_the_bundle(releases):
    (one, a), (two, b) = releases
    needles = {str(one), str(two), str(REPO), os.path.realpath(sys.prefix), sys.prefix}
    for name, (info, data) in _read(a).items():
        for n in needles:
            assert data is None or n.encode() not in data, f"{name} holds {n}"


def test_verify_accepts_the_release(releases):
    (one, a), _ = releases
    proc = subprocess.run([str(one / ".venv" / "bin" / "python"), str(one / ".venv" / "bin" / "scons"), "-Q",
                           "verify", f"bundle={a}"], cwd=one, capture_output=True, text=True)
    assert proc.returncode == 0 and "verify: OK" in proc.stdout, proc.stdout + proc.stderr


def _run(cmd, cwd, env, timeout=180):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def extracted(releases):
    (one, a), _ = releases
    where = Path(tempfile.mkdtemp(prefix="sf-bundle-"))
    _extract(a, where)
    yield one, where / "syclforge-0.1.0-cpu-x86"
    shutil.rmtree(where)


# Only what the manifest says: a python3 with the wheels on PATH (or
# SYCLFORGE_RUNTIME), nothing else of the build's environment.
def _lowered():
    """A lowered ISA set (SYCLFORGE_CPU_ISAS, a CI run as an AVX2 host) holds for the bundle too."""
    return {k: os.environ[k] for k in ("SYCLFORGE_CPU_ISAS",) if k in os.environ}


def _bare_env(**extra):
    return dict({"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", "HOME": "/nonexistent"}, **_lowered(), **extra)


def test_extracted_kl_info_runs_like_build(extracted):
    one, b = extracted
    ref = _run([one / "build" / "cpu-x86" / "bin" / "kl-info"], one, dict(os.environ))
    assert ref.returncode == 0, ref.stdout + ref.stderr
    got = _run([b / "bin" / "run", "kl-info"], "/", _bare_env())
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout == ref.stdout
    alone = _run([b / "bin" / "kl-info"], "/", {"PATH": "/usr/bin:/bin"})
    assert alone.returncode != 0 and "libsycl.so.8" in alone.stderr, "the bundle reaches the build's runtime"
    lib = Path(sys.prefix) / "lib"
    direct = _run([b / "bin" / "kl-info"], "/", {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(lib), **_lowered()})
    assert direct.returncode == 0 and direct.stdout == ref.stdout


def test_extracted_minillm_greedy_output_equals_build(extracted):
    one, b = extracted
    models = sorted(p.parent.name for p in (b / "models").glob("*/config.json")) if (b / "models").exists() else []
    if not models:
        pytest.skip("no model in models/ yet (models/<name>/config.json)")
    args = ["-p", "Once upon a time", "-n", "24", "--temp", "0"]
    ref = _run([one / "build" / "cpu-x86" / "bin" / "minillm", "-m", f"models/{models[0]}", *args],
               one, dict(os.environ))
    assert ref.returncode == 0, ref.stdout + ref.stderr
    got = _run([b / "bin" / "run", "minillm", "-m", b / "models" / models[0], *args], "/",
               _bare_env(SYCLFORGE_RUNTIME=str(Path(sys.prefix) / "lib"), PATH="/usr/bin:/bin"))
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout == ref.stdout and got.stdout.strip()


def test_model_files_are_what_a_program_loads(tmp_path):
    for n in ("config.json", "model.safetensors", "tokenizer.json", "check_logits.npy", "train_log.json"):
        (tmp_path / n).write_text("x")
    assert [Path(p).name for p in bundle.model_files(str(tmp_path))] == \
        ["config.json", "model.safetensors", "tokenizer.json"]
    (tmp_path / "config.json").unlink()
    assert bundle.model_files(str(tmp_path)) == []
