"""Release bundles: one reproducible, relocatable, verifiable archive per
device target (README.md, "Releases").

    <name>-<version>-<target>.tar.gz
      <name>-<version>-<target>/
        bin/        the programs (ELF, RPATH $ORIGIN/../lib) and bin/run,
                    which finds the runtime the manifest names
        lib/        the kernel library with its device images (RPATH $ORIGIN)
        include/    the public headers
        models/     the model files
        README      how to run it
        manifest.json, sbom.spdx.json (SPDX 2.3), SHA256SUMS

Reproducible: entries sorted, every time SOURCE_DATE_EPOCH (default: the
last commit's time), owner 0:0 with no names, modes 0644/0755, gzip without
time or file name; nothing of the build directory or the toolchain's prefix
may appear in any file (checked: make_bundle refuses to write one that
leaks). Relocatable: binaries find lib/ through $ORIGIN; the SYCL runtime
is not shipped (it is the toolchain's wheels, 1.4 GB) but named, with its
versions, in manifest.json "runtime", and found by bin/run.

make_bundle() is the whole job; the SCons glue (syclforge/scons/tools/
sf_bundle.py) only gathers its inputs. Imports no SCons.
"""
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from typing import Optional

from syclforge import __version__
from syclforge.release import carry, elf, sbom
from syclforge.errors import SyclforgeError

PROJECT = "syclforge"
MANIFEST, SBOM, SUMS, README = "manifest.json", "sbom.spdx.json", "SHA256SUMS", "README"
METADATA = (MANIFEST, SBOM, SUMS)
MANIFEST_SCHEMA = "syclforge-bundle/1"
PROGRAM_RPATH, LIBRARY_RPATH = "$ORIGIN/../lib", "$ORIGIN"


def bundle_name(target, version=__version__, name=PROJECT):
    return f"{name}-{version}-{target}"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Where the build came from

def _git(top, *args):
    try:
        p = subprocess.run(["git", "-C", top, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _is_git_root(top):
    root = _git(top, "rev-parse", "--show-toplevel")
    return bool(root) and os.path.realpath(root) == os.path.realpath(top)


def git_state(top):
    """{'revision': full sha or None, 'dirty': bool or None}. Only the
    repository whose root is top counts (not one that happens to hold it)."""
    if not _is_git_root(top):
        return {"revision": None, "dirty": None}
    rev = _git(top, "rev-parse", "HEAD")
    status = _git(top, "status", "--porcelain")
    return {"revision": rev, "dirty": None if status is None else bool(status)}


def source_date_epoch(top, environ):
    """SOURCE_DATE_EPOCH if set, else the last commit's committer time."""
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is not None and value != "":
        if not re.fullmatch(r"\d{1,12}", value.strip()):
            raise SyclforgeError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since 1970")
        return int(value.strip())
    if _is_git_root(top):
        when = _git(top, "log", "-1", "--format=%ct", "HEAD")
        if when and when.isdigit():
            return int(when)
    raise SyclforgeError(f"no SOURCE_DATE_EPOCH and {top} is not a git checkout with a commit; "
                         "set SOURCE_DATE_EPOCH=<seconds> to make a release")


# --------------------------------------------------------------------------
# What the runtime is: the wheels (or system libraries) that provide the
# libraries the bundle needs but does not hold

@dataclass
class Wheel:
    name: str
    version: str
    requires: list = field(default_factory=list)    # normalized names
    license: str = ""
    files: dict = field(default_factory=dict)       # basename -> sha256 hex (or "")


def _normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _b64_to_hex(text):
    import base64
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).hex()


def installed_wheels(site_packages):
    """{normalized name: Wheel} for every *.dist-info in site_packages."""
    out = {}
    if not site_packages or not os.path.isdir(site_packages):
        return out
    for entry in sorted(os.listdir(site_packages)):
        if not entry.endswith(".dist-info"):
            continue
        base = os.path.join(site_packages, entry)
        try:
            meta = open(os.path.join(base, "METADATA"), encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        head = meta.split("\n\n", 1)[0]
        fields = {}
        for line in head.splitlines():
            key, sep, val = line.partition(": ")
            if sep:
                fields.setdefault(key, []).append(val.strip())
        if "Name" not in fields:
            continue
        requires = []
        for req in fields.get("Requires-Dist", []):
            if ";" in req and "extra" in req.split(";", 1)[1]:
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if m:
                requires.append(_normalize(m.group(1)))
        files = {}
        try:
            for line in open(os.path.join(base, "RECORD"), encoding="utf-8", errors="replace"):
                parts = line.rstrip("\n").rsplit(",", 2)
                if len(parts) == 3 and ".so" in parts[0]:
                    digest = parts[1][7:] if parts[1].startswith("sha256=") else ""
                    files[os.path.basename(parts[0])] = _b64_to_hex(digest) if digest else ""
        except OSError:
            pass
        w = Wheel(fields["Name"][0], fields.get("Version", ["?"])[0], requires,
                  fields.get("License", [""])[0], files)
        out[_normalize(w.name)] = w
    return out


def site_packages_of(prefix):
    """The site-packages folder of a Python prefix, or None."""
    lib = os.path.join(prefix or "", "lib")
    if not prefix or not os.path.isdir(lib):
        return None
    for entry in sorted(os.listdir(lib)):
        sp = os.path.join(lib, entry, "site-packages")
        if entry.startswith("python3") and os.path.isdir(sp):
            return sp
    return None


def runtime_requirements(needed, shipped, wheels, target):
    """What a bundle needs at run time and does not hold.

    needed: the NEEDED libraries of every ELF file of the bundle; shipped:
    basenames in lib/; wheels: installed_wheels() of the toolchain's prefix.
    Returns the manifest's "runtime" object (without "locate")."""
    owners = {}
    for w in wheels.values():
        for base in w.files:
            owners.setdefault(base, w)
    direct, system, provided = [], [], {}
    for lib in sorted(needed):
        if lib in shipped:
            continue
        w = owners.get(lib)
        if w is None:
            system.append(lib)
            continue
        provided.setdefault(_normalize(w.name), []).append(lib)
        if w not in direct:
            direct.append(w)
    closure, todo = {}, [_normalize(w.name) for w in direct]
    while todo:
        key = todo.pop(0)
        if key in closure or key not in wheels:
            continue
        closure[key] = wheels[key]
        todo += wheels[key].requires
    pins = [f"{w.name}=={w.version}" for w in sorted(direct, key=lambda w: _normalize(w.name))]
    rows = []
    for key in sorted(closure):
        w = closure[key]
        row = {"name": w.name, "version": w.version, "direct": w in direct,
               "requires": sorted(r for r in w.requires if r in wheels), "license": w.license}
        if key in provided:
            row["provides"] = {lib: {"sha256": w.files.get(lib, "")} for lib in provided[key]}
        rows.append(row)
    return {
        "wheels": rows,
        "install": f"python3 -m pip install {' '.join(pins)}" if pins else None,
        "system_libraries": system,
        "drivers": ([] if target.get("device") == "cpu"
                    else [f"the {target.get('vendor')} GPU driver for the device"]),
    }


# --------------------------------------------------------------------------
# The run wrapper: the one place that says how the runtime is found

_RUN = r"""#!/bin/sh
# Run a program of this bundle with the runtime it needs (manifest.json,
# "runtime"):   bin/run PROGRAM [ARGS...]     e.g. bin/run kl-info
# The runtime's library folder is $SYCLFORGE_RUNTIME when set; otherwise the
# folder of @ANCHOR@ from the @WHEEL@ wheel installed for
# ${SYCLFORGE_PYTHON:-python3} (install it with: @INSTALL@).
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ $# -lt 1 ]; then
  echo "usage: bin/run PROGRAM [ARGS...]; programs: @PROGRAMS@" >&2
  exit 2
fi
prog=$1
shift
case " @PROGRAMS@ " in
  *" $prog "*) ;;
  *) echo "bin/run: no program '$prog' in this bundle (it has: @PROGRAMS@)" >&2; exit 2 ;;
esac
rt=${SYCLFORGE_RUNTIME:-}
if [ -z "$rt" ]; then
  py=${SYCLFORGE_PYTHON:-python3}
  rt=$("$py" -c '
import importlib.metadata as md, os, sys
try:
    d = md.distribution("@WHEEL@")
except md.PackageNotFoundError:
    sys.exit("@WHEEL@ is not installed for " + sys.executable)
if d.version != "@VERSION@":
    sys.exit("@WHEEL@ " + d.version + " is installed for " + sys.executable + "; this bundle needs @VERSION@")
for f in d.files or ():
    if f.name == "@ANCHOR@":
        print(os.path.dirname(os.path.realpath(d.locate_file(f))))
        break
else:
    sys.exit("@WHEEL@ holds no @ANCHOR@")
') || {
    echo "bin/run: cannot find the runtime: @INSTALL@ (or set SYCLFORGE_RUNTIME=<folder holding @ANCHOR@>)" >&2
    exit 127
  }
fi
if [ ! -e "$rt/@ANCHOR@" ]; then
  echo "bin/run: SYCLFORGE_RUNTIME=$rt holds no @ANCHOR@" >&2
  exit 127
fi
LD_LIBRARY_PATH=$rt${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
exec "$here/$prog" "$@"
"""

_RUN_SYSTEM = r"""#!/bin/sh
# Run a program of this bundle: bin/run PROGRAM [ARGS...]. Its runtime is
# the system's (manifest.json, "runtime"); $SYCLFORGE_RUNTIME, when set, is
# a library folder searched first.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
if [ $# -lt 1 ]; then
  echo "usage: bin/run PROGRAM [ARGS...]; programs: @PROGRAMS@" >&2
  exit 2
fi
prog=$1
shift
case " @PROGRAMS@ " in
  *" $prog "*) ;;
  *) echo "bin/run: no program '$prog' in this bundle (it has: @PROGRAMS@)" >&2; exit 2 ;;
esac
for f in @CARRIED@; do
  if [ ! -e "$here/../$f" ]; then
    echo "bin/run: this bundle lacks $f, part of the runtime it carries (manifest.json runtime.carried): extract the whole archive again, or check it with: syclforge verify BUNDLE" >&2
    exit 127
  fi
done
if [ -n "${SYCLFORGE_RUNTIME:-}" ]; then
  LD_LIBRARY_PATH=$SYCLFORGE_RUNTIME${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
fi
exec "$here/$prog" "$@"
"""


def run_wrapper(programs, runtime):
    """(text of bin/run, how the manifest says the runtime is found)."""
    anchor = next(((w, lib) for w in runtime["wheels"] if w.get("provides")
                   for lib in sorted(w["provides"])), None)
    progs = " ".join(sorted(programs))
    if anchor is None:
        carried = " ".join(c["path"] for c in runtime.get("carried", []))
        text = _RUN_SYSTEM.replace("@PROGRAMS@", progs).replace("@CARRIED@", carried)
        if not carried:
            return text, "bin/run PROGRAM: system libraries; SYCLFORGE_RUNTIME=<folder> is searched first"
        names = sorted({f"{c['component']} {c['version']}" for c in runtime["carried"]})
        return text, (f"bin/run PROGRAM: the toolchain's runtime is carried in lib/ ({', '.join(names)}; "
                      f"manifest.json runtime.carried) and found through the programs' RUNPATH "
                      f"$ORIGIN/../lib; bin/run checks those files are there and names any missing; "
                      f"other libraries are the system's")
    # libsycl* first: the wheel a user would name
    for w in runtime["wheels"]:
        for lib in sorted(w.get("provides", ())):
            if lib.startswith("libsycl"):
                anchor = (w, lib)
    w, lib = anchor
    text = (_RUN.replace("@PROGRAMS@", progs).replace("@WHEEL@", w["name"])
            .replace("@VERSION@", w["version"]).replace("@ANCHOR@", lib)
            .replace("@INSTALL@", runtime["install"]))
    how = (f"bin/run PROGRAM puts on LD_LIBRARY_PATH the folder of {lib}: $SYCLFORGE_RUNTIME if "
           f"set, else the one of the {w['name']}=={w['version']} wheel installed for "
           f"${{SYCLFORGE_PYTHON:-python3}}; or set LD_LIBRARY_PATH to that folder and run "
           f"bin/PROGRAM directly")
    return text, how


# --------------------------------------------------------------------------
# Deterministic archives

@dataclass
class Entry:
    path: str                 # inside the bundle's top folder, '/'-separated
    data: bytes
    mode: int = 0o644
    role: str = "data"
    elf: Optional[dict] = None


def _tarinfo(name, mtime, mode, size=0, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = kind, size, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar_gz(path, root, entries, mtime):
    """Write entries under root/ to path, deterministically: sorted, every
    folder listed, fixed times/owners/modes, gzip without time or name.
    Written to a temporary name and renamed."""
    dirs = {root}
    for e in entries:
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            dirs.add(root + "/" + "/".join(parts[:i]))
    items = [(d, None) for d in dirs] + [(root + "/" + e.path, e) for e in entries]
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, e in sorted(items, key=lambda item: item[0]):
                if e is None:
                    tar.addfile(_tarinfo(name, mtime, 0o755, kind=tarfile.DIRTYPE))
                else:
                    tar.addfile(_tarinfo(name, mtime, 0o755 if e.mode & 0o111 else 0o644,
                                         len(e.data)), io.BytesIO(e.data))
    tmp = f"{path}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            f.write(raw.getvalue())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def sha256sums(entries):
    return "".join(f"{sha256(e.data)}  {e.path}\n" for e in sorted(entries, key=lambda e: e.path))


def parse_sha256sums(text):
    """{path: sha256}; raises ValueError naming the bad line."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.fullmatch(r"([0-9a-f]{64})  (\S.*)", line)
        if not m:
            raise ValueError(f"line {n} is not '<sha256>  <path>': {line[:80]!r}")
        if m.group(2) in out:
            raise ValueError(f"line {n} lists {m.group(2)} twice")
        out[m.group(2)] = m.group(1)
    return out


# --------------------------------------------------------------------------
# Paths that must not leak into a bundle

def strip_build_paths(text, replacements):
    """Replace each absolute path (longest first) by its stand-in."""
    for old in sorted(replacements, key=len, reverse=True):
        text = text.replace(old, replacements[old])
    return text


def find_leaks(entries, forbidden):
    """[(path, leaked string)] for every entry holding a forbidden string."""
    needles = sorted({f for f in forbidden if f and len(f) > 1}, key=len, reverse=True)
    out = []
    for e in entries:
        for n in needles:
            if n.encode() in e.data:
                out.append((e.path, n))
                break
    return out


# --------------------------------------------------------------------------
# Model files: a Hugging Face model folder's files a program loads, not the
# checks and logs that training leaves beside them

MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "*.safetensors", "LICENSE*", "README*")


def model_files(folder):
    """Sorted paths of the model files in folder ([] if it holds no config.json)."""
    import fnmatch
    if not os.path.isfile(os.path.join(folder, "config.json")):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, n))
                  and any(fnmatch.fnmatchcase(n, pat) for pat in MODEL_FILES))


# --------------------------------------------------------------------------
# Device images

def image_format(data):
    if data[:4] == b"\x03\x02\x23\x07":
        ver = int.from_bytes(data[4:8], "little")
        return f"SPIR-V {(ver >> 16) & 0xff}.{(ver >> 8) & 0xff}"
    if elf.is_elf(data):
        return f"ELF {elf.machine_name(data)}"
    return "unknown"


# --------------------------------------------------------------------------
# The whole bundle

@dataclass
class Spec:
    """What the SCons glue hands make_bundle (paths are absolute)."""
    out: str                       # the .tar.gz to write
    target: dict                   # name, description, vendor, device
    toolchain: dict                # name, version, host_compiler {name, version}
    programs: list                 # ELF files -> bin/
    libraries: list                # shared libraries -> lib/
    headers: list                  # [(source path, path under include/)]
    models: list                   # [(model name, [file paths])]
    images: list                   # [{id, kind, arch?, file?}] in the loader's order
    flags: dict                    # flag lists, build paths already stripped
    source_date_epoch: int
    git: dict
    site_packages: Optional[str]   # where the runtime's wheels are installed
    forbidden: list                # strings no file may hold (build dir, prefix)
    version: str = __version__
    name: str = PROJECT
    variant: str = ""              # a toolchain other than the resolver's pick: in the name
    carried: list = field(default_factory=list)   # [{src, dest, component, version}]: release/carry.py


def _elf_entry(path, dest, role, rpath, rename_needed):
    data = open(path, "rb").read()
    e = elf.Elf(data, os.path.basename(path))
    if e.rpath is not None:
        e.set_rpath(rpath)
    for n in e.needed:
        if "/" in n and os.path.basename(n) in rename_needed:
            # A library linked by path without a SONAME is recorded by that
            # path (relative to the build's working directory): in the bundle
            # it is found by name, through the RPATH.
            e.set_needed(n, os.path.basename(n))
    bad = [n for n in e.needed if "/" in n]
    if bad:
        raise SyclforgeError(f"{path} needs {bad[0]} by path; a bundle cannot relocate that")
    info = {"needed": e.needed, "rpath": e.rpath[1] if e.rpath else None,
            "soname": e.soname, "needs_versions": elf.newest_versions(e.version_needs())}
    return Entry(dest, bytes(e.data), 0o755, role, info)


def _readme(spec, root, runtime_how, runtime, programs, models):
    model_hint = f" -m models/{models[0]}" if models else ""
    lines = [
        f"{root}: {spec.name} {spec.version} for device target {spec.target['name']} "
        f"({spec.target.get('description', '')}), built with {spec.toolchain['name']} "
        f"{spec.toolchain.get('version') or ''}.".rstrip(),
        "",
        "Runtime (not in this bundle; manifest.json \"runtime\"):",
        f"  {runtime['install'] or 'system libraries: ' + ', '.join(runtime['system_libraries'])}",
        f"  {runtime_how}",
        "",
        "Run:",
        "  bin/run kl-info" if "kl-info" in programs else f"  bin/run {programs[0]}",
    ]
    if "minillm" in programs:
        lines.append(f"  bin/run minillm{model_hint} -p 'Once upon a time' -n 32 --temp 0")
    lines += ["", "Check: sha256sum -c SHA256SUMS (from this folder), or",
              f"  syclforge verify {root}.tar.gz   (pip install syclforge)", ""]
    return "\n".join(lines)


def make_bundle(spec):
    """Write spec.out; returns the manifest (a dict)."""
    root = bundle_name(spec.target["name"] + (f"-{spec.variant}" if spec.variant else ""), spec.version, spec.name)
    shipped = {os.path.basename(p) for p in spec.libraries} | \
        {os.path.basename(c["dest"]) for c in spec.carried}
    entries = [_elf_entry(p, "lib/" + os.path.basename(p), "library", LIBRARY_RPATH, shipped)
               for p in sorted(spec.libraries)]
    # The toolchain's runtime, carried (AdaptiveCpp): found through the
    # binaries' $ORIGIN/../lib, and by each other through $ORIGIN.
    entries += [_elf_entry(c["src"], c["dest"], "runtime", carry.rpath_for(c["dest"]), shipped)
                for c in sorted(spec.carried, key=lambda c: c["dest"])]
    entries += [_elf_entry(p, "bin/" + os.path.basename(p), "program", PROGRAM_RPATH, shipped)
                for p in sorted(spec.programs)]
    programs = sorted(os.path.basename(p) for p in spec.programs)
    needed = {lib for e in entries for lib in e.elf["needed"]}
    for src, rel in sorted(spec.headers, key=lambda h: h[1]):
        entries.append(Entry("include/" + rel, open(src, "rb").read(), 0o644, "header"))
    model_names = []
    for model, files in sorted(spec.models):
        model_names.append(model)
        for f in sorted(files):
            entries.append(Entry(f"models/{model}/{os.path.basename(f)}", open(f, "rb").read(),
                                 0o644, "model"))

    wheels = installed_wheels(spec.site_packages)
    runtime = runtime_requirements(needed, shipped, wheels, spec.target)
    runtime["carried"] = [{"path": c["dest"], "component": c["component"], "version": c["version"]}
                          for c in sorted(spec.carried, key=lambda c: c["dest"])]
    run_text, how = run_wrapper(programs, runtime)
    runtime["locate"] = how
    runtime["env"] = {"SYCLFORGE_RUNTIME": "optional: the folder holding the runtime's libraries"}
    entries.append(Entry("bin/run", run_text.encode(), 0o755, "wrapper"))
    entries.append(Entry(README, _readme(spec, root, how, runtime, programs, model_names).encode(),
                         0o644, "doc"))

    # Device images: where each sits inside the library or program that embeds it.
    libs = [e for e in entries if e.role in ("library", "program")]
    images = []
    for img in spec.images:
        row = {"id": img["id"], "kind": img["kind"]}
        if img.get("arch"):
            row["arch"] = img["arch"]
        if img.get("file"):
            data = open(img["file"], "rb").read()
            row.update(format=image_format(data), size=len(data), sha256=sha256(data))
            holder = next(((e, e.data.find(data)) for e in libs if e.data.find(data) >= 0), None)
            if holder is None:
                raise SyclforgeError(f"device image {img['id']} ({img['file']}) is not embedded in "
                                     f"{', '.join(e.path for e in libs) or 'any library or program'}")
            row["embedded_in"], row["offset"] = holder[0].path, holder[1]
        else:
            row["embedded_in"] = None   # the compiler's own fat-binary format
        images.append(row)

    # The carried runtime keeps its own installation paths (AdaptiveCpp's
    # prefix is compiled into it); what the build made must not hold them.
    leaks = find_leaks([e for e in entries if e.role != "runtime"], spec.forbidden)
    if leaks:
        raise SyclforgeError("build paths would leak into the bundle: " +
                             "; ".join(f"{p} holds {s}" for p, s in leaks))

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "name": spec.name,
        "version": spec.version,
        "bundle": root,
        "target": spec.target,
        **({"variant": spec.variant} if spec.variant else {}),
        "git": spec.git,
        "source_date_epoch": spec.source_date_epoch,
        "toolchain": spec.toolchain,
        "flags": spec.flags,
        "images": images,
        "runtime": runtime,
        "files": [dict({"path": e.path, "role": e.role, "size": len(e.data), "sha256": sha256(e.data),
                        "mode": "0755" if e.mode & 0o111 else "0644"},
                       **({"elf": e.elf} if e.elf else {}))
                  for e in sorted(entries, key=lambda e: e.path)],
    }
    manifest_entry = Entry(MANIFEST, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())
    entries.append(manifest_entry)
    doc = sbom.spdx_document(root=root, name=spec.name, version=spec.version, target=spec.target,
                             git=spec.git, toolchain=spec.toolchain, created=spec.source_date_epoch,
                             files=[(e.path, e.data, e.role) for e in entries], runtime=runtime)
    entries.append(Entry(SBOM, (json.dumps(doc, indent=2) + "\n").encode()))
    leaks = find_leaks(entries[-2:], spec.forbidden)
    if leaks:
        raise SyclforgeError("build paths would leak into the bundle: " +
                             "; ".join(f"{p} holds {s}" for p, s in leaks))
    entries.append(Entry(SUMS, sha256sums(entries).encode()))
    write_tar_gz(spec.out, root, entries, spec.source_date_epoch)
    return manifest
