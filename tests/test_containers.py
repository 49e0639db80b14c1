"""Per-vendor container images (toolchains/containers/, oci.py,
imagebuild.py, docker_run.py) and the CI workflow that uses them.

The last tests are real: they need root, mmdebstrap and a Docker engine
(started here if installed but not running). .ci/run installs both; on a
machine without them they are skipped, except under CI where they fail.
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO, copy_checkout, cpu_isas, scons
from syclforge import containers
from syclforge.containers import docker_run, imagebuild, inside, oci
from syclforge.core import config, toolchains
from syclforge.errors import ConfigError, SyclforgeError

GPU_FAMILIES = ["intel", "nvidia", "amd"]
EPOCH = 1700000000


def _defs(top=REPO):
    targets = config.load_targets(Path(top) / "targets.yaml")
    families = toolchains.load_families(Path(top) / "toolchains")
    return targets, containers.load_definitions(top, targets, families)


# --------------------------------------------------------------------------
# oci.py: deterministic layers and image archives

def _make_tree(root, mtime, order=1):
    names = ["b.txt", "a/x.so", "a/sub/y", "c"]
    for n in names[::order]:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content of {n}\n")
    os.chmod(root / "a" / "x.so", 0o755)
    (root / "link").symlink_to("b.txt")
    os.link(root / "c", root / "a" / "c-hard")
    for p in sorted(root.rglob("*"), reverse=True):
        os.utime(p, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def _layer(tmp, tree, name, **kw):
    w = oci.LayerWriter(tmp / name, EPOCH)
    w.add_tree(tree, **kw)
    return w.close(), (tmp / name).read_bytes()


def test_layer_bytes_ignore_mtimes_and_creation_order(tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    _make_tree(t1, 1_000_000, order=1)
    _make_tree(t2, 1_900_000_000, order=-1)
    d1, b1 = _layer(tmp_path, t1, "l1.tar")
    d2, b2 = _layer(tmp_path, t2, "l2.tar")
    assert b1 == b2 and d1 == d2
    assert d1 == "sha256:" + __import__("hashlib").sha256(b1).hexdigest()


def test_layer_entries_are_normalised(tmp_path):
    tree = tmp_path / "t"
    _make_tree(tree, 1_234_567)
    _, data = _layer(tmp_path, tree, "l.tar", owner=(0, 0))
    with tarfile.open(tmp_path / "l.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode())
    assert all(m.mtime == EPOCH and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == ""
               for m in members)
    by = {m.name: m for m in members}
    assert by["a/x.so"].mode == 0o755 and by["b.txt"].mode == 0o644
    assert by["link"].issym() and by["link"].linkname == "b.txt"
    # the first of two hard links (in path order) carries the data
    assert by["a/c-hard"].isfile() and by["c"].islnk() and by["c"].linkname == "a/c-hard"


def test_layer_exclude_and_owner_override(tmp_path):
    tree = tmp_path / "t"
    _make_tree(tree, 1)
    _, _ = _layer(tmp_path, tree, "l.tar", arcroot="opt/x", owner=(10001, 10001),
                  exclude=lambda rel: rel.startswith("a/sub"))
    with tarfile.open(tmp_path / "l.tar") as tar:
        members = {m.name: m for m in tar}
    assert "opt/x/a/sub" not in members and "opt/x/a/sub/y" not in members
    assert members["opt/x/b.txt"].uid == 10001


def test_image_config_id_and_archive_are_deterministic(tmp_path):
    w = oci.LayerWriter(tmp_path / "l.tar", EPOCH)
    w.add_bytes("etc/hello", b"hi\n")
    w.add_dir("work", uid=10001, gid=10001)
    diff = w.close()
    cfg = oci.image_config([diff], created=oci.rfc3339(EPOCH),
                           config={"User": "10001:10001", "Labels": {"b": "2", "a": "1"}})
    assert cfg == oci.image_config([diff], created=oci.rfc3339(EPOCH),
                                   config={"Labels": {"a": "1", "b": "2"}, "User": "10001:10001"})
    doc = json.loads(cfg)
    assert doc["created"] == "2023-11-14T22:13:20Z" and doc["rootfs"]["diff_ids"] == [diff]
    iid = oci.image_id(cfg)
    a1 = oci.write_docker_archive(tmp_path / "a1.tar", cfg, [tmp_path / "l.tar"], ["x/y:z"])
    streamed = b"".join(oci.iter_docker_archive(cfg, [tmp_path / "l.tar"], ["x/y:z"], chunk=7))
    assert Path(a1).read_bytes() == streamed
    assert len(streamed) % tarfile.RECORDSIZE == 0
    with tarfile.open(a1) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        assert manifest == [{"Config": iid.split(":")[1] + ".json", "RepoTags": ["x/y:z"],
                             "Layers": [diff.split(":")[1] + "/layer.tar"]}]
        assert tar.extractfile(manifest[0]["Config"]).read() == cfg
        assert tar.extractfile(manifest[0]["Layers"][0]).read() == (tmp_path / "l.tar").read_bytes()


# --------------------------------------------------------------------------
# Definitions, derived from targets.yaml and toolchains/

def test_every_target_has_exactly_one_image_family():
    targets, defs = _defs()
    assert set(defs) == {"cpu", "intel", "nvidia", "amd"}
    for t in targets.values():
        serving = [d.name for d in defs.values() if d.serves(t)]
        assert len(serving) == 1, (t.name, serving)
    assert containers.definition_for(defs, targets["cpu-x86"]).name == "cpu"
    assert containers.definition_for(defs, targets["nvidia"]).device_kind == "nvidia"


def test_image_toolchains_can_build_for_their_vendors():
    families = {f.name: f for f in toolchains.load_families(REPO / "toolchains")}
    _, defs = _defs()
    for d in defs.values():
        for v in d.vendors:
            assert any(families[n].role == "sycl" and families[n].vendor_caps(v) for n in d.toolchains)
        assert d.user["uid"] >= 1000 and d.user["gid"] >= 1000


def _copy_containers(tmp_path):
    shutil.copytree(REPO / "toolchains" / "containers", tmp_path / "toolchains" / "containers")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    return tmp_path / "toolchains" / "containers"


def test_a_bad_definition_is_reported_with_file_line_and_key(tmp_path):
    cdir = _copy_containers(tmp_path)
    text = (cdir / "amd.yaml").read_text().replace("user: {name: syclforge, uid: 10001",
                                                   "user: {name: syclforge, uid: 0")
    (cdir / "amd.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        containers.load_definitions(tmp_path)
    msg = str(e.value)
    assert "amd.yaml:" in msg and "user.uid" in msg and "1000" in msg


def test_an_unknown_toolchain_is_reported(tmp_path):
    cdir = _copy_containers(tmp_path)
    (cdir / "cpu.yaml").write_text((cdir / "cpu.yaml").read_text().replace(
        "toolchains: [oneapi-pip, gcc]", "toolchains: [oneapi-pipp, gcc]"))
    with pytest.raises(ConfigError, match=r"cpu\.yaml:\d+: toolchains\.0: unknown toolchain family 'oneapi-pipp'"):
        containers.load_definitions(tmp_path, families=toolchains.load_families(REPO / "toolchains"))


@pytest.mark.parametrize("family", ["cpu", *GPU_FAMILIES])
def test_lock_is_valid_and_fresh(family):
    _, defs = _defs()
    defn = defs[family]
    lock = containers.load_lock(REPO, defn)   # raises if stale: the message says how to refresh
    wheels = {containers.normalize_name(w["name"]): w["version"] for w in lock["wheels"]}
    for req in containers.python_requirements(REPO, defn):
        name, version = req.split("==")
        assert wheels[containers.normalize_name(name)] == version
    for excluded in defn.python.get("exclude", []):
        assert containers.normalize_name(excluded) not in wheels
    if defn.local:
        debs = {d["name"] for d in lock["debs"]}
        assert set(defn.build["packages"]) <= debs
        assert {"dpkg", "apt", "libc6", "python3.11"} <= debs
        assert all(d["source"] and d["file"].endswith(".deb") for d in lock["debs"])


def test_stale_lock_names_the_refresh_command(tmp_path):
    _copy_containers(tmp_path)
    req = tmp_path / "requirements.txt"
    req.write_text(req.read_text() + "six==1.17.0\n")
    defs = containers.load_definitions(tmp_path)
    with pytest.raises(SyclforgeError, match=r"cpu\.lock\.json is stale: the pins in requirements\.txt.*"
                                             r"syclforge\.containers\.docker_run lock cpu"):
        containers.load_lock(tmp_path, defs["cpu"])


def test_apt_errors_name_the_missing_versions():
    text = ("E: Version '6.1.192-2' for 'linux-libc-dev' was not found\n"
            "E: Version '2.36-9+deb12u9' for 'libc6:amd64' was not found\n"
            "E: Unable to locate package no-such-thing\n"
            "W: something else\n")
    assert imagebuild.parse_apt_missing(text) == {("linux-libc-dev", "6.1.192-2"), ("libc6", "2.36-9+deb12u9"),
                                                  ("no-such-thing", None)}
    assert imagebuild.parse_apt_missing("'http://deb.debian.org/x.deb' x.deb 12 SHA256:ab\n") == set()


def test_pure_helpers():
    assert containers.parse_wheel_filename("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl") == ("numpy", "2.4.6")
    assert containers.normalize_name("Intel_SYCL.rt") == "intel-sycl-rt"
    assert containers.hashed_requirements({"wheels": [{"name": "b", "version": "1", "sha256": "f" * 64},
                                                      {"name": "a", "version": "2", "sha256": "0" * 64}]}) == \
        f"a==2 --hash=sha256:{'0' * 64}\nb==1 --hash=sha256:{'f' * 64}\n"
    tags = containers.wheel_platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux2014_x86_64" in tags
    status = ("Package: a\nStatus: install ok installed\nVersion: 1:2.0\nArchitecture: amd64\n\n"
              "Package: b\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n")
    assert imagebuild.parse_dpkg_status(status) == [("a", "1:2.0", "amd64")]
    assert imagebuild._deb_file_key("cpp_4%3a12.2.0-3_amd64.deb") == ("cpp", "4:12.2.0-3", "amd64")
    assert imagebuild.dpkg_sources("Package: libc6\nSource: glibc (2.36)\n\nPackage: bash\n") == \
        {"libc6": "glibc", "bash": "bash"}
    assert imagebuild.pool_path({"name": "libc6", "source": "glibc", "file": "f.deb"}) == "pool/main/g/glibc/f.deb"
    assert imagebuild.pool_path({"name": "libssl3", "source": "openssl", "file": "g.deb"}) == "pool/main/o/openssl/g.deb"
    assert imagebuild.pool_path({"name": "libzstd1", "source": "libzstd", "file": "h.deb"}) == "pool/main/libz/libzstd/h.deb"
    lines = imagebuild.user_account_lines({"name": "u", "uid": 10001, "gid": 10002}, 86400 * 3)
    assert lines["etc/passwd"] == "u:x:10001:10002:syclforge:/home/u:/bin/bash\n"
    assert lines["etc/shadow"].startswith("u:!:3:")


def test_host_apt_sources_keep_only_the_suite(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://m.example/debian bookworm main\n"
                                           "deb http://other.example/x cloud-sdk-bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: https://n.example/node\nSuites: nodistro\nComponents: main\n")
    got = imagebuild.host_apt_sources("bookworm", etc=str(tmp_path))
    assert got == ["deb http://m.example/debian bookworm main",
                   "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm main",
                   "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm-updates main"]


# --------------------------------------------------------------------------
# Dockerfiles for the families built by the engine (not buildable here)

@pytest.mark.parametrize("family", GPU_FAMILIES)
def test_dockerfile_is_pinned_labelled_and_non_root(family, tmp_path):
    _, defs = _defs()
    defn = defs[family]
    lock = containers.load_lock(REPO, defn)
    ctx = containers.write_context(defn, lock, tmp_path, source="https://example.invalid/syclforge",
                                   revision="0123abcd", created="2026-01-02T03:04:05Z")
    text = Path(ctx, "Dockerfile").read_text()
    base = defn.build["base"]
    froms = [l for l in text.splitlines() if l.startswith("FROM ")]
    assert froms == [f"FROM {base['image']}:{base['tag']}@{base['digest']}"]
    assert len(base["digest"]) == len("sha256:") + 64 and ":latest" not in text
    for key, value in (("source", "https://example.invalid/syclforge"), ("revision", "0123abcd"),
                       ("created", "2026-01-02T03:04:05Z"), ("base.digest", base["digest"])):
        assert f'org.opencontainers.image.{key}="{value}"' in text
    users = [l.split()[1] for l in text.splitlines() if l.startswith("USER ")]
    uid = int(users[-1].split(":")[0])
    assert uid == defn.user["uid"] and uid >= 1000
    assert "--require-hashes" in text and "ARG SOURCE_DATE_EPOCH" in text
    req = Path(ctx, "requirements.lock.txt").read_text().splitlines()
    assert req and all(" --hash=sha256:" in l for l in req)
    assert not any(l.startswith(("intel-sycl-rt", "intel-opencl-rt")) for l in req)
    if defn.build.get("download"):
        d = defn.build["download"]
        assert f"echo '{d['sha256']}  {d['to']}' | sha256sum -c -" in text


def test_cpu_image_has_no_dockerfile():
    _, defs = _defs()
    with pytest.raises(ValueError):
        containers.render_dockerfile(defs["cpu"], {}, source="s", revision="r", created="c")


def _fake_host(tmp_path, *, nvidia=False, kfd=False, render=None):
    dev, drm = tmp_path / "dev", tmp_path / "sys" / "class" / "drm"
    (dev / "dri").mkdir(parents=True)
    drm.mkdir(parents=True)
    if nvidia:
        (dev / "nvidia0").write_text("")
    if kfd:
        (dev / "kfd").write_text("")
    if render:
        (dev / "dri" / "renderD128").write_text("")
        (drm / "renderD128" / "device").mkdir(parents=True)
        (drm / "renderD128" / "device" / "vendor").write_text(render + "\n")
    return str(tmp_path)


def test_device_plans(tmp_path):
    none = _fake_host(tmp_path / "none")
    for kind in ("nvidia", "amd", "intel"):
        plan = containers.device_plan(kind, root=none, which=lambda _: None)
        assert not plan.ok and "no " in plan.reason
    assert containers.device_plan("none").ok
    nv = _fake_host(tmp_path / "nv", nvidia=True)
    assert "container toolkit" in containers.device_plan("nvidia", root=nv, which=lambda _: None).reason
    assert containers.device_plan("nvidia", root=nv, engine_runtimes=("nvidia",)).gpus
    amd = containers.device_plan("amd", root=_fake_host(tmp_path / "amd", kfd=True, render="0x1002"))
    assert amd.ok and amd.devices == ("/dev/kfd", "/dev/dri/renderD128")
    intel_on_amd = containers.device_plan("intel", root=_fake_host(tmp_path / "x", render="0x1002"))
    assert not intel_on_amd.ok
    assert containers.device_plan("intel", root=_fake_host(tmp_path / "i", render="0x8086")).ok


# --------------------------------------------------------------------------
# What runs inside

def test_inside_links_the_source(tmp_path):
    src, tree = tmp_path / "src", tmp_path / "tree"
    for d in ("kernels", "build", ".venv", "site_scons"):
        (src / d).mkdir(parents=True)
    (src / "SConstruct").write_text("")
    (src / ".sconsign.dblite").write_text("")
    inside.link_tree(str(src), str(tree))
    assert sorted(os.listdir(tree)) == ["SConstruct", "kernels", "site_scons"]
    assert os.readlink(tree / "kernels") == str(src / "kernels")


# --------------------------------------------------------------------------
# The CI workflow

WORKFLOW = REPO / ".github" / "workflows" / "numerics.yml"


def test_workflow_validates_against_the_github_schema():
    exe = Path(sys.executable).parent / "check-jsonschema"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "check_jsonschema"]
    proc = subprocess.run(cmd + ["--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_runs_every_family_on_its_runner_and_merges():
    targets, defs = _defs()
    wf = yaml.safe_load(WORKFLOW.read_text())
    job = wf["jobs"]["numerics"]
    matrix = job["strategy"]["matrix"]["include"]
    assert sorted(m["family"] for m in matrix) == sorted(defs)
    for m in matrix:
        assert containers.definition_for(defs, targets[m["target"]]).name == m["family"]
    assert job["runs-on"][0] == "self-hosted" and "${{ matrix.family }}" in job["runs-on"]
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    assert "scons docker=1 target=${{ matrix.target }}" in steps[
        "Build the ${{ matrix.family }} image and run the numerics inside"]["run"]
    upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload and upload[0]["with"]["path"].startswith("build/containers/")
    merge = wf["jobs"]["merge"]
    assert merge["needs"] == ["numerics", "nvidia-run"] and merge["if"].startswith("always()")
    # The nvidia bundle: built on a CPU runner, checked on an nvidia one, its
    # reports among those merged.
    build, gpu = wf["jobs"]["nvidia-build"], wf["jobs"]["nvidia-run"]
    assert "cpu" in build["runs-on"] and "nvidia" in gpu["runs-on"] and gpu["needs"] == "nvidia-build"
    assert any("install.sh --acpp-cuda" in st.get("run", "") for st in build["steps"])
    assert any("scons release target=nvidia strict=1" in st.get("run", "") for st in build["steps"])
    assert any("kernels/python/gpu_kit.py" in st.get("run", "") for st in gpu["steps"])
    names = {st.get("with", {}).get("name", "") for st in gpu["steps"]}
    assert {"numerics-nvidia-bundle", "numerics-nvidia-bundle-ptx"} <= names
    assert any("syclforge.numerics merge reports/" in s.get("run", "") for s in merge["steps"])
    # The locked .debs fall back to Debian's snapshot of the lock's day.
    snapshot = [st for st in job["steps"] if "SYCLFORGE_DEBIAN_ARCHIVES" in st.get("run", "")]
    assert snapshot and "snapshot.debian.org/archive/debian-security/" in snapshot[0]["run"]


def test_workflow_refreshes_the_locks_weekly_and_fails_when_they_moved():
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert wf[True]["schedule"][0]["cron"]            # PyYAML reads the key `on` as True
    job = wf["jobs"]["locks"]
    assert "schedule" in job["if"]
    runs = "\n".join(st.get("run", "") for st in job["steps"])
    _, defs = _defs()
    assert f"docker_run lock {' '.join(defs)} --force" in runs
    assert "git diff --quiet -- toolchains/containers/" in runs and "exit 1" in runs
    for name in ("numerics", "merge"):               # the weekly run only refreshes the locks
        assert "github.event_name != 'schedule'" in wf["jobs"][name]["if"]


# --------------------------------------------------------------------------
# Errors without an engine

def test_engine_down_is_a_clear_error(tmp_path):
    proc = scons("docker=1", "target=cpu-x86", check=False,
                 env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "syclforge: error: no Docker engine answers at unix://" in proc.stderr
    assert "dockerd" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def _pidfile(tmp_path, name, pid):
    path = tmp_path / f"{name}.pid"
    path.write_text(f"{pid}")
    return (str(path), name)


def test_stale_pid_files_are_those_of_gone_or_other_processes(tmp_path):
    # The CI failure this exists for: containerd.pid of a killed session
    # held a pid that a kernel thread had taken since; dockerd waited for it.
    fake = tmp_path / "containerd"          # a live process named containerd
    shutil.copy(shutil.which("sleep"), fake)
    live = subprocess.Popen([str(fake), "30"])
    zombie = subprocess.Popen([str(fake), "30"])
    zombie.kill()                           # killed, not reaped yet: still in /proc, state Z
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        deadline = time.time() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.time() < deadline, "the killed process did not become a zombie"
            time.sleep(0.05)
        files = [_pidfile(tmp_path, "containerd", live.pid),
                 (_pidfile(tmp_path, "reused", os.getpid())[0], "containerd"),   # pid of another program
                 (_pidfile(tmp_path, "dead", gone.pid)[0], "dockerd"),
                 (_pidfile(tmp_path, "junk", "not a pid")[0], "dockerd"),
                 (str(tmp_path / "absent.pid"), "dockerd"),
                 (_pidfile(tmp_path, "zombie", zombie.pid)[0], "containerd")]
        stale = docker_run.stale_pidfiles(files)
    finally:
        live.kill()
        live.wait()
        zombie.wait()
    assert stale == [files[1][0], files[2][0], files[3][0], files[5][0]]


def test_an_engine_that_exits_is_a_clear_error_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    stale = _pidfile(tmp_path, "containerd", os.getpid())
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho 'failed to start containerd: timeout waiting for containerd to start'\n"
                    "exit 1\n")
    fake.chmod(0o755)
    lines = []
    with pytest.raises(SyclforgeError) as e:
        docker_run.start_engine(command=[str(fake)], log_path=str(tmp_path / "d.log"), timeout=30,
                                pidfiles=[stale], log=lines.append)
    assert "exited with status 1" in str(e.value) and "timeout waiting for containerd" in str(e.value)
    assert str(tmp_path / "d.log") in str(e.value)
    assert not Path(stale[0]).exists() and any("stale pid file" in line for line in lines)


def test_an_engine_that_never_answers_times_out_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho starting up\nexec sleep 60\n")
    fake.chmod(0o755)
    with pytest.raises(SyclforgeError) as e:
        docker_run.start_engine(command=[str(fake)], log_path=str(tmp_path / "d.log"), timeout=2,
                                pidfiles=[], log=lambda m: None)
    assert "did not answer within 2 s" in str(e.value) and "starting up" in str(e.value)


def test_engine_command_without_dockerd_names_the_install_step(tmp_path, monkeypatch, capsys):
    def no_engine(*_):
        raise SyclforgeError("no Docker engine answers at unix:///var/run/docker.sock (refused)")
    monkeypatch.setattr(docker_run, "connect", no_engine)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert docker_run.main(["engine"]) == 2
    err = capsys.readouterr().err
    assert "no Docker engine answers" in err and "dockerd is not installed (./install.sh --containers)" in err


# --------------------------------------------------------------------------
# Real: the engine, root and mmdebstrap

def _need(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to run the container tests: {why} (.ci/run installs them)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def engine():
    _need(os.geteuid() == 0, "needs root (mmdebstrap --mode=root, chroot)")
    _need(shutil.which("mmdebstrap"), "needs mmdebstrap (./install.sh --containers)")
    _need(shutil.which("dockerd") or os.environ.get("DOCKER_HOST"), "needs a Docker engine (./install.sh --containers)")
    try:
        # Installed but not running: started here, as a user would with
        # `python -m syclforge.containers.docker_run engine`.
        return docker_run.start_engine()
    except SyclforgeError as e:
        _need(False, f"the Docker engine did not come up: {e}")


def test_gpu_targets_are_skipped_with_a_reason(engine, capsys):
    targets, _ = _defs()
    plans = {k: containers.device_plan(k) for k in ("nvidia", "amd", "intel")}
    if any(p.ok for p in plans.values()):
        pytest.skip("this host has a GPU")
    rows, code = docker_run.run_targets(REPO, [targets[n] for n in ("intel-gpu", "nvidia", "amd")])
    assert code == 0
    assert [(r.target, r.status) for r in rows] == [("intel-gpu", "SKIPPED"), ("nvidia", "SKIPPED"),
                                                    ("amd", "SKIPPED")]
    assert "no NVIDIA GPU" in rows[1].reason and "no AMD GPU" in rows[2].reason
    rows, code = docker_run.run_targets(REPO, [targets["amd"]], strict=True)
    assert code == 1


def test_committed_lock_is_still_served(engine):
    """The committed lock is the production pin. Debian's mirror replaces
    point-release and security versions within days, so a lock that it no
    longer serves is reported here as a warning, never a failure: the
    reproducibility test below locks afresh, and the scheduled `locks` job of
    the workflow fails loudly and refreshes it."""
    import warnings
    _, defs = _defs()
    cpu = defs["cpu"]
    lock = containers.load_lock(REPO, cpu)
    gone = imagebuild.unserved_debs(lock, log=print)
    assert all(e in lock["debs"] for e in gone)
    if gone:
        warnings.warn(f"{Path(cpu.lock_path).name}: the host's mirrors no longer serve {len(gone)} locked .debs "
                      f"({', '.join(e['name'] + ' ' + e['version'] for e in gone[:5])}); `scons docker=1` needs "
                      f"`{containers.lock_command(cpu)} --force` or SYCLFORGE_DEBIAN_ARCHIVES (a dated snapshot)")


def test_a_gone_version_comes_from_the_archives_or_is_a_clear_error(engine, tmp_path, monkeypatch):
    """A locked .deb the mirror no longer has: fetched by pool path from
    SYCLFORGE_DEBIAN_ARCHIVES (a dated snapshot in the workflow; here a local
    server) and checked by sha256, or without it the error names both ways out."""
    import hashlib
    import http.server
    import threading
    data = b"!<arch>\nnot really a package, but bytes with a known hash\n"
    entry = {"name": "syclforge-gone", "version": "1.0-1", "architecture": "all", "source": "syclforge-gone",
             "file": "syclforge-gone_1.0-1_all.deb", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    _, defs = _defs()
    cache = tmp_path / "cache"
    debs = cache / "inputs" / "debs"
    for d in (debs, cache / "tmp"):
        d.mkdir(parents=True)
    monkeypatch.delenv("SYCLFORGE_DEBIAN_ARCHIVES", raising=False)
    with pytest.raises(SyclforgeError) as info:
        imagebuild._fetch_debs(defs["cpu"], [entry], debs, cache, log=print)
    msg = str(info.value)
    assert "no longer carry these locked versions" in msg and "syclforge-gone_1.0-1_all.deb" in msg
    assert "docker_run lock cpu --force" in msg and "SYCLFORGE_DEBIAN_ARCHIVES" in msg
    assert not (debs / entry["file"]).exists()

    served = tmp_path / "archive"
    pool = served / imagebuild.pool_path(entry)
    pool.parent.mkdir(parents=True)
    pool.write_bytes(data)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("SYCLFORGE_DEBIAN_ARCHIVES", f"{base}/missing {base}")
        imagebuild._fetch_debs(defs["cpu"], [entry], debs, cache, log=print)
        assert (debs / entry["file"]).read_bytes() == data
        pool.write_bytes(data + b"tampered")          # other bytes under the same name: refused
        (debs / entry["file"]).unlink()
        with pytest.raises(SyclforgeError, match="is not the locked"):
            imagebuild._fetch_debs(defs["cpu"], [entry], debs, cache, log=print)
        assert not (debs / entry["file"]).exists()
    finally:
        server.shutdown()


def _remove_image(client, image_id):
    import docker
    try:
        client.images.remove(image_id, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_cpu_image_builds_reproducibly_and_runs_the_numerics(engine, tmp_path, monkeypatch):
    """Two builds from a clean state (no cached layer, image not in the
    engine) load with the same image ID; then `scons docker=1
    target=cpu-x86` runs the build and numerics inside and merges the report.

    The Debian packages are locked afresh from today's mirror into the
    checkout copy's lock (the committed lock is the production pin, which
    the mirror drops within days: test_committed_lock_is_still_served warns
    about that). The fetched inputs are shared with ~/.cache/syclforge (warm
    reruns); the layer caches are this test's own, and a unique source label
    gives the image an ID of its own, so runs beside it do not interfere."""
    client = engine
    monkeypatch.setenv("SYCLFORGE_SOURCE_URL", f"https://example.invalid/syclforge-test/{time.time_ns()}")
    checkout = copy_checkout(tmp_path / "src")
    _, defs = _defs(checkout)
    cpu = defs["cpu"]
    shared_inputs = imagebuild.cache_root() / "inputs"
    shared_inputs.mkdir(parents=True, exist_ok=True)
    cache = tmp_path / "cache" / "containers"
    cache.mkdir(parents=True)
    (cache / "inputs").symlink_to(shared_inputs)
    committed = json.loads((REPO / "toolchains" / "containers" / "cpu.lock.json").read_text())
    t0 = time.time()
    assert imagebuild.lock(checkout, cpu, cache=cache, log=print, parts=("debs",)) == ["debs"]
    fresh = containers.load_lock(checkout, cpu)
    assert fresh["wheels"] == committed["wheels"] and len(fresh["debs"]) >= 100
    print(f"locked {len(fresh['debs'])} .debs afresh in {time.time() - t0:.0f} s; "
          f"{sum(e not in committed['debs'] for e in fresh['debs'])} differ from the committed lock")
    image_id = None
    try:
        first = docker_run.build_local_image(checkout, cpu, cache=cache,
                                             layers_dir=tmp_path / "layers-a", log=print)
        image_id = first.image_id
        assert all(first.built)
        _remove_image(client, image_id)
        assert docker_run.load_image(client, first, log=print)
        assert client.images.get(image_id).id == image_id
        _remove_image(client, image_id)
        shutil.rmtree(tmp_path / "layers-a")

        second = docker_run.build_local_image(checkout, cpu, cache=cache, log=print)   # cache/layers: new
        assert all(second.built)
        assert docker_run.load_image(client, second, log=print)
        assert second.diff_ids == first.diff_ids
        assert second.config == first.config
        assert client.images.get(second.image_id).id == image_id
        print(f"cpu image {image_id}: {first.size / 1e9:.2f} GB, "
              f"clean builds {first.seconds:.0f} s and {second.seconds:.0f} s")

        img = client.images.get(image_id)
        assert img.attrs["Config"]["User"] == "10001:10001"
        for key in ("source", "revision", "created"):
            assert img.labels[f"org.opencontainers.image.{key}"]

        t0 = time.time()
        proc = scons("docker=1", "target=cpu-x86", cwd=checkout, timeout=1800,
                     env={"SYCLFORGE_CACHE": str(tmp_path / "cache")})
        out = proc.stdout + proc.stderr
        assert "layer 1/3 (Debian base): cached" in out          # warm: nothing rebuilt
        assert "cpu-x86  RAN" in out, out[-3000:]
        report = json.loads((checkout / "build" / "containers" / "cpu-x86" / "report.json").read_text())
        assert report["container"]["image"] == image_id
        # The container's numerics, merged into the host's report: its rows
        # say where they ran, cover three images, and all pass.
        merged = json.loads((checkout / "build" / "numerics" / "report.json").read_text())
        rows = [r for r in merged["comparisons"] if r["runner"] == "container:cpu"]
        assert {r["image"] for r in rows} >= set(cpu_isas()) | {"spirv"}
        assert all(r["pass"] for r in rows) and not merged["violations"]
        assert "cpu-x86  RAN" in out and "violation(s)" in out
        print(f"scons docker=1 target=cpu-x86 (warm image): {time.time() - t0:.0f} s")
    finally:
        if image_id:
            try:
                _remove_image(client, image_id)
                client.volumes.get(f"syclforge-work-cpu-x86-{image_id.split(':')[1][:12]}").remove()
            except Exception:
                pass
        for d in (tmp_path / "layers-a", cache / "layers"):
            shutil.rmtree(d, ignore_errors=True)
