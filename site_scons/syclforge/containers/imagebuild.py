"""Lock, fetch and build the locally assembled image (kind local-debian).

    lock   (network)  resolve the package set with mmdebstrap against the
                      host's Debian mirrors and the wheels with pip download;
                      record name, version, sha256 of each in <family>.lock.json
    fetch  (network, only for what the cache lacks)  apt-get download /
                      pip download exactly the locked files, checked by sha256
    build  (no network: run under `unshare --net`)
           layer 1  mmdebstrap from a flat repository of the locked .debs,
                    SOURCE_DATE_EPOCH = the lock's (mmdebstrap is
                    reproducible under it), packed by oci.LayerWriter
           layer 2  a venv with the locked wheels (pip --no-index
                    --require-hashes --no-compile), chrooted into layer 1
           layer 3  the non-root user, its home and /work
           config   canonical JSON, `created` from SOURCE_DATE_EPOCH

Layers are cached by a key over their inputs under the cache directory
(~/.cache/syclforge/containers, or $SYCLFORGE_CACHE/containers), so a warm
build only writes the config. Needs root (mmdebstrap --mode=root, chroot).
No SCons import.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from syclforge import containers
from syclforge.containers import oci
from syclforge.errors import SyclforgeError


# --------------------------------------------------------------------------
# Plumbing

def cache_root(environ=None):
    env = os.environ if environ is None else environ
    base = env.get("SYCLFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "syclforge")
    return Path(base) / "containers"


def _say(log, msg):
    if log:
        log(msg)


def _run(cmd, *, log=None, what=None, env=None, cwd=None, timeout=1800):
    """Run cmd; on failure raise SyclforgeError with the last lines it printed."""
    _say(log, f"$ {' '.join(str(c) for c in cmd)[:300]}")
    try:
        proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
    except FileNotFoundError:
        raise SyclforgeError(f"{cmd[0]} not found; {what or 'it'} needs it") from None
    except subprocess.TimeoutExpired:
        raise SyclforgeError(f"{what or cmd[0]} took longer than {timeout} s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise SyclforgeError(f"{what or cmd[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def require_root(what):
    if os.geteuid() != 0:
        raise SyclforgeError(f"{what} needs root (mmdebstrap --mode=root, chroot, unshare --net); "
                             "run it as root")


def require_tools(*pairs):
    missing = [pkg for tool, pkg in pairs if not shutil.which(tool)]
    if missing:
        raise SyclforgeError(f"missing {', '.join(sorted(set(missing)))}: "
                             f"apt-get install -y {' '.join(sorted(set(missing)))}")


def _mounts_under(path):
    path = os.path.realpath(path)
    found = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                mnt = line.split()[4].replace("\\040", " ")
                if mnt == path or mnt.startswith(path + "/"):
                    found.append(mnt)
    except OSError:
        pass
    return sorted(found, reverse=True)


def safe_rmtree(path):
    """rmtree that first unmounts anything left mounted below path (a
    failed mmdebstrap may leave /proc or /dev mounted in its root) and
    refuses to descend into a mount it could not remove."""
    if not os.path.lexists(path):
        return
    for mnt in _mounts_under(path):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    left = _mounts_under(path)
    if left:
        raise SyclforgeError(f"not removing {path}: still mounted below it: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def work_base(cache, need_bytes=6 << 30):
    """Where a build unpacks its root file system: $SYCLFORGE_BUILD_TMP, else
    /dev/shm when it has room (a tmpfs: the 2 GB tree never has to reach
    the disk, which halves a cold build), else <cache>/tmp."""
    if os.environ.get("SYCLFORGE_BUILD_TMP"):
        base = Path(os.environ["SYCLFORGE_BUILD_TMP"])
    else:
        base = cache / "tmp"
        try:
            st = os.statvfs("/dev/shm")
            if st.f_bavail * st.f_frsize >= need_bytes and os.access("/dev/shm", os.W_OK):
                base = Path("/dev/shm")
        except OSError:
            pass
    base.mkdir(parents=True, exist_ok=True)
    return base


def _sha256_file(path):
    return oci.file_sha256(path)


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _key(doc):
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------
# The host's apt sources for a suite

def host_apt_sources(suite, etc="/etc/apt"):
    """One-line 'deb [signed-by=..] URI SUITE COMPONENTS' entries of the host's
    apt sources whose suite is suite, suite-updates or suite-security
    (mmdebstrap's mirrors for lock). Reads sources.list, *.list and deb822
    *.sources; other archives the host uses (third-party) are left out."""
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    out = []
    files = [os.path.join(etc, "sources.list")] + sorted(
        str(p) for p in Path(etc, "sources.list.d").glob("*") if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                    continue
                opts = f"[signed-by={fields['signed-by']}] " if fields.get("signed-by") else ""
                for uri in fields.get("uris", "").split():
                    for s in fields.get("suites", "").split():
                        if s in wanted:
                            out.append(f"deb {opts}{uri} {s} {fields.get('components', 'main')}")
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$", line)
                if m and m.group(3) in wanted:
                    out.append(f"deb {m.group(1) or ''}{m.group(2)} {m.group(3)} {m.group(4).strip()}")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------
# lock

def _deb_file_key(filename):
    """(name, version, arch) from a pool file name (epoch ':' as '%3a')."""
    stem = filename[:-4] if filename.endswith(".deb") else filename
    name, version, arch = stem.split("_")
    return name, version.replace("%3a", ":").replace("%3A", ":"), arch


def parse_dpkg_status(text):
    """Installed (name, version, arch) of a dpkg status file."""
    out = []
    for stanza in text.split("\n\n"):
        f = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1)
                f[k] = v.strip()
        if f.get("Status", "").endswith(" installed") and "Package" in f:
            out.append((f["Package"], f["Version"], f.get("Architecture", "all")))
    return sorted(out)


def dpkg_sources(text):
    """{package: source package} of a dpkg status file ('Source: x (v)' -> x)."""
    out = {}
    for stanza in text.split("\n\n"):
        f = dict(line.split(":", 1) for line in stanza.splitlines()
                 if line and not line[0].isspace() and ":" in line)
        if "Package" in f:
            out[f["Package"].strip()] = (f.get("Source") or f["Package"]).split()[0].strip()
    return out


def pool_path(entry, component="main"):
    """Where a locked .deb lies in a Debian archive (pool/main/<p>/<source>/<file>)."""
    src = entry.get("source") or entry["name"]
    prefix = src[:4] if src.startswith("lib") and len(src) > 3 else src[0]
    return f"pool/{component}/{prefix}/{src}/{entry['file']}"


def _resolve_debs(defn, cache, log):
    require_root("locking Debian packages")
    require_tools(("mmdebstrap", "mmdebstrap"))
    b = defn.build
    sources = host_apt_sources(b["suite"])
    if not sources:
        raise SyclforgeError(f"no apt source for {b['suite']} on this host (/etc/apt); "
                             "the lock resolves against the host's Debian mirrors")
    debs_dir = cache / "inputs" / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lock-", dir=cache / "tmp")
    try:
        root = os.path.join(work, "root")
        srcfile = os.path.join(work, "mirrors.list")
        Path(srcfile).write_text("\n".join(sources) + "\n", encoding="utf-8")
        _say(log, f"resolving {len(b['packages'])} packages + {b['variant']} on {b['suite']} (mmdebstrap)")
        _run(["mmdebstrap", "--mode=root", f"--variant={b['variant']}",
              f"--include={','.join(b['packages'])}", f"--architectures={b['architecture']}",
              "--skip=cleanup/apt,essential/unlink", "--dpkgopt=force-unsafe-io",
              '--aptopt=Acquire::Languages "none"', b["suite"], root, srcfile],
             log=log, what="mmdebstrap (lock)")
        status = Path(root, "var/lib/dpkg/status").read_text(encoding="utf-8")
        installed = parse_dpkg_status(status)
        sources = dpkg_sources(status)
        archives = {}
        for p in Path(root, "var/cache/apt/archives").glob("*.deb"):
            archives[_deb_file_key(p.name)] = p
        entries = []
        for name, version, arch in installed:
            src = archives.get((name, version, arch))
            if src is None:
                raise SyclforgeError(f"lock: {name} {version} is installed but its .deb was not kept")
            dst = debs_dir / src.name
            if not dst.exists():
                shutil.copy2(src, dst)
            entries.append({"name": name, "version": version, "architecture": arch,
                            "source": sources.get(name, name),
                            "file": src.name, "sha256": _sha256_file(dst),
                            "size": dst.stat().st_size})
        return entries
    finally:
        safe_rmtree(work)


def _pip_download_args(defn):
    py = defn.python["version"]
    abi = "cp" + py.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", py, "--implementation", "cp",
            "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in containers.wheel_platform_tags():
        args += ["--platform", tag]
    return args


def _resolve_wheels(top, defn, cache, log):
    reqs = containers.python_requirements(top, defn)
    wheels_dir = cache / "inputs" / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lockwheels-", dir=cache / "tmp")
    try:
        req = os.path.join(work, "requirements.txt")
        Path(req).write_text("\n".join(reqs) + "\n", encoding="utf-8")
        _say(log, f"resolving {len(reqs)} Python requirements for Python {defn.python['version']} (pip download)")
        _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
              "-d", os.path.join(work, "dl"), *_pip_download_args(defn), "-r", req],
             log=log, what="pip download (lock)")
        entries = []
        for p in sorted(Path(work, "dl").glob("*.whl")):
            name, version = containers.parse_wheel_filename(p.name)
            dst = wheels_dir / p.name
            if not dst.exists():
                shutil.copy2(p, dst)
            entries.append({"name": containers.normalize_name(name), "version": version,
                            "file": p.name, "sha256": _sha256_file(dst), "size": dst.stat().st_size})
        if not entries:
            raise SyclforgeError("pip download gave no wheels")
        return entries
    finally:
        safe_rmtree(work)


def lock(top, defn, *, cache=None, log=None, force=False, parts=None):
    """Resolve the stale parts of defn's lock (all with force, or the given
    parts: "debs", "wheels") and write it. Returns the list of parts resolved."""
    cache = Path(cache or cache_root())
    path = Path(defn.lock_path)
    try:
        old = containers.load_lock(top, defn, check_fresh=False) if path.exists() else None
    except SyclforgeError:
        old = None
    if parts is not None and old is not None:
        parts = [p for p in containers.lock_parts(defn) if p in parts]
    else:
        parts = list(containers.lock_parts(defn)) if (force or old is None) \
            else containers.stale_parts(top, defn, old)
    if not parts:
        _say(log, f"{path.name} is up to date")
        return []
    new = dict(old or {})
    new["version"] = containers.LOCK_VERSION
    new["family"] = defn.name
    if "debs" in parts:
        new["debs"] = _resolve_debs(defn, cache, log)
        # Layer mtimes: the day the package set was resolved (UTC midnight).
        new["source_date_epoch"] = int(time.time()) // 86400 * 86400
    if "wheels" in parts:
        new["wheels"] = _resolve_wheels(top, defn, cache, log)
    new.setdefault("source_date_epoch", int(time.time()) // 86400 * 86400)
    new["inputs"] = {p: containers.inputs_digest(top, defn, p) for p in containers.lock_parts(defn)}
    doc = {"//": f"Generated by `{containers.lock_command(defn)}`; every input of the "
                 f"{defn.name} image with its sha256. Do not edit by hand."}
    doc.update({k: new[k] for k in ("version", "family", "source_date_epoch", "inputs")})
    for k in ("debs", "wheels"):
        if k in new:
            doc[k] = sorted(new[k], key=lambda e: (e["name"], e.get("architecture", ""), e["file"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    _say(log, f"wrote {path} ({', '.join(parts)} resolved)")
    return parts


# --------------------------------------------------------------------------
# fetch

def _verified(path, sha256):
    return path.is_file() and _sha256_file(path) == sha256


def fetch(top, defn, lock_doc, *, cache=None, log=None):
    """Make sure every locked input is in the cache with its sha256;
    download (network) only what is missing. Returns (debs_dir, wheels_dir)."""
    cache = Path(cache or cache_root())
    debs_dir, wheels_dir = cache / "inputs" / "debs", cache / "inputs" / "wheels"
    for d in (debs_dir, wheels_dir, cache / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    missing_debs = [e for e in lock_doc.get("debs", []) if not _verified(debs_dir / e["file"], e["sha256"])]
    missing_wheels = [e for e in lock_doc["wheels"] if not _verified(wheels_dir / e["file"], e["sha256"])]
    if missing_debs:
        _fetch_debs(defn, missing_debs, debs_dir, cache, log)
    if missing_wheels:
        _fetch_wheels(defn, missing_wheels, wheels_dir, cache, log)
    if missing_debs or missing_wheels:
        _say(log, f"fetched {len(missing_debs)} .debs and {len(missing_wheels)} wheels")
    return debs_dir, wheels_dir


def _fetch_from_archives(entries, work, log):
    """Fetch .debs by pool path from the archives named in
    $SYCLFORGE_DEBIAN_ARCHIVES (base URLs, e.g. of a dated snapshot of the
    Debian archive and of its security archive): the fallback once the
    host's mirrors have moved past the locked versions."""
    import urllib.request
    bases = os.environ.get("SYCLFORGE_DEBIAN_ARCHIVES", "").split()
    left = []
    for e in entries:
        for base in bases:
            url = f"{base.rstrip('/')}/{pool_path(e)}"
            try:
                with urllib.request.urlopen(url, timeout=120) as r, open(Path(work, e["file"]), "wb") as f:
                    shutil.copyfileobj(r, f)
                _say(log, f"fetched {e['file']} from {base}")
                break
            except OSError:
                continue
        else:
            left.append(e)
    return left


def _apt_spec(e):
    return f"{e['name']}:{e['architecture']}={e['version']}" if e["architecture"] != "all" \
        else f"{e['name']}={e['version']}"


_APT_MISSING = re.compile(r"^E: (?:Version '([^']+)' for '([^':]+)(?::[^']*)?' was not found"
                          r"|Unable to locate package ([^\s:]+))", re.M)


def parse_apt_missing(text):
    """{(name, version or None)} that apt's errors say it cannot find."""
    return {(m.group(2), m.group(1)) if m.group(2) else (m.group(3), None) for m in _APT_MISSING.finditer(text)}


def unserved_debs(lock_doc, log=None):
    """The locked .debs the host's mirrors no longer serve (asks apt, downloads
    nothing; one `apt-get update` first as root, so the lists are today's).
    Debian replaces point-release and security versions within days: a lock
    is a pin that only a snapshot archive keeps forever."""
    require_tools(("apt-get", "apt"))
    entries = lock_doc.get("debs", [])
    if os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"], log=log, what="apt-get update")
    proc = subprocess.run(["apt-get", "download", "--print-uris", *map(_apt_spec, entries)],
                          capture_output=True, text=True, timeout=600)
    missing = parse_apt_missing(proc.stdout + proc.stderr)
    return [e for e in entries if (e["name"], e["version"]) in missing or (e["name"], None) in missing]


def _apt_download(specs, work, log):
    """apt-get download of exact versions; one `apt-get update` and a retry
    (as root) if the host's lists do not know them. True when all came."""
    for attempt in (1, 2):
        try:
            _run(["apt-get", "download", *specs], cwd=work, log=log, what="apt-get download")
            return True
        except SyclforgeError as e:
            _say(log, str(e).splitlines()[-1])
            if attempt == 2 or os.geteuid() != 0:
                return False
            _run(["apt-get", "update", "-qq"], log=log, what="apt-get update")
    return False


def _fetch_debs(defn, entries, debs_dir, cache, log):
    require_tools(("apt-get", "apt"))
    work = tempfile.mkdtemp(prefix="fetch-", dir=cache / "tmp")
    try:
        specs = [_apt_spec(e) for e in entries]
        _say(log, f"downloading {len(specs)} locked .debs (apt-get download)")
        if not _apt_download(specs, work, log):
            left = _fetch_from_archives(entries, work, log)
            if left:
                raise SyclforgeError(
                    f"cannot download {', '.join(e['file'] for e in left[:5])}"
                    f"{' ...' if len(left) > 5 else ''}: the host's mirrors no longer carry these "
                    "locked versions (Debian replaces point releases and security updates). Refresh "
                    f"the lock with `{containers.lock_command(defn)} --force`, or set "
                    "SYCLFORGE_DEBIAN_ARCHIVES to archives that keep them (a dated snapshot)")
        for e in entries:
            got = Path(work, e["file"])
            if not got.is_file():
                cands = [p for p in Path(work).glob(f"{e['name']}_*.deb")]
                got = cands[0] if cands else got
            if not got.is_file():
                raise SyclforgeError(f"apt-get download gave no file for {e['name']} {e['version']}")
            sha = _sha256_file(got)
            if sha != e["sha256"]:
                raise SyclforgeError(f"{got.name}: sha256 {sha} is not the locked {e['sha256']}; "
                                     "the mirror serves different bytes for this version")
            shutil.move(str(got), debs_dir / e["file"])
    finally:
        safe_rmtree(work)


def _fetch_wheels(defn, entries, wheels_dir, cache, log):
    work = tempfile.mkdtemp(prefix="fetchwheels-", dir=cache / "tmp")
    try:
        req = Path(work, "requirements.txt")
        req.write_text(containers.hashed_requirements({"wheels": entries}), encoding="utf-8")
        _say(log, f"downloading {len(entries)} locked wheels (pip download --require-hashes)")
        _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
              "--no-deps", "--require-hashes", "-d", os.path.join(work, "dl"),
              *_pip_download_args(defn), "-r", req], log=log, what="pip download")
        for e in entries:
            got = Path(work, "dl", e["file"])
            if not got.is_file() or _sha256_file(got) != e["sha256"]:
                raise SyclforgeError(f"pip download did not give {e['file']} with the locked sha256")
            shutil.move(str(got), wheels_dir / e["file"])
    finally:
        safe_rmtree(work)


# --------------------------------------------------------------------------
# build

def write_flat_repo(repo, debs, suite, architecture, epoch):
    """A flat apt repository (Packages + Release) over the .debs in repo:
    what mmdebstrap installs from, offline (`deb [trusted=yes] copy://repo ./`)."""
    stanzas = []
    for e in sorted(debs, key=lambda e: (e["name"], e["architecture"])):
        control = _run(["dpkg-deb", "-f", os.path.join(repo, e["file"])], what="dpkg-deb").rstrip("\n")
        stanzas.append(f"{control}\nFilename: ./{e['file']}\nSize: {e['size']}\nSHA256: {e['sha256']}\n")
    packages = "\n".join(stanzas).encode()
    Path(repo, "Packages").write_bytes(packages)
    release = (f"Origin: syclforge-lock\nLabel: syclforge-lock\nSuite: {suite}\nCodename: {suite}\n"
               f"Architectures: {architecture} all\nDate: {formatdate(epoch, usegmt=True)}\n"
               f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    Path(repo, "Release").write_text(release, encoding="utf-8")


_VOLATILE_DIRS = ("dev", "proc", "sys", "run", "tmp")


def _base_exclude(rel):
    """Layer 1 keeps these directories but none of their contents."""
    top = rel.split("/", 1)
    return len(top) == 2 and top[0] in _VOLATILE_DIRS


@dataclass
class BuiltImage:
    family: str
    image_id: str
    config: bytes = field(repr=False)
    layers: list            # layer tar paths, bottom first
    diff_ids: list
    sizes: list
    built: list             # per layer: True if built now, False if cached
    tags: list
    seconds: float = 0.0    # wall time of build_local (set by the caller)

    @property
    def size(self):
        return sum(self.sizes)


class LayerCache:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, key):
        tar, meta = self.dir / f"{key}.tar", self.dir / f"{key}.json"
        if tar.is_file() and meta.is_file():
            m = json.loads(meta.read_text())
            if tar.stat().st_size == m["size"]:
                return str(tar), m
        return None

    def put(self, key, writer):
        """writer is a closed oci.LayerWriter whose path is self.path(key)."""
        m = {"diff_id": writer.diff_id, "size": writer.size}
        tmp = self.dir / f"{key}.json.tmp"
        tmp.write_text(json.dumps(m))
        os.replace(tmp, self.dir / f"{key}.json")
        return str(self.dir / f"{key}.tar"), m

    def path(self, key):
        return str(self.dir / f"{key}.tar")


def build_local(top, defn, lock_doc, *, meta, cache=None, layers_dir=None, log=None):
    """Assemble the image of a local-debian family; return a BuiltImage.

    meta: dict(source=, revision=, epoch=) for the labels and `created`.
    layers_dir: where layers are cached (default <cache>/layers); an empty
    one means a build from a clean state.
    """
    if not defn.local:
        raise ValueError(f"{defn.name} is built from a Dockerfile")
    cache = Path(cache or cache_root())
    layers = LayerCache(layers_dir or cache / "layers")
    b, py, user = defn.build, defn.python, defn.user
    epoch = int(lock_doc["source_date_epoch"])
    debs_dir, wheels_dir = fetch(top, defn, lock_doc, cache=cache, log=log)

    key1 = _key({"builder": containers.BUILDER_VERSION, "layer": "base", "epoch": epoch,
                 "suite": b["suite"], "variant": b["variant"], "architecture": b["architecture"],
                 "packages": sorted(b["packages"]),
                 "debs": sorted((e["file"], e["sha256"]) for e in lock_doc["debs"])})
    key2 = _key({"builder": containers.BUILDER_VERSION, "layer": "venv", "base": key1,
                 "venv": py["venv"], "wheels": sorted((e["file"], e["sha256"]) for e in lock_doc["wheels"])})
    key3 = _key({"builder": containers.BUILDER_VERSION, "layer": "user", "base": key1,
                 "user": user, "workdir": containers.WORKDIR})
    got = [layers.get(k) for k in (key1, key2, key3)]
    built = [g is None for g in got]
    work = None
    try:
        rootfs = None
        if any(built):
            require_root(f"building the {defn.name} image")
            require_tools(("mmdebstrap", "mmdebstrap"), ("unshare", "util-linux"), ("chroot", "coreutils"),
                          ("dpkg-deb", "dpkg"))
            work = tempfile.mkdtemp(prefix="syclforge-build-", dir=work_base(cache))
            rootfs = os.path.join(work, "rootfs")
        if built[0]:
            _build_base(defn, lock_doc, debs_dir, work, rootfs, epoch, log)
            w = oci.LayerWriter(layers.path(key1), epoch)
            w.add_tree(rootfs, exclude=_base_exclude)
            _say(log, "layer 1/3 (Debian base): packing")
            w.close()
            got[0] = layers.put(key1, w)
        elif built[1]:
            _say(log, "layer 1/3 (Debian base): cached; unpacking it for the venv")
            os.makedirs(rootfs)
            _run(["tar", "-xpf", got[0][0], "-C", rootfs, "--numeric-owner"], what="unpacking layer 1")
        if built[1]:
            _build_venv(defn, lock_doc, wheels_dir, rootfs, epoch, log)
            w = oci.LayerWriter(layers.path(key2), epoch)
            parts = py["venv"].strip("/").split("/")
            for i in range(1, len(parts)):
                anc = "/".join(parts[:i])
                st = os.lstat(os.path.join(rootfs, anc))
                w.add_dir(anc, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
            w.add_tree(os.path.join(rootfs, *parts), arcroot=py["venv"])
            _say(log, "layer 2/3 (venv): packing")
            w.close()
            got[1] = layers.put(key2, w)
        if built[2]:
            w = oci.LayerWriter(layers.path(key3), epoch)
            _user_layer(w, defn, got[0][0], rootfs, epoch)
            w.close()
            got[2] = layers.put(key3, w)
    finally:
        if work:
            safe_rmtree(work)

    for i, (name, b_) in enumerate(zip(("Debian base", "venv", "user"), built), 1):
        if not b_:
            _say(log, f"layer {i}/3 ({name}): cached")
    env = defn.env()
    lab = containers.labels(defn, source=meta["source"], revision=meta["revision"],
                            created=oci.rfc3339(meta["epoch"]),
                            lock_sha256=containers.lock_digest(lock_doc))
    config = {
        "User": f"{user['uid']}:{user['gid']}",
        "Env": [f"{k}={v}" for k, v in env.items()],
        "WorkingDir": containers.WORKDIR,
        "Cmd": ["/bin/bash"],
        "Labels": lab,
    }
    history = [
        {"created_by": f"mmdebstrap --variant={b['variant']} --include={','.join(b['packages'])} "
                       f"{b['suite']} (offline, {len(lock_doc['debs'])} locked .debs)",
         "comment": "syclforge layer 1: Debian base"},
        {"created_by": f"pip install --no-index --require-hashes --no-compile into {py['venv']} "
                       f"({len(lock_doc['wheels'])} locked wheels)",
         "comment": "syclforge layer 2: venv"},
        {"created_by": f"user {user['name']} ({user['uid']}:{user['gid']}), home and {containers.WORKDIR}",
         "comment": "syclforge layer 3: non-root user"},
    ]
    diff_ids = [g[1]["diff_id"] for g in got]
    cfg = oci.image_config(diff_ids, created=oci.rfc3339(meta["epoch"]), config=config, history=history)
    iid = oci.image_id(cfg)
    tags = [f"{defn.repository}:{iid.split(':')[1][:12]}", f"{defn.repository}:latest"]
    return BuiltImage(defn.name, iid, cfg, [g[0] for g in got], diff_ids,
                      [g[1]["size"] for g in got], built, tags)


def _build_base(defn, lock_doc, debs_dir, work, rootfs, epoch, log):
    b = defn.build
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    for e in lock_doc["debs"]:
        _link_or_copy(debs_dir / e["file"], os.path.join(repo, e["file"]))
    write_flat_repo(repo, lock_doc["debs"], b["suite"], b["architecture"], epoch)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), TMPDIR=work, LC_ALL="C.UTF-8")
    _say(log, f"layer 1/3 (Debian base): mmdebstrap {b['variant']} + {len(b['packages'])} packages "
              f"from {len(lock_doc['debs'])} locked .debs, no network")
    _run(["unshare", "--net", "mmdebstrap", "--mode=root", f"--variant={b['variant']}",
          f"--include={','.join(b['packages'])}", f"--architectures={b['architecture']}",
          "--dpkgopt=force-unsafe-io", '--aptopt=Acquire::Languages "none"',
          # The host's resolver and name would make the result host-specific;
          # the image needs no apt source (it is rebuilt from the lock).
          '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname" "$1/etc/apt/sources.list"',
          b["suite"], rootfs, f"deb [trusted=yes] copy://{repo} ./"],
         env=env, log=log, what="mmdebstrap (offline)")


def _build_venv(defn, lock_doc, wheels_dir, rootfs, epoch, log):
    py = defn.python
    stage = os.path.join(rootfs, "tmp", "syclforge-wheels")
    os.makedirs(stage, exist_ok=True)
    for e in lock_doc["wheels"]:
        _link_or_copy(wheels_dir / e["file"], os.path.join(stage, e["file"]))
    Path(rootfs, "tmp", "syclforge-requirements.txt").write_text(
        containers.hashed_requirements(lock_doc), encoding="utf-8")
    script = (
        "umask 022; "
        f"python3 -m venv --without-pip {py['venv']}; "
        # pip itself comes from Debian's python3-pip-whl (a locked .deb),
        # run from its wheel: nothing else is installed into the venv.
        "pip_whl=$(ls /usr/share/python-wheels/pip-*.whl); "
        f"{py['venv']}/bin/python \"$pip_whl/pip\" install --no-index --no-deps --no-compile "
        "--no-cache-dir --disable-pip-version-check --no-warn-script-location --require-hashes "
        "--find-links /tmp/syclforge-wheels -r /tmp/syclforge-requirements.txt"
    )
    _say(log, f"layer 2/3 (venv): {len(lock_doc['wheels'])} locked wheels into {py['venv']}, no network")
    try:
        _run(["unshare", "--net", "chroot", rootfs, "/usr/bin/env", "-i",
              f"PATH={containers.DEBIAN_PATH}", "HOME=/root", "LANG=C.UTF-8",
              "PYTHONDONTWRITEBYTECODE=1", f"SOURCE_DATE_EPOCH={epoch}", "/bin/sh", "-ec", script],
             log=log, what="pip install (venv layer)")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        Path(rootfs, "tmp", "syclforge-requirements.txt").unlink(missing_ok=True)
    leftovers = [str(p) for p in Path(rootfs, py["venv"].lstrip("/")).rglob("__pycache__")]
    if leftovers:
        raise SyclforgeError(f"the venv layer holds byte code ({leftovers[0]}...): it would not be reproducible")


_ACCOUNT_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow")


def _read_account_files(base_tar, rootfs):
    """{path: (bytes, mode, uid, gid)} of the account files of layer 1."""
    out = {}
    if rootfs and os.path.isdir(rootfs):
        for rel in _ACCOUNT_FILES:
            p = os.path.join(rootfs, rel)
            st = os.lstat(p)
            out[rel] = (Path(p).read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
        return out
    with tarfile.open(base_tar) as tar:
        for m in tar:
            if m.name in _ACCOUNT_FILES:
                out[m.name] = (tar.extractfile(m).read(), m.mode, m.uid, m.gid)
            if len(out) == len(_ACCOUNT_FILES):
                break
    missing = set(_ACCOUNT_FILES) - set(out)
    if missing:
        raise SyclforgeError(f"layer 1 lacks {', '.join(sorted(missing))}")
    return out


def user_account_lines(user, epoch):
    """The lines that add user to passwd, group, shadow and gshadow."""
    n, uid, gid = user["name"], user["uid"], user["gid"]
    return {
        "etc/passwd": f"{n}:x:{uid}:{gid}:syclforge:/home/{n}:/bin/bash\n",
        "etc/group": f"{n}:x:{gid}:\n",
        # '!': no password login; last change = the lock's day (reproducible).
        "etc/shadow": f"{n}:!:{int(epoch) // 86400}:0:99999:7:::\n",
        "etc/gshadow": f"{n}:!::\n",
    }


def _user_layer(w, defn, base_tar, rootfs, epoch):
    user = defn.user
    files = _read_account_files(base_tar, rootfs)
    for rel, line in user_account_lines(user, epoch).items():
        data, mode, uid, gid = files[rel]
        if any(l.split(":", 1)[0] == user["name"] for l in data.decode().splitlines()):
            raise SyclforgeError(f"user {user['name']} already exists in the base's /{rel}")
        if data and not data.endswith(b"\n"):
            data += b"\n"
        w.add_bytes(rel, data + line.encode(), mode=mode, uid=uid, gid=gid)
    w.add_dir(f"home/{user['name']}", mode=0o755, uid=user["uid"], gid=user["gid"])
    w.add_dir(containers.WORKDIR.strip("/"), mode=0o755, uid=user["uid"], gid=user["gid"])
