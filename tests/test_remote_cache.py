"""cache=http://...: a build cache shared across machines (README.md,
"Shared cache"; site_scons/syclforge/remote_cache.py, syclforge/scons/tools/sf_cache.py).

The server is real: Debian's nginx with WebDAV PUT, run from the README's
own config block on a free port of 127.0.0.1 (./install.sh --containers
installs nginx-light; without it these tests skip, except under CI where
they fail). Only 127.0.0.1 is ever contacted.
"""
import base64
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import fakes
from helpers import REPO, copy_checkout, run, scons
from syclforge import remote_cache
from syclforge.core import toolchains
from syclforge.errors import SyclforgeError
from syclforge.core.model import Image, Target

# One line per action that compiles or links (sf_common.py's short lines).
ACTION = re.compile(r"^\s+(CXX|LINK|SHLINK|SPIRV|AOT|EMBED|SYCLCXX|SYCLLINK)\s+(\S+)\s*$", re.M)
USER = "ci"


def actions(out):
    """The files this build made by running a compiler, linker or embedder."""
    return sorted(m.group(2) for m in ACTION.finditer(out))


def _need(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to run the shared-cache tests: {why} "
                        f"(./install.sh --containers installs nginx-light)")
        pytest.skip(why)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# The server: nginx running the README's config block

def readme_nginx_block():
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Shared cache"):]
    return re.search(r"```nginx\n(.*?)```", section, re.S).group(1)


class Nginx:
    def __init__(self, root):
        self.root = Path(root)
        self.data = self.root / "data"
        (self.data / ".tmp").mkdir(parents=True)
        self.token = secrets.token_hex(16)
        (self.root / "htpasswd").write_text(f"{USER}:{{PLAIN}}{self.token}\n")
        self.header = "Authorization: Basic " + base64.b64encode(f"{USER}:{self.token}".encode()).decode()
        self.port = _free_port()
        server = readme_nginx_block()
        # What the README names for a real host becomes this test's own.
        for old, new in (("listen 8080;", f"listen 127.0.0.1:{self.port};"),
                         ("/var/cache/syclforge", str(self.data)),
                         ("/etc/nginx/syclforge-cache.htpasswd", str(self.root / "htpasswd"))):
            assert old in server, f"the README's nginx block lost {old!r}"
            server = server.replace(old, new)
        tmp = self.root / "tmp"
        tmp.mkdir()
        conf = "\n".join([
            "daemon off;", "worker_processes 1;", f"pid {self.root}/nginx.pid;",
            f"error_log {self.root}/error.log;",
            *(["user root root;"] if os.geteuid() == 0 else []),
            "events { worker_connections 64; }",
            "http {",
            f"  access_log {self.root}/access.log;",
            *(f"  {k}_temp_path {tmp}/{k};" for k in ("proxy", "fastcgi", "uwsgi", "scgi")),
            server, "}", ""])
        (self.root / "nginx.conf").write_text(conf)
        self.proc = None

    def url(self, prefix):
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-e", str(self.root / "error.log"), "-p", str(self.root),
                                      "-c", str(self.root / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode()}\n"
                                     f"{(self.root / 'error.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not listen within 15 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def files(self, prefix, kind):
        d = self.data / prefix / kind
        return sorted(d.iterdir()) if d.is_dir() else []


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    exe = shutil.which("nginx")
    _need(exe, "needs nginx (Debian: nginx-light)")
    flags = subprocess.run([exe, "-V"], capture_output=True, text=True).stderr
    _need("--with-http_dav_module" in flags, "this nginx has no WebDAV module (http_dav_module)")
    server = Nginx(tmp_path_factory.mktemp("nginx")).start()
    yield server
    server.stop()


def cache_env(tmp_path, name, nginx=None, **extra):
    """A fresh local first level (XDG_CACHE_HOME), the upload credentials."""
    env = {"XDG_CACHE_HOME": str(tmp_path / f"xdg-{name}")}
    if nginx is not None:
        env["SYCLFORGE_CACHE_HEADERS"] = nginx.header
    env.update(extra)
    return env


def tree_digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------
# Unit: cache=, headers, entries, keys

def test_cache_value_dir_url_and_errors(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert remote_cache.parse_cache("", env) is None
    assert remote_cache.parse_cache("some/dir", env).url is None
    c = remote_cache.parse_cache("http://cache.lan:8080/team/", env)
    assert c.url == "http://cache.lan:8080/team" and c.local == str(tmp_path / "syclforge" / "cachedir")
    assert remote_cache.parse_cache("HTTPS://h", env).url == "https://h"
    for bad, words in [("http:/cache.lan/x", "not a URL"), ("ftp://h/x", "unsupported scheme"),
                       ("http:///x", "names no host"), ("http://h:99999/x", "malformed URL"),
                       ("http://h/x?a=1", "no ?query"), ("http://ci:hunter2@h/x", "credentials")]:
        with pytest.raises(SyclforgeError) as e:
            remote_cache.parse_cache(bad, env)
        msg = str(e.value)
        assert msg.startswith("cache=") and words in msg, msg
        assert "hunter2" not in msg
        assert "SYCLFORGE_CACHE_HEADERS" in msg or "cache=http://HOST:PORT/PREFIX" in msg, msg


def test_headers_parse_and_errors_never_show_the_value():
    assert remote_cache.parse_headers("Authorization: Bearer abc\nX-Team:  gpu \n\n") == [
        ("Authorization", "Bearer abc"), ("X-Team", "gpu")]
    assert remote_cache.parse_headers("") == []
    for bad in ("Bearer s3cr3t-value", "Bad Name: s3cr3t-value", "Authorization:"):
        with pytest.raises(SyclforgeError) as e:
            remote_cache.parse_headers(bad)
        assert "SYCLFORGE_CACHE_HEADERS: line 1" in str(e.value) and "s3cr3t" not in str(e.value)


def test_action_result_round_trip_and_unknown_fields():
    sha = hashlib.sha256(b"x").hexdigest()
    data = remote_cache.encode_action_result("build/cpu-x86/bin/kl-info", sha, 123456, True)
    # Hand-checked REAPI bytes: ActionResult.output_files(2) { path(1), digest(2) { hash(1), size(2) },
    # is_executable(4) }
    assert data[:2] == bytes([0x12, len(data) - 2]) and data[2:4] == bytes([0x0a, 25])
    assert remote_cache.decode_action_result(data) == (sha, 123456, True)
    # bazel-remote adds execution_metadata (field 9) with the worker: skipped
    meta = bytes([0x4a, 6, 0x0a, 4]) + b"host"
    assert remote_cache.decode_action_result(data + meta) == (sha, 123456, True)
    assert remote_cache.decode_action_result(
        remote_cache.encode_action_result("a.o", sha, 0)) == (sha, 0, False)
    for bad in (b"", b"\x12\x05ab", data[:-3], remote_cache.encode_action_result("a", "zz" * 32, 1)):
        with pytest.raises(ValueError):
            remote_cache.decode_action_result(bad)


def test_keys_are_sha256_and_follow_the_signature():
    a, b = remote_cache.action_key("0" * 32), remote_cache.action_key("1" * 32)
    assert a != b and re.fullmatch(r"[0-9a-f]{64}", a)


def _detect_icpx(root, version, tmp_path):
    exe = fakes.fake_icpx(root, plugins=("cuda",), version=version)
    families = toolchains.load_families(REPO / "toolchains")
    det = next(d for d in toolchains.detect(families, environ=fakes.fake_env(os.path.dirname(exe)))
               if d.name == "icpx")
    assert det.available, det.reason
    return det


def test_toolchain_identity_covers_version_binary_and_images(tmp_path):
    target = Target("nvidia", "", "nvidia", "gpu", (Image("sm_90", "native"), Image("ptx", "portable")))
    memo = remote_cache.DigestMemo(tmp_path / "memo.json")
    ident = lambda det, images=("sm_90", "ptx"): remote_cache.toolchain_identity(det, target, images, memo)
    base = ident(_detect_icpx(tmp_path / "a", "2025.1.0", tmp_path))
    assert base == ident(_detect_icpx(tmp_path / "a", "2025.1.0", tmp_path))    # deterministic
    # The same compiler elsewhere is the same compiler: paths are not in it.
    # (fake_icpx writes its root into its version text, so copy the bytes.)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    det_b = _detect_icpx(tmp_path / "a", "2025.1.0", tmp_path)
    det_b.path = str(tmp_path / "b" / "bin" / "icpx")
    det_b.info["tools"] = {k: v.replace(str(tmp_path / "a"), str(tmp_path / "b"))
                           for k, v in det_b.info.get("tools", {}).items()}
    assert ident(det_b) == base
    assert str(tmp_path) not in base
    assert ident(_detect_icpx(tmp_path / "c", "2025.2.0", tmp_path)) != base      # version (and bytes)
    det = _detect_icpx(tmp_path / "a", "2025.1.0", tmp_path)
    Path(det.path).write_text(Path(det.path).read_text() + "# patched\n")       # same version, other bytes
    assert ident(det) != base
    det = _detect_icpx(tmp_path / "a", "2025.1.0", tmp_path)
    assert ident(det, images=("sm_90",)) != ident(det)                            # image list
    memo.save()
    assert remote_cache.DigestMemo(tmp_path / "memo.json").entries                # remembered


# --------------------------------------------------------------------------
# Unit: the HTTP level against a closed port, a silent server and nginx

def _client(url, **kw):
    lines = []
    kw.setdefault("report", lines.append)
    return remote_cache.HttpCache(url, **kw), lines


def test_closed_port_is_one_warning_and_off(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/x"
    cache, lines = _client(url)
    t0 = time.monotonic()
    for i in range(5):
        assert not cache.fetch(remote_cache.action_key(str(i)), str(tmp_path / "o" / str(i)), f"f{i}")
    cache.store(remote_cache.action_key("s"), __file__, "t")
    assert time.monotonic() - t0 < 3
    assert len(lines) == 1 and url in lines[0] and "connection refused" in lines[0], lines
    assert cache.disabled and cache.summary() is None


@pytest.fixture
def silent_server():
    """Accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield f"http://127.0.0.1:{s.getsockname()[1]}/x"
    s.close()


def test_silent_server_costs_one_bounded_timeout(silent_server, tmp_path):
    cache, lines = _client(silent_server, read_timeout=0.5, connect_timeout=0.5)
    t0 = time.monotonic()
    for i in range(4):
        assert not cache.fetch(remote_cache.action_key(str(i)), str(tmp_path / str(i)), "f")
    assert time.monotonic() - t0 < 2.5        # one timeout, then off: no retry storm
    assert len(lines) == 1 and "timed out" in lines[0] and silent_server in lines[0], lines


def test_round_trip_and_every_bad_object_refused(nginx, tmp_path):
    cache, lines = _client(nginx.url("unit"), headers=remote_cache.parse_headers(nginx.header))
    src = tmp_path / "built.bin"
    src.write_bytes(os.urandom(300_000))
    os.chmod(src, 0o755)
    key = remote_cache.action_key("sig-1")
    cache.store(key, str(src), "build/x/built.bin", executable=True)
    assert cache.stats["uploaded"] == 1 and cache.stats["entries"] == 1 and not lines
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert (nginx.data / "unit" / "cas" / sha).read_bytes() == src.read_bytes()
    cache.store(remote_cache.action_key("sig-2"), str(src), "build/y/built.bin")   # same bytes: no 2nd upload
    assert cache.stats["uploaded"] == 1 and cache.stats["entries"] == 2

    dest = tmp_path / "local" / "AB" / "entry"
    assert cache.fetch(key, str(dest), "built.bin")
    assert dest.read_bytes() == src.read_bytes() and os.stat(dest).st_mode & 0o777 == 0o755
    assert not cache.fetch(remote_cache.action_key("never-built"), str(tmp_path / "n"), "n")

    stored = nginx.data / "unit" / "cas" / sha
    good = stored.read_bytes()
    for label, bad in (("truncated", good[:1000]), ("replaced", os.urandom(len(good))),
                       ("longer", good + b"tail")):
        stored.write_bytes(bad)
        out = tmp_path / label
        assert not cache.fetch(key, str(out), label)
        assert not out.exists() and not list(out.parent.glob(".remote-*"))       # nothing kept
    assert [l for l in lines if "does not match its hash" in l] == [lines[0]]   # reported once
    assert cache.stats["refused"] == 3 and not cache.disabled
    cache.store(key, str(src), "build/x/built.bin", executable=True)            # rebuilt: uploaded over it
    assert stored.read_bytes() == good
    assert nginx.token not in "\n".join(lines)


def test_entry_that_is_not_an_action_result_is_a_miss(nginx, tmp_path):
    cache, lines = _client(nginx.url("garbage"))
    key = remote_cache.action_key("g")
    (nginx.data / "garbage" / "ac").mkdir(parents=True)
    (nginx.data / "garbage" / "ac" / key).write_bytes(b"<html>not found</html>")
    assert not cache.fetch(key, str(tmp_path / "g"), "g.o")
    assert len(lines) == 1 and "not an ActionResult" in lines[0] and not cache.disabled


# --------------------------------------------------------------------------
# SCons: the real cpu-x86 build, two clean clones, one server

def test_two_clean_clones_share_the_server_and_bad_objects_are_rebuilt(nginx, tmp_path):
    url = nginx.url("clones")
    a = copy_checkout(tmp_path / "a")
    cold = scons("target=all", f"cache={url}", cwd=a, env=cache_env(tmp_path, "a", nginx))
    built = actions(cold.stdout)
    assert len(built) >= 15, cold.stdout
    assert len(nginx.files("clones", "ac")) == len(built)                 # one key per built file
    assert f"0 hit(s), {len(built)} miss(es), {len(built)} object(s) and {len(built)} key(s) uploaded" \
        in cold.stdout, cold.stdout

    b = copy_checkout(tmp_path / "b")                                     # another place, fresh local cache
    warm = scons("target=all", f"cache={url}", cwd=b, env=cache_env(tmp_path, "b", nginx))
    assert actions(warm.stdout) == [], warm.stdout                        # compiles nothing
    assert warm.stdout.count("Retrieved `") == len(built)
    assert f"{len(built)} hit(s), 0 miss(es), 0 object(s)" in warm.stdout
    assert re.search(r"^cpu-x86\s+BUILT", warm.stdout, re.M)
    assert tree_digests(b / "build" / "cpu-x86") == tree_digests(a / "build" / "cpu-x86")   # byte-identical
    assert run([b / "build" / "cpu-x86" / "bin" / "kl-info"]).returncode == 0

    # Bad data on the server: one object truncated, one replaced.
    def cas(rel):
        return nginx.data / "clones" / "cas" / hashlib.sha256((a / rel).read_bytes()).hexdigest()
    truncated, replaced = "build/cpu-x86/images/syclforge_kl/avx2.bin", "build/cpu-x86/obj/kernels/apps/kl-info.o"
    good = {rel: cas(rel).read_bytes() for rel in (truncated, replaced)}
    cas(truncated).write_bytes(good[truncated][:len(good[truncated]) // 2])
    cas(replaced).write_bytes(os.urandom(len(good[replaced])))
    c = copy_checkout(tmp_path / "c")
    healed = scons("target=all", f"cache={url}", cwd=c, env=cache_env(tmp_path, "c", nginx))
    assert actions(healed.stdout) == sorted([truncated, replaced]), healed.stdout   # refused and rebuilt
    bad_lines = [l for l in healed.stderr.splitlines() if "does not match its hash" in l]
    assert len(bad_lines) == 2 and any(truncated in l for l in bad_lines) and any(replaced in l for l in bad_lines)
    assert tree_digests(c / "build" / "cpu-x86") == tree_digests(a / "build" / "cpu-x86")
    assert all(cas(rel).read_bytes() == good[rel] for rel in good)        # uploaded over the bad ones

    # The credential: sent (uploads worked) and nowhere else, a bundle's manifest included.
    rel = scons("release", "target=cpu-x86", "verbose=1", f"cache={url}", cwd=c,
                env=cache_env(tmp_path, "c", nginx, SOURCE_DATE_EPOCH="1700000000"))
    secret_forms = (nginx.token, nginx.header.split()[-1])
    for proc in (cold, warm, healed, rel):
        assert not any(s in proc.stdout + proc.stderr for s in secret_forms)
    import tarfile
    bundles = list((c / "dist").glob("*.tar.gz"))
    assert bundles
    with tarfile.open(bundles[0]) as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()
                assert not any(s.encode() in data for s in secret_forms), m.name
    for root in (c / "build", tmp_path / "xdg-c"):
        for p in root.rglob("*"):
            if p.is_file():
                assert not any(s.encode() in p.read_bytes() for s in secret_forms), p


# --------------------------------------------------------------------------
# SCons with a fake icpx (fast): keys, uploads, failures

# What the fake nvidia build makes (actions()): 12 objects (kl-info,
# minillm, the library's 5 host sources and launch_lambda, and syclforge's
# image table, info, loader_module and cpu_isa), the generated table source
# and the 3 linked binaries.
ACTIONS = 16


@pytest.fixture
def fake_build(tmp_path):
    """(checkout, env, build(**) -> CompletedProcess) for target=nvidia with a fake icpx."""
    checkout = copy_checkout(tmp_path / "src")
    icpx = fakes.fake_icpx(tmp_path / "oneapi", plugins=("cuda",))
    path = f"{os.path.dirname(icpx)}{os.pathsep}{os.environ['PATH']}"

    def build(*args, where=checkout, fresh=True, env=None, check=True):
        if fresh:          # a clean clone: no build tree, no SCons database
            shutil.rmtree(where / "build", ignore_errors=True)
            for p in where.glob(".sconsign*"):
                p.unlink()
        return scons("target=nvidia", *args, cwd=where, env={"PATH": path, **(env or {})}, check=check)
    return checkout, icpx, build


def test_changed_flag_version_or_device_header_misses(nginx, fake_build, tmp_path):
    checkout, icpx, build = fake_build
    url = nginx.url("keys")
    first = build(f"cache={url}", env=cache_env(tmp_path, "1", nginx))
    made = actions(first.stdout)
    assert len(made) == ACTIONS and len(nginx.files("keys", "ac")) == ACTIONS, first.stdout

    # The same inputs in another clone at another path, fresh local cache: all hits.
    other = copy_checkout(tmp_path / "other")
    again = build(f"cache={url}", where=other, env=cache_env(tmp_path, "2", nginx))
    assert actions(again.stdout) == [] and f"{ACTIONS} hit(s)" in again.stdout, again.stdout

    # Every flag: -std=c++17 -> c++20 in the family's flags.
    family = checkout / "toolchains" / "icpx.yaml"
    text = family.read_text()
    family.write_text(text.replace("compile: ['-std=c++17']", "compile: ['-std=c++20']"))
    flag = build(f"cache={url}", env=cache_env(tmp_path, "3", nginx))
    compiled = [f for f in actions(flag.stdout) if f.endswith((".o", ".os"))]
    assert len(compiled) == ACTIONS - 4, flag.stdout                                # every compile missed
    family.write_text(text)

    # A fake icpx of another version, same path.
    fakes.fake_icpx(os.path.dirname(os.path.dirname(icpx)), plugins=("cuda",), version="2025.2.0")
    version = build(f"cache={url}", env=cache_env(tmp_path, "4", nginx))
    assert actions(version.stdout) == made, version.stdout                # everything missed

    # A header only device code includes (the kernels' math, ops/softmax.hpp:
    # the scanner finds it in launch_lambda.cpp alone): that object misses,
    # and nothing else is compiled.
    header = checkout / "kernels" / "ops" / "softmax.hpp"
    header.write_text(header.read_text() + "\n// changed\n")
    device = build(f"cache={url}", env=cache_env(tmp_path, "5", nginx))
    missed = actions(device.stdout)
    assert {f for f in missed if f.endswith((".o", ".os"))} == {"build/nvidia/obj/kernels/runtime/launch_lambda.os"}, \
        device.stdout


def test_cache_upload_0_reads_but_uploads_nothing(nginx, fake_build, tmp_path):
    checkout, _, build = fake_build
    url = nginx.url("readonly")
    first = build(f"cache={url}", "cache_upload=0", env=cache_env(tmp_path, "1", nginx))
    assert len(actions(first.stdout)) == ACTIONS and nginx.files("readonly", "cas") == [] \
        and nginx.files("readonly", "ac") == [], first.stdout
    build(f"cache={url}", env=cache_env(tmp_path, "2", nginx))           # a main-branch build fills it
    before = nginx.files("readonly", "cas") + nginx.files("readonly", "ac")
    assert len(nginx.files("readonly", "ac")) == ACTIONS     # (the fakes' outputs are one same object)
    pr = build(f"cache={url}", "cache_upload=0", env=cache_env(tmp_path, "3", nginx))
    assert actions(pr.stdout) == [] and f"{ACTIONS} hit(s)" in pr.stdout, pr.stdout
    assert nginx.files("readonly", "cas") + nginx.files("readonly", "ac") == before


def test_upload_without_credentials_is_refused_once_and_the_build_goes_on(nginx, fake_build, tmp_path):
    checkout, _, build = fake_build
    url = nginx.url("noauth")
    proc = build(f"cache={url}", env=cache_env(tmp_path, "1"))           # no SYCLFORGE_CACHE_HEADERS
    assert proc.returncode == 0 and len(actions(proc.stdout)) == ACTIONS
    warnings = [l for l in proc.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and url in warnings[0] and "HTTP 401" in warnings[0], proc.stderr
    assert nginx.files("noauth", "ac") == []


def test_server_down_is_one_warning_and_a_good_build(fake_build, tmp_path):
    checkout, _, build = fake_build
    url = f"http://127.0.0.1:{_free_port()}/x"                           # nothing listens there
    t0 = time.monotonic()
    proc = build(f"cache={url}", env=cache_env(tmp_path, "1"))
    took = time.monotonic() - t0
    assert proc.returncode == 0 and len(actions(proc.stdout)) == ACTIONS
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if url in l]
    assert lines == [f"syclforge: warning: remote cache {url}: unreachable (connection refused); "
                     "building without it for the rest of this build"], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert took < 60
    assert (checkout / "build" / "nvidia" / "bin" / "kl-info").exists()


def test_silent_server_times_out_once(fake_build, tmp_path, silent_server):
    checkout, _, build = fake_build
    t0 = time.monotonic()
    proc = build(f"cache={silent_server}", env=cache_env(tmp_path, "1", SYCLFORGE_CACHE_TIMEOUT="1"))
    took = time.monotonic() - t0
    assert proc.returncode == 0 and len(actions(proc.stdout)) == ACTIONS
    lines = [l for l in proc.stderr.splitlines() if silent_server in l]
    assert len(lines) == 1 and "timed out" in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and took < 30


def test_server_stopped_mid_build(fake_build, tmp_path):
    """The server answers the first requests, then goes away."""
    import http.server
    checkout, _, build = fake_build
    served = []

    class OnceThenGone(http.server.BaseHTTPRequestHandler):
        def do_GET(self):          # a miss, and after the second request the server stops
            served.append(self.path)
            self.send_error(404)
            if len(served) == 2:
                httpd.shutdown()
                httpd.server_close()
        do_HEAD = do_GET

        def do_PUT(self):          # uploads are taken (and not counted): only the GETs pace it
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OnceThenGone)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/x"
    try:
        proc = build("-j1", f"cache={url}", env=cache_env(tmp_path, "1", SYCLFORGE_CACHE_TIMEOUT="2"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0 and len(actions(proc.stdout)) == ACTIONS
    lines = [l for l in proc.stderr.splitlines() if url in l]
    assert len(lines) == 1 and "unreachable" in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------
# What a user sees: help and errors

def test_help_documents_cache_and_cache_upload():
    out = scons("-h").stdout
    cache = re.search(r"^cache: (.*?)(?=^\S)", out, re.M | re.S).group(1)
    assert "http(s)://HOST[:PORT]/PREFIX" in cache and "SYCLFORGE_CACHE_HEADERS" in cache
    assert re.search(r"^cache_upload: .*only reads", out, re.M | re.S)


@pytest.mark.parametrize("value, words", [
    ("http:/cache.lan/x", "not a URL"),
    ("htp://cache.lan/x", "unsupported scheme 'htp'"),
    ("http://ci:hunter2@cache.lan/x", "credentials do not belong in the URL"),
])
def test_malformed_cache_value_names_the_variable(value, words):
    proc = scons("target=cpu-x86", f"cache={value}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("syclforge: error: cache=") and words in proc.stderr, proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_malformed_headers_are_an_error_that_hides_them():
    proc = scons("target=cpu-x86", "cache=http://127.0.0.1:9/x", check=False,
                 env={"SYCLFORGE_CACHE_HEADERS": "Bearer hunter2"})
    assert proc.returncode == 2 and "SYCLFORGE_CACHE_HEADERS: line 1" in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------
# docker=1 and the CI workflow

def test_docker_builds_use_an_http_cache_inside(tmp_path, monkeypatch):
    """run_numerics hands the container the cache arguments, its local level
    in the work volume, the headers and the host's network; without cache=
    nothing changes (network none)."""
    from types import SimpleNamespace
    from syclforge.containers import docker_run, inside

    class Volumes:
        def get(self, name):
            return name

        def list(self, filters=None):
            return []

    class Container:
        def start(self):
            pass

        def logs(self, stream, follow):
            return iter([b"ok\n"])

        def wait(self, timeout):
            return {"StatusCode": 0}

        def get_archive(self, path):
            import docker
            raise docker.errors.NotFound("no report")

        def remove(self, force):
            pass

    created = []
    client = SimpleNamespace(volumes=Volumes(),
                             containers=SimpleNamespace(create=lambda **kw: created.append(kw) or Container()))
    target = SimpleNamespace(name="cpu-x86")
    defn = SimpleNamespace(name="cpu", repository="syclforge/cpu", python={"venv": "/opt/syclforge/venv"})
    plan = SimpleNamespace(devices=(), gpus=False, group_add=())
    config = remote_cache.parse_cache("http://127.0.0.1:8080/team", {"XDG_CACHE_HOME": str(tmp_path)})
    settings = remote_cache.container_settings(config, upload=False, headers_text="Authorization: Bearer t0k",
                                               environ={}, work=docker_run.WORK_MOUNT)
    docker_run.run_numerics(client, tmp_path, target, defn, "sha256:" + "0" * 64, plan, log=lambda s: None,
                            cache=settings)
    docker_run.run_numerics(client, tmp_path, target, defn, "sha256:" + "0" * 64, plan, log=lambda s: None)
    with_cache, without = created
    assert with_cache["command"][-2:] == ["--scons-arg=cache=http://127.0.0.1:8080/team",
                                          "--scons-arg=cache_upload=0"]
    assert with_cache["environment"]["SYCLFORGE_CACHE_HEADERS"] == "Authorization: Bearer t0k"
    assert with_cache["environment"]["XDG_CACHE_HOME"] == f"{docker_run.WORK_MOUNT}/cache"
    assert with_cache["network_mode"] == "host"
    assert without["network_mode"] == "none" and "SYCLFORGE_CACHE_HEADERS" not in without["environment"]
    assert not any("cache" in a for a in without["command"])

    # inside.py gives those arguments to both of its scons runs
    ran = []
    monkeypatch.setattr(inside, "run", lambda cmd, log: ran.append(cmd) or 0)
    src = tmp_path / "src"
    src.mkdir()
    inside.main(["--target", "cpu-x86", "--src", str(src), "--work", str(tmp_path / "work"),
                 "--scons-arg=cache=http://127.0.0.1:8080/team", "--scons-arg=cache_upload=0"])
    assert len(ran) == 2 and all(cmd[-2:] == ["cache=http://127.0.0.1:8080/team", "cache_upload=0"]
                                 for cmd in ran), ran


def test_docker_with_a_local_cache_folder_is_a_clear_error(tmp_path):
    proc = scons("docker=1", "target=cpu-x86", f"cache={tmp_path}/c", check=False)
    assert proc.returncode == 2 and "docker=1 builds inside containers" in proc.stderr, proc.stderr
    assert "cache=http(s)://HOST:PORT/PREFIX" in proc.stderr and "Traceback" not in proc.stderr


def test_workflow_uses_the_shared_cache_read_only_on_pull_requests():
    import yaml
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "numerics.yml").read_text())
    step = next(s for s in wf["jobs"]["numerics"]["steps"] if "docker=1" in s.get("run", ""))
    env = step["env"]
    assert env["SYCLFORGE_CACHE_URL"] == "${{ vars.SYCLFORGE_CACHE_URL }}"
    assert env["SYCLFORGE_CACHE_UPLOAD"] == "${{ github.event_name == 'pull_request' && '0' || '1' }}"
    assert "github.event_name != 'pull_request' && secrets.SYCLFORGE_CACHE_HEADERS" in env["SYCLFORGE_CACHE_HEADERS"]
    # the run line, as bash expands it, with and without the variable
    for url, upload, want in (("http://cache.lan:8080/ci", "0",
                               ["cache=http://cache.lan:8080/ci", "cache_upload=0"]), ("", "1", [])):
        words = subprocess.run(["bash", "-c", "set -- " + step["run"].replace("${{ matrix.target }}", "cpu-x86")
                                + '; printf "%s\\n" "$@"'],
                               env={"SYCLFORGE_CACHE_URL": url, "SYCLFORGE_CACHE_UPLOAD": upload,
                                    "PATH": os.environ["PATH"]}, capture_output=True, text=True).stdout.split()
        assert words == [".venv/bin/scons", "docker=1", "target=cpu-x86", "strict=1", *want], words


def test_no_tool_sees_the_credential(nginx, fake_build, tmp_path):
    """SYCLFORGE_CACHE_HEADERS is out of the environment of every process the
    build runs: the toolchain probes (--version) and the compiles alike."""
    checkout, icpx, build = fake_build
    env_log = tmp_path / "env.log"
    script = Path(icpx).read_text()
    hook = "log = os.environ.get(\"FAKE_ARGV_LOG\")\n"
    assert hook in script
    Path(icpx).write_text(script.replace(
        hook, hook + f"open({str(env_log)!r}, 'a').write(repr(sorted(os.environ.items())) + '\\n')\n"))
    proc = build(f"cache={nginx.url('env')}", env=cache_env(tmp_path, "1", nginx))
    assert len(actions(proc.stdout)) == ACTIONS and len(nginx.files("env", "ac")) == ACTIONS   # it was used
    seen = env_log.read_text().splitlines()
    assert len(seen) >= ACTIONS                              # the version probe and the compiler runs
    assert not any("SYCLFORGE_CACHE_HEADERS" in line or nginx.token in line for line in seen)
