"""Per-vendor container images: definitions, locks, labels, Dockerfiles.

One file per vendor family, toolchains/containers/<name>.yaml (validated by
container.schema.json there), says which targets.yaml vendors the image
serves, which toolchain families (toolchains/*.yaml) it carries, which host
devices it needs, and how it is built:

- kind local-debian (cpu): assembled here from a lock of .debs and wheels,
  offline and bit-for-bit reproducible (imagebuild.py, oci.py);
- kind dockerfile (intel, nvidia, amd): a Dockerfile rendered from the data,
  its base pinned by digest, built by the engine where a registry and the
  vendor's devices are (self-hosted CI runners).

Pure logic: no SCons, no Docker, no network. Unit-tested directly.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from syclforge.core import yamlpos
from syclforge.errors import ConfigError, SyclforgeError

CONTAINERS_DIR = Path("toolchains") / "containers"
SCHEMA_NAME = "container.schema.json"
# Bump when the same inputs would give different image bytes (layer layout,
# normalisation, config fields): it is part of every layer's cache key.
BUILDER_VERSION = 1
LOCK_VERSION = 1
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORKDIR = "/work"
# Wheels are locked for manylinux up to this glibc: Debian 12 has 2.36,
# Ubuntu 24.04 2.39, so one bound serves every image.
MAX_GLIBC_MINOR = 36


# --------------------------------------------------------------------------
# Definitions

@dataclass
class ContainerDef:
    """One toolchains/containers/<name>.yaml; data is the file as written."""
    name: str
    path: str
    data: dict = field(repr=False)
    lines: dict = field(repr=False, default_factory=dict)

    @property
    def description(self):
        return self.data["description"]

    @property
    def vendors(self):
        return list(self.data["vendors"])

    @property
    def toolchains(self):
        return list(self.data["toolchains"])

    @property
    def device_kind(self):
        return self.data["devices"]["kind"]

    @property
    def build(self):
        return self.data["build"]

    @property
    def local(self):
        """True for an image assembled here (local-debian)."""
        return self.build["kind"] == "local-debian"

    @property
    def python(self):
        return self.data["python"]

    @property
    def user(self):
        return self.data["user"]

    @property
    def lock_path(self):
        return str(Path(self.path).parent / self.data["lock"])

    @property
    def repository(self):
        """The engine's repository name for this family's images."""
        return f"syclforge/{self.name}"

    def serves(self, target):
        return target.vendor in self.vendors

    def env(self):
        """The image's environment, PATH first (dirs + venv + base PATH)."""
        venv_bin = self.python["venv"].rstrip("/") + "/bin"
        path = [*self.data.get("path", []), venv_bin]
        out = {"PATH": ":".join(path) + ":" + (DEBIAN_PATH if self.local else "$PATH")}
        out.update({
            "HOME": f"/home/{self.user['name']}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
        })
        out.update(self.data.get("env") or {})
        return out


@lru_cache(maxsize=None)
def _validator(schema_file):
    with open(schema_file, encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


def containers_dir(top):
    return Path(top) / CONTAINERS_DIR


def load_definitions(top, targets=None, families=None):
    """Load every toolchains/containers/*.yaml, validated, and cross-checked
    against targets.yaml and toolchains/ when those are given.

    Returns {name: ContainerDef} sorted by name. Errors are ConfigError
    (file, line, key) or SyclforgeError.
    """
    cdir = containers_dir(top)
    schema = cdir / SCHEMA_NAME
    if not schema.is_file():
        raise ConfigError(schema, None, None, "container schema not found (it ships in toolchains/containers/)")
    validator = _validator(str(schema.resolve()))
    defs = {}
    for path in sorted(cdir.glob("*.yaml")):
        try:
            data, lines = yamlpos.load(path)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(path, None, None, f"cannot read file: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(path, 1, None, "expected a mapping (see container.schema.json)")
        error = best_match(validator.iter_errors(data))
        if error is not None:
            at = tuple(error.absolute_path)
            raise ConfigError(path, yamlpos.line_of(lines, at), yamlpos.dotted(at) or None,
                              error.message)
        if data["name"] != path.stem:
            raise ConfigError(path, yamlpos.line_of(lines, ("name",)), "name",
                              f"'{data['name']}' must match the file name ('{path.stem}')")
        defs[data["name"]] = ContainerDef(data["name"], str(path), data, lines)
    if not defs:
        raise ConfigError(cdir, None, None, "no container definitions (*.yaml) found")
    _cross_check(defs, targets, families)
    return defs


def _cross_check(defs, targets, families):
    owner = {}
    for d in defs.values():
        for v in d.vendors:
            if v in owner:
                raise ConfigError(d.path, yamlpos.line_of(d.lines, ("vendors",)), "vendors",
                                  f"vendor '{v}' is already served by {owner[v]}.yaml; "
                                  "one image per vendor family")
            owner[v] = d.name
    if families is not None:
        by_name = {f.name: f for f in families}
        for d in defs.values():
            for i, name in enumerate(d.toolchains):
                if name not in by_name:
                    raise ConfigError(d.path, yamlpos.line_of(d.lines, ("toolchains", i)),
                                      f"toolchains.{i}",
                                      f"unknown toolchain family '{name}' "
                                      f"(known: {', '.join(sorted(by_name))})")
            for v in d.vendors:
                if not any(by_name[n].role == "sycl" and by_name[n].vendor_caps(v)
                           for n in d.toolchains):
                    raise ConfigError(d.path, yamlpos.line_of(d.lines, ("toolchains",)), "toolchains",
                                      f"no SYCL family in {d.toolchains} can build for vendor '{v}' "
                                      "(see their capabilities in toolchains/)")
    if targets is not None:
        for t in (targets.values() if isinstance(targets, dict) else targets):
            if t.vendor not in owner:
                raise SyclforgeError(
                    f"target '{t.name}' (vendor {t.vendor}) has no container image: add its vendor "
                    f"to one of {', '.join(sorted(defs))} in {CONTAINERS_DIR}/")


def definition_for(defs, target):
    for d in defs.values():
        if d.serves(target):
            return d
    raise SyclforgeError(f"target '{target.name}' (vendor {target.vendor}) has no container image")


# --------------------------------------------------------------------------
# Python requirements and locks

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def normalize_name(name):
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_requirements(top, defn):
    """The pinned requirement lines ('name==version') the image installs:
    the project's requirements file less the definition's excludes."""
    path = Path(top) / defn.python["requirements"]
    exclude = {normalize_name(n) for n in defn.python.get("exclude", [])}
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        m = _REQ.match(text)
        if not m:
            raise ConfigError(path, lineno, None,
                              f"'{text}': container images need exact pins (name==version)")
        if normalize_name(m.group(1)) not in exclude:
            out.append(f"{m.group(1)}=={m.group(2)}")
    return out


def inputs_digest(top, defn, part):
    """What one part of a lock was resolved from. part 'debs': the suite,
    variant and package list; part 'wheels': the Python version and the
    requirement pins. A lock part whose recorded digest differs is stale."""
    build = defn.build
    if part == "debs":
        doc = {"suite": build.get("suite"), "variant": build.get("variant"),
               "architecture": build.get("architecture"),
               "packages": sorted(build.get("packages", []))}
    elif part == "wheels":
        doc = {"python": defn.python["version"], "max_glibc_minor": MAX_GLIBC_MINOR,
               "requirements": sorted(python_requirements(top, defn))}
    else:
        raise ValueError(part)
    doc["lock_version"] = LOCK_VERSION
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def lock_parts(defn):
    return ("debs", "wheels") if defn.local else ("wheels",)


def stale_parts(top, defn, lock):
    """The parts of lock whose inputs changed since it was made."""
    recorded = lock.get("inputs") or {}
    return [p for p in lock_parts(defn) if recorded.get(p) != inputs_digest(top, defn, p)]


def lock_command(defn):
    return f"PYTHONPATH=site_scons .venv/bin/python -m syclforge.containers.docker_run lock {defn.name}"


def load_lock(top, defn, *, check_fresh=True):
    path = Path(defn.lock_path)
    if not path.is_file():
        raise SyclforgeError(f"{path}: no lock for the {defn.name} image; make it with `{lock_command(defn)}`")
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SyclforgeError(f"{path}: not valid JSON ({e}); regenerate it with `{lock_command(defn)}`") from None
    problems = validate_lock(lock, defn)
    if problems:
        raise SyclforgeError(f"{path}: " + "; ".join(problems))
    stale = stale_parts(top, defn, lock) if check_fresh else []
    if stale:
        what = {"debs": f"the package list in {defn.path}",
                "wheels": f"the pins in {defn.python['requirements']} (or python in {defn.path})"}
        raise SyclforgeError(
            f"{path} is stale: {' and '.join(what[p] for p in stale)} changed since it was made; "
            f"refresh it with `{lock_command(defn)}` (only the stale part is resolved again)")
    return lock


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def validate_lock(lock, defn):
    """Structural problems of a lock (a list of strings, empty when fine)."""
    problems = []
    if lock.get("version") != LOCK_VERSION:
        problems.append(f"lock version {lock.get('version')!r}, expected {LOCK_VERSION}")
    if lock.get("family") != defn.name:
        problems.append(f"lock is for {lock.get('family')!r}, not {defn.name!r}")
    if not isinstance(lock.get("source_date_epoch"), int):
        problems.append("source_date_epoch must be an integer")
    for part in lock_parts(defn):
        if not _HEX64.match(str((lock.get("inputs") or {}).get(part, ""))):
            problems.append(f"inputs.{part} must be 64 hex digits")
    sections = [("wheels", ("name", "version", "file", "sha256", "size"))]
    if defn.local:
        sections.insert(0, ("debs", ("name", "version", "architecture", "file", "sha256", "size")))
    for section, keys in sections:
        entries = lock.get(section)
        if not isinstance(entries, list) or not entries:
            problems.append(f"{section}: expected a non-empty list")
            continue
        for i, e in enumerate(entries):
            missing = [k for k in keys if k not in e]
            if missing:
                problems.append(f"{section}[{i}]: missing {', '.join(missing)}")
            elif not _HEX64.match(e["sha256"]):
                problems.append(f"{section}[{i}] ({e['name']}): sha256 must be 64 hex digits")
            elif "/" in e["file"] or e["file"].startswith("."):
                problems.append(f"{section}[{i}] ({e['name']}): file must be a bare file name")
    return problems


def hashed_requirements(lock):
    """pip's --require-hashes input for the lock's wheels, one per line."""
    return "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n"
                   for w in sorted(lock["wheels"], key=lambda w: normalize_name(w["name"])))


def wheel_platform_tags():
    """pip download --platform values for x86-64 Linux wheels: manylinux up
    to MAX_GLIBC_MINOR (pip does not widen one --platform by itself)."""
    tags = [f"manylinux_2_{m}_x86_64" for m in range(MAX_GLIBC_MINOR, 4, -1)]
    return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]


def parse_wheel_filename(filename):
    """(name, version) of a wheel file name (PEP 427)."""
    if not filename.endswith(".whl"):
        raise ValueError(f"not a wheel: {filename}")
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {filename}")
    return parts[0], parts[1]


# --------------------------------------------------------------------------
# Image metadata

def git_output(top, *args):
    try:
        out = subprocess.run(["git", *args], cwd=top, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _strip_credentials(url):
    return re.sub(r"(://)[^/@]+@", r"\1", url)


def source_info(top, environ=None, lock=None):
    """(source, revision, epoch) for the OCI labels and `created`.

    epoch: SOURCE_DATE_EPOCH if set, else the commit time of HEAD, else the
    lock's. source: SYCLFORGE_SOURCE_URL, GitHub Actions' repository, or the
    git remote 'origin'. revision: GITHUB_SHA or HEAD.
    """
    env = os.environ if environ is None else environ
    epoch = env.get("SOURCE_DATE_EPOCH") or git_output(top, "log", "-1", "--format=%ct")
    if not epoch and lock:
        epoch = lock["source_date_epoch"]
    try:
        epoch = int(epoch or 0)
    except ValueError:
        raise SyclforgeError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from None
    if env.get("SYCLFORGE_SOURCE_URL"):
        source = env["SYCLFORGE_SOURCE_URL"]
    elif env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        source = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    else:
        source = _strip_credentials(git_output(top, "remote", "get-url", "origin") or "") or "unknown"
    revision = env.get("GITHUB_SHA") or git_output(top, "rev-parse", "HEAD") or "unknown"
    return source, revision, epoch


def labels(defn, *, source, revision, created, lock_sha256=None):
    """OCI annotations (org.opencontainers.image.*) plus syclforge's own."""
    out = {
        "org.opencontainers.image.title": f"syclforge-{defn.name}",
        "org.opencontainers.image.description": defn.description,
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": created,
        "io.syclforge.family": defn.name,
        "io.syclforge.vendors": ",".join(defn.vendors),
        "io.syclforge.toolchains": ",".join(defn.toolchains),
    }
    if not defn.local:
        base = defn.build["base"]
        out["org.opencontainers.image.base.name"] = f"{base['image']}:{base['tag']}"
        out["org.opencontainers.image.base.digest"] = base["digest"]
    if lock_sha256:
        out["io.syclforge.lock.sha256"] = lock_sha256
    return out


# --------------------------------------------------------------------------
# Devices

@dataclass
class DevicePlan:
    ok: bool
    reason: str = ""
    gpus: bool = False            # ask the engine for every NVIDIA GPU
    devices: tuple = ()           # host device nodes passed through
    group_add: tuple = ()         # the host gids that own those nodes


def _render_nodes(pci_vendor, sysfs="/sys/class/drm"):
    nodes = []
    for dev in sorted(glob.glob(os.path.join(sysfs, "renderD*"))):
        try:
            with open(os.path.join(dev, "device", "vendor"), encoding="ascii") as f:
                vendor = f.read().strip().lower()
        except OSError:
            continue
        if vendor == pci_vendor:
            nodes.append("/dev/dri/" + os.path.basename(dev))
    return nodes


def _gid(path):
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


def device_plan(kind, *, engine_runtimes=(), root="/", which=None):
    """Whether this host can give the image the vendor's devices, and how.

    kind none: always ok. nvidia: /dev/nvidia0.. and the engine able to pass
    them (nvidia runtime or the toolkit's hook). amd: /dev/kfd plus AMD
    render nodes. intel: Intel render nodes. Else not ok, with the reason.
    """
    import shutil
    which = which or shutil.which
    dev = os.path.join(root, "dev")
    if kind == "none":
        return DevicePlan(True)
    if kind == "nvidia":
        if not glob.glob(os.path.join(dev, "nvidia[0-9]*")):
            return DevicePlan(False, "no NVIDIA GPU on this host (no /dev/nvidia0)")
        if "nvidia" not in engine_runtimes and not which("nvidia-container-runtime-hook"):
            return DevicePlan(False, "the engine cannot pass NVIDIA GPUs (install the NVIDIA container toolkit)")
        return DevicePlan(True, gpus=True)
    pci = {"amd": "0x1002", "intel": "0x8086"}[kind]
    nodes = _render_nodes(pci, os.path.join(root, "sys", "class", "drm"))
    if kind == "amd":
        kfd = os.path.join(dev, "kfd")
        if not os.path.exists(kfd) or not nodes:
            return DevicePlan(False, "no AMD GPU on this host (no /dev/kfd with an AMD render node)")
        paths = ["/dev/kfd", *nodes]
    else:
        if not nodes:
            return DevicePlan(False, "no Intel GPU on this host (no Intel /dev/dri/renderD* node)")
        paths = nodes
    gids = sorted({g for g in (_gid(os.path.join(root, p.lstrip("/"))) for p in paths) if g})
    return DevicePlan(True, devices=tuple(paths), group_add=tuple(gids))


# --------------------------------------------------------------------------
# Dockerfiles (intel, nvidia, amd)

def _q(value):
    """A Dockerfile-safe double-quoted string."""
    return json.dumps(str(value))


def render_dockerfile(defn, lock, *, source, revision, created):
    """The Dockerfile of a dockerfile-kind family. Its context holds one
    more file, requirements.lock.txt (hashed_requirements(lock))."""
    if defn.local:
        raise ValueError(f"{defn.name} is assembled locally, not from a Dockerfile")
    b = defn.build
    base = b["base"]
    user = defn.user
    venv = defn.python["venv"]
    lab = labels(defn, source=source, revision=revision, created=created,
                 lock_sha256=lock_digest(lock))
    out = [
        f"# Generated from {CONTAINERS_DIR}/{defn.name}.yaml by syclforge; do not edit.",
        f"# {defn.description}",
        f"FROM {base['image']}:{base['tag']}@{base['digest']}",
        'SHELL ["/bin/bash", "-euo", "pipefail", "-c"]',
        # BuildKit (v0.11+) clamps layer times and `created` to it.
        "ARG SOURCE_DATE_EPOCH",
        "USER root",
        "ENV DEBIAN_FRONTEND=noninteractive",
    ]
    out.append("LABEL " + " \\\n      ".join(f"{k}={_q(v)}" for k, v in sorted(lab.items())))
    pkgs = " ".join(shlex.quote(p) for p in b["packages"])
    out.append("RUN apt-get update \\\n && apt-get install -y --no-install-recommends "
               f"{pkgs} \\\n && rm -rf /var/lib/apt/lists/*")
    steps = []
    if b.get("download"):
        d = b["download"]
        steps.append(f"curl -fsSL --retry 3 -o {shlex.quote(d['to'])} {shlex.quote(d['url'])}")
        steps.append(f"echo {shlex.quote(d['sha256'] + '  ' + d['to'])} | sha256sum -c -")
    steps.extend(" ".join(s.split()) for s in b.get("install", []))
    if steps:
        out.append("RUN " + " \\\n && ".join(steps))
    out.append("COPY requirements.lock.txt /tmp/syclforge/requirements.lock.txt")
    out.append(f"RUN python3 -m venv {venv} \\\n && {venv}/bin/pip install --no-cache-dir "
               "--no-deps --require-hashes --only-binary=:all: "
               "-r /tmp/syclforge/requirements.lock.txt \\\n && rm -rf /tmp/syclforge")
    out.append(f"RUN groupadd -g {user['gid']} {user['name']} \\\n"
               f" && useradd -m -u {user['uid']} -g {user['gid']} -s /bin/bash {user['name']} \\\n"
               f" && install -d -o {user['uid']} -g {user['gid']} {WORKDIR}")
    env = defn.env()
    out.append("ENV " + " \\\n    ".join(f"{k}={_q(v) if k != 'PATH' else v}" for k, v in env.items()))
    out.append(f"USER {user['uid']}:{user['gid']}")
    out.append(f"WORKDIR {WORKDIR}")
    out.append('CMD ["/bin/bash"]')
    return "\n".join(out) + "\n"


def lock_digest(lock):
    return hashlib.sha256(json.dumps(lock, sort_keys=True).encode()).hexdigest()


def write_context(defn, lock, out_dir, **meta):
    """Write a dockerfile family's build context (Dockerfile and
    requirements.lock.txt) into out_dir; return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("Dockerfile", render_dockerfile(defn, lock, **meta)),
                       ("requirements.lock.txt", hashed_requirements(lock))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return str(out)
