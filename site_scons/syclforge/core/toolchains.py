"""Toolchain families: load their descriptions, detect what is installed.

A family is described once, as data, in toolchains/<name>.yaml (checked
against toolchains/family.schema.json): how to find it, how to read its
version, which device images it can produce for each vendor, and, for
single-source compilers, the flags for each image. This module is the one
engine that reads those files; no family is named in this code, so adding a
family means adding a file (see toolchains/README.md).

Detection runs tools (their --version) but never raises for a broken one: a
family that is missing, fails, hangs or prints something unexpected comes
back unavailable, with the reason.

Imports no SCons.
"""
import glob
import json
import os
import re
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Optional

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from packaging.version import InvalidVersion, Version

from syclforge.core import yamlpos
from syclforge.errors import ConfigError

VENDORS = ("x86", "intel", "nvidia", "amd")
SCHEMA_NAME = "family.schema.json"
DEFAULT_TIMEOUT = 10.0          # seconds for one `tool --version`
_INFO_FIELDS = {"prefix", "exe", "bin_dir", "lib_dir"}


# --------------------------------------------------------------------------
# Families (the data)

@dataclass
class Family:
    """One toolchains/<name>.yaml. data is the file's content as written."""
    name: str
    description: str
    role: str            # 'host' | 'sycl'
    kind: str            # 'host' | 'runtime-compiler' | 'single-source'
    preference: int      # lower is tried first by the resolver
    path: str
    data: dict = field(repr=False)

    def vendor_caps(self, vendor):
        """The family's capabilities block for vendor, or None."""
        return (self.data.get("capabilities") or {}).get(vendor)

    def image_spec(self, vendor, image_id):
        """(kind, spec) of one image the family knows for vendor, or None."""
        caps = self.vendor_caps(vendor) or {}
        for kind in ("native", "portable"):
            spec = (caps.get(kind) or {}).get(image_id)
            if spec is not None:
                return kind, spec
        return None


@lru_cache(maxsize=None)
def _validator(schema_file):
    with open(schema_file, encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


def load_families(toolchains_dir):
    """Load every toolchains_dir/*.yaml, validated against
    toolchains_dir/family.schema.json; return them sorted by preference
    (then name). Errors are ConfigError with file, line and key."""
    toolchains_dir = Path(toolchains_dir)
    schema_file = toolchains_dir / SCHEMA_NAME
    if not schema_file.is_file():
        raise ConfigError(schema_file, None, None,
                          "toolchain family schema not found (it ships in toolchains/)")
    validator = _validator(str(schema_file.resolve()))
    files = sorted(toolchains_dir.glob("*.yaml"))
    if not files:
        raise ConfigError(toolchains_dir, None, None,
                          "no toolchain family files (*.yaml) found")
    families = [_load_family(path, validator) for path in files]
    return sorted(families, key=lambda f: (f.preference, f.name))


def _load_family(path, validator):
    try:
        data, lines = yamlpos.load(path)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, None, None, f"cannot read file: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, 1, None,
                          "expected a mapping with name, description, role, kind, "
                          "preference, find and version")
    error = best_match(validator.iter_errors(data))
    if error is not None:
        where, at, message = _schema_error(error)
        raise ConfigError(path, yamlpos.line_of(lines, at),
                          yamlpos.dotted(where) or None, message)

    def fail(where, message):
        raise ConfigError(path, yamlpos.line_of(lines, where),
                          yamlpos.dotted(where) or None, message)

    if data["name"] != path.stem:
        fail(("name",), f"must equal the file name '{path.stem}' "
                        f"(toolchain=NAME pins and error messages use it)")
    _check_regexes(data, fail)
    for key, template in (data.get("info") or {}).items():
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        except ValueError as e:
            fail(("info", key), f"bad template: {e}")
        unknown = names - _INFO_FIELDS
        if unknown:
            fail(("info", key), f"unknown field(s) {sorted(unknown)}; "
                                f"templates may use {sorted(_INFO_FIELDS)}")
    if data["kind"] == "single-source":
        for vendor, caps in data["capabilities"].items():
            for kind in ("native", "portable"):
                for image_id, spec in (caps.get(kind) or {}).items():
                    if "target" not in spec and "implied" not in spec:
                        fail(("capabilities", vendor, kind, image_id),
                             "a single-source image needs 'target' (what the device "
                             "flag names) or 'implied' (how it comes with the others)")
    return Family(name=data["name"], description=data["description"], role=data["role"],
                  kind=data["kind"], preference=data["preference"], path=str(path),
                  data=data)


def _check_regexes(data, fail):
    version = data["version"]
    checks = [(("version", "regex"), version["regex"])]
    if "require" in version:
        checks.append((("version", "require", "regex"), version["require"]["regex"]))
    if "backends" in (data.get("probes") or {}):
        checks.append((("probes", "backends", "regex"), data["probes"]["backends"]["regex"]))
    for where, pattern in checks:
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            fail(where, f"invalid regular expression: {e}")
        if where[-2] in ("version", "backends") and compiled.groups < 1:
            fail(where, "needs a capture group: group 1 is the value read")
    if "below" in version:
        try:
            Version(version["below"]["version"])
        except InvalidVersion:
            fail(("version", "below", "version"), "not a version number")


def _schema_error(error):
    """(key path, path whose line to report, message) for a jsonschema error."""
    where = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return (where + (extra[0],), where + (extra[0],),
                f"unknown key(s) {', '.join(map(repr, extra))}; allowed: "
                f"{', '.join(sorted(allowed))}")
    if error.validator == "required":
        m = re.match(r"'(.+?)' is a required property", error.message)
        if m:
            return (where + (m.group(1),), where,
                    f"missing required key '{m.group(1)}'")
    if error.validator == "enum":
        return (where, where, f"{error.instance!r} is not one of "
                              f"{', '.join(map(str, error.validator_value))}")
    if error.validator == "oneOf":
        return (where, where, f"{error.instance!r} matches none of the allowed forms "
                              "(see toolchains/family.schema.json)")
    return where, where, error.message


# --------------------------------------------------------------------------
# Running tools

class RunResult(NamedTuple):
    returncode: int
    output: str          # stdout and stderr together


def run_tool(argv, *, env=None, timeout=DEFAULT_TIMEOUT):
    """Run argv, return RunResult. Raises subprocess.TimeoutExpired (the
    child is killed) or OSError (cannot execute); detect() turns both into
    reasons."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=timeout)
    return RunResult(p.returncode, p.stdout.decode("utf-8", errors="replace"))


# --------------------------------------------------------------------------
# What detection found

class ImagePlan(NamedTuple):
    """What one toolchain would put in one target's fat binary."""
    images: tuple        # image ids in the binary, in the target's order
    dropped: tuple       # ids it leaves out of the binary (see plan())
    missing: tuple       # ids it cannot make at all (the target is refused)
    note: Optional[str]  # why dropped (the family's 'limitation' / 'not_made')

    @property
    def possible(self):
        return not self.missing

    @property
    def complete(self):
        return not self.missing and not self.dropped


@dataclass
class Detected:
    name: str
    family: Family
    available: bool
    version: Optional[str] = None
    path: Optional[str] = None      # the executable, or the prefix of a prefix family
    reason: Optional[str] = None    # why unavailable
    capabilities: dict = field(default_factory=dict)   # vendor -> [image ids]
    info: dict = field(default_factory=dict)           # family-specific facts for builders
    unsupported: dict = field(default_factory=dict)    # vendor -> why it cannot build for it

    def can_produce(self, vendor, image_id):
        return self.available and image_id in self.capabilities.get(vendor, ())

    def plan(self, target):
        """ImagePlan for target: which of its images this toolchain builds
        into one binary, which it leaves out (with why), which it cannot make.

        Left out (dropped), not missing: native images beyond the family's
        max_native_per_binary, and a portable image the family names in
        not_made: the binary still serves every native image, it only has no
        fallback for other devices. A native image it cannot make is missing."""
        ids = [image.id for image in target.images]
        if not self.available:
            return ImagePlan((), (), tuple(ids), None)
        caps = self.family.vendor_caps(target.vendor) or {}
        not_made = caps.get("not_made") or {}
        unmade = [im.id for im in target.images if not self.can_produce(target.vendor, im.id)]
        portable_out = tuple(im.id for im in target.images
                             if im.kind == "portable" and im.id in unmade and im.id in not_made)
        missing = tuple(i for i in unmade if i not in portable_out)
        limit = caps.get("max_native_per_binary")
        natives = [im.id for im in target.images
                   if im.kind == "native" and im.id not in missing]
        kept = set(natives if limit is None else natives[:limit])
        images = tuple(im.id for im in target.images
                       if im.id not in unmade and (im.kind != "native" or im.id in kept))
        dropped = tuple(i for i in natives if i not in kept) + portable_out
        notes = []
        if any(i not in kept for i in natives):
            notes.append(_one_line(caps.get("limitation")))
        notes += [_one_line(not_made[i]) for i in portable_out]
        note = "; ".join(n for n in notes if n) or None
        return ImagePlan(images, dropped, missing, note)

    def why_not(self, target):
        """One line saying why this toolchain cannot build every image of
        target, or None when it can (perhaps not all in one binary)."""
        if not self.available:
            return _one_line(self.reason) or "not available"
        missing = self.plan(target).missing
        if not missing:
            return None
        what = f"cannot produce {', '.join(missing)}"
        if target.vendor in self.unsupported:
            return f"{what}: {self.unsupported[target.vendor]}"
        known = self.capabilities.get(target.vendor, [])
        return f"{what}: its {target.vendor} images are {', '.join(known)}"

    def to_json(self, targets):
        out = {
            "name": self.name,
            "available": self.available,
            "version": self.version,
            "path": self.path,
            "targets": [t.name for t in targets
                        if self.family.role == "sycl" and self.plan(t).complete],
            "capabilities": {v: list(ids) for v, ids in self.capabilities.items()},
            "description": self.family.description,
        }
        if "backends" in self.info:
            out["backends"] = list(self.info["backends"])
        if not self.available:
            out["reason"] = self.reason
        return out


def _one_line(text):
    return " ".join(text.split()) if text else text


# --------------------------------------------------------------------------
# Detection (the engine)

@dataclass
class _Ctx:
    env: dict
    python_prefix: str
    which: object
    run: object
    timeout: float

    def path_dirs(self):
        return [d for d in self.env.get("PATH", "").split(os.pathsep) if d]

    def cache_dir(self):
        """The user's cache folder ($XDG_CACHE_HOME, else $HOME/.cache, as
        install.sh has it), where ./install.sh builds toolchains; None when
        neither is set."""
        xdg = self.env.get("XDG_CACHE_HOME")
        if xdg:
            return xdg
        home = self.env.get("HOME")
        return os.path.join(home, ".cache") if home else None

    def which_on_path(self, name):
        path = self.env.get("PATH", "")
        return self.which(name, path=path) if path else None


def detect(families, *, environ=None, python_prefix=None, which=shutil.which,
           run=run_tool, timeout=DEFAULT_TIMEOUT):
    """Detect every family; return one Detected per family, in the order
    given. environ (default os.environ) supplies PATH and the families'
    environment variables and is the environment the tools run in;
    python_prefix (default sys.prefix) is where prefix families look unless
    their env variable is set. which(name, path=PATH) and
    run(argv, env=, timeout=) -> RunResult are injectable for tests."""
    ctx = _Ctx(env=dict(os.environ if environ is None else environ),
               python_prefix=str(python_prefix or sys.prefix),
               which=which, run=run, timeout=timeout)
    found = {}
    # Host compilers first: families with needs_host use them.
    hosts = [f for f in families if f.role == "host"]
    for fam in sorted(hosts, key=lambda f: (f.preference, f.name)):
        found[fam.name] = _detect_family(fam, ctx, [])
    host_dets = [found[f.name] for f in sorted(hosts, key=lambda f: (f.preference, f.name))]
    for fam in families:
        if fam.name not in found:
            found[fam.name] = _detect_family(fam, ctx, host_dets)
    return [found[f.name] for f in families]


def _unavailable(fam, reason, path=None, version=None):
    return Detected(name=fam.name, family=fam, available=False, version=version,
                    path=path, reason=_one_line(reason))


def _detect_family(fam, ctx, hosts):
    find = fam.data["find"]
    if "prefix" in find:
        outcome = _find_prefix(fam, ctx)
    else:
        outcome = _find_executable(fam, ctx)
    if isinstance(outcome, Detected):
        return outcome
    facts, version = outcome
    path = facts.get("exe") or facts.get("prefix")

    info = {}
    if fam.data.get("needs_host"):
        host = next((h for h in hosts if h.available), None)
        if host is None:
            why = "; ".join(f"{h.name}: {h.reason}" for h in hosts) or "no host families loaded"
            return _unavailable(fam, f"needs a host C++ compiler (gcc or clang) and none is "
                                     f"available ({why})", path=path, version=version)
        info.update(host_cxx=host.path, host_family=host.name, host_version=host.version)

    capabilities, unsupported, tools, image_env = {}, {}, {}, {}
    for vendor in VENDORS:
        caps = fam.vendor_caps(vendor)
        if caps is None:
            unsupported[vendor] = _one_line((fam.data.get("unsupported") or {}).get(
                vendor, f"{fam.name} does not build for {vendor}"))
            continue
        missing = []
        for req in caps.get("requires") or ():
            problem = _check_requirement(req, facts, ctx, tools)
            if problem:
                missing.append(problem)
        if missing:
            unsupported[vendor] = "needs " + "; ".join(missing)
            continue
        ids = []
        for kind in ("native", "portable"):
            for image_id, spec in (caps.get(kind) or {}).items():
                ids.append(image_id)
                if spec.get("env"):
                    image_env[image_id] = dict(spec["env"])
        capabilities[vendor] = ids

    fields = {k: facts.get(k, "") for k in _INFO_FIELDS}
    for key, template in (fam.data.get("info") or {}).items():
        info[key] = template.format(**fields)
    if "files" in facts:
        info["files"] = facts["files"]
    if "backends" in facts:
        info["backends"] = facts["backends"]
    if tools:
        info["tools"] = tools
    if image_env:
        info["image_env"] = image_env
    return Detected(name=fam.name, family=fam, available=True, version=version, path=path,
                    capabilities=capabilities, info=info, unsupported=unsupported)


def _check_requirement(req, facts, ctx, tools):
    """None if req is met, else what is missing (for the reason)."""
    why = req["why"]
    if "lib_file" in req:
        lib_dir = facts.get("lib_dir", "")
        if os.path.isfile(os.path.join(lib_dir, req["lib_file"])):
            return None
        return f"{why}: no {req['lib_file']} in {lib_dir}"
    if "bin_file" in req:
        bin_dir = facts.get("bin_dir", "")
        if os.path.isfile(os.path.join(bin_dir, req["bin_file"])):
            return None
        return f"{why}: no {req['bin_file']} in {bin_dir}"
    if "tool" in req:
        name = req["tool"]
        local = os.path.join(facts.get("bin_dir", ""), name)
        hit = local if _is_executable(local) else ctx.which_on_path(name)
        if hit:
            tools[name] = hit
            return None
        return f"{why}: {name} not found in {facts.get('bin_dir')} or on PATH"
    if "backend" in req:
        backends = facts.get("backends", [])
        if req["backend"] in backends:
            return None
        return (f"{why}: not among its runtime backends "
                f"({', '.join(backends) or 'none listed'})")
    raise AssertionError(f"unknown requirement {req}")   # the schema allows no other


def _is_executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _version_key(path):
    """clang++-19 -> (19,): sorts versioned names, highest first."""
    m = re.search(r"(\d+(?:\.\d+)*)$", os.path.basename(path))
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _candidates(search, ctx):
    """Executables the search entries find, in entry order, and a phrase
    saying where was looked (for 'not installed')."""
    found, looked = [], []
    for entry in search:
        if "path" in entry:
            looked.append(f"no {entry['path']} on PATH")
            hit = ctx.which_on_path(entry["path"])
            if hit:
                found.append(hit)
        elif "path_glob" in entry:
            looked.append(f"no {entry['path_glob']} on PATH")
            hits = []
            for d in ctx.path_dirs():
                hits += [p for p in glob.glob(os.path.join(d, entry["path_glob"]))
                         if _is_executable(p)]
            found += sorted(hits, key=_version_key, reverse=True)
        elif "cache_glob" in entry:
            cache = ctx.cache_dir()
            if not cache:
                looked.append(f"no {entry['cache_glob']} in the cache folder "
                              "($XDG_CACHE_HOME and $HOME unset)")
                continue
            looked.append(f"no {os.path.join(cache, entry['cache_glob'])}")
            hits = [p for p in glob.glob(os.path.join(cache, entry["cache_glob"]))
                    if _is_executable(p)]
            # Newest installation first: the mtime of the folder the pattern's
            # first wildcard matched (install.sh touches acpp-<key>/ when it
            # moves a build into place; the files keep the archive's times).
            parts = entry["cache_glob"].split("/")
            depth = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), len(parts) - 1)
            top = lambda p: os.path.join(cache, *os.path.relpath(p, cache).split(os.sep)[:depth + 1])
            found += sorted(hits, key=lambda p: (-_mtime(top(p)), p))
        else:
            var, rel = entry["env"], os.path.join(entry["subdir"], entry["name"])
            base = ctx.env.get(var)
            if not base:
                looked.append(f"${var} not set")
                continue
            p = os.path.join(base, rel)
            looked.append(f"no {p}")
            if _is_executable(p):
                found.append(p)
    unique, seen = [], set()
    for p in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, ", ".join(dict.fromkeys(looked))


def _first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no output"


def _find_executable(fam, ctx):
    """(facts, version) for the first candidate that passes, else an
    unavailable Detected saying why each was refused."""
    find, ver = fam.data["find"], fam.data["version"]
    candidates, looked = _candidates(find["search"], ctx)
    if not candidates:
        hint = f"; {find['not_found']}" if find.get("not_found") else ""
        return _unavailable(fam, f"not installed: {looked}{hint}")
    refusals = []
    for exe in candidates:
        outcome = _probe(fam, exe, ver.get("args", []), ctx)
        if isinstance(outcome, str):
            refusals.append(outcome)
            continue
        version, text = outcome
        bin_dir = os.path.dirname(exe)
        facts = {"exe": exe, "bin_dir": bin_dir,
                 "lib_dir": os.path.normpath(os.path.join(bin_dir, fam.data.get("lib_dir", "../lib")))}
        probe = (fam.data.get("probes") or {}).get("backends")
        if probe:
            facts["backends"] = list(dict.fromkeys(re.findall(probe["regex"], text)))
        return facts, version
    return _unavailable(fam, "; ".join(refusals), path=candidates[0])


def _probe(fam, exe, args, ctx):
    """(version, output) of `exe args`, or why the candidate is refused."""
    shown = " ".join([exe, *args])
    try:
        result = ctx.run([exe, *args], env=ctx.env, timeout=ctx.timeout)
    except subprocess.TimeoutExpired:
        return f"'{shown}' timed out after {ctx.timeout:g} s"
    except (OSError, subprocess.SubprocessError) as e:
        return f"'{shown}' could not run: {getattr(e, 'strerror', None) or e}"
    if result.returncode != 0:
        return f"'{shown}' failed (exit {result.returncode}): {_first_line(result.output)}"
    return _read_version(fam, result.output, f"'{shown}' output", exe)


def _read_version(fam, text, source, what):
    ver = fam.data["version"]
    m = re.search(ver["regex"], text)
    if not m:
        return f"unrecognised {source}: {_first_line(text)!r}"
    version = m.group(1)
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"unrecognised version {version!r} in {source}"
    require = ver.get("require")
    if require and not re.search(require["regex"], text):
        return f"{what} prints {_first_line(text)!r}: {require['reason']}"
    below = ver.get("below")
    if below and parsed >= Version(below["version"]):
        return f"version {version} of {what} refused: {below['reason']}"
    return version, text


def _find_prefix(fam, ctx):
    find, ver = fam.data["find"], fam.data["version"]
    var = find["prefix"].get("env")
    if var and ctx.env.get(var):
        prefix, how = os.path.abspath(ctx.env[var]), f"${var}"
    else:
        prefix, how = os.path.abspath(ctx.python_prefix), "the Python prefix"
    files, missing = {}, []
    for entry in find["files"]:
        alternatives = [entry] if isinstance(entry, str) else list(entry)
        hit = next((os.path.join(prefix, a) for a in alternatives
                    if os.path.isfile(os.path.join(prefix, a))), None)
        if hit:
            files[alternatives[0]] = hit
        else:
            missing.append(" or ".join(alternatives))
    if missing:
        hint = f"; {find['not_found']}" if find.get("not_found") else ""
        return _unavailable(fam, f"not installed: {prefix} ({how}) lacks "
                                 f"{', '.join(missing)}{hint}", path=prefix)
    pattern = ver.get("file_glob")
    matches = sorted(glob.glob(os.path.join(prefix, pattern))) if pattern else []
    if not matches:
        return _unavailable(fam, f"cannot read its version: no {pattern} under {prefix}",
                            path=prefix)
    outcomes = []
    for m in matches:
        try:
            with open(m, encoding="utf-8", errors="replace") as f:
                outcomes.append(_read_version(fam, f.read(), m, prefix))
        except OSError as e:
            outcomes.append(f"cannot read {m}: {e}")
    good = [o for o in outcomes if not isinstance(o, str)]
    if not good:
        return _unavailable(fam, "; ".join(outcomes), path=prefix)
    version = max((o[0] for o in good), key=Version)
    return {"prefix": prefix, "files": files}, version


# --------------------------------------------------------------------------
# Reporting

def format_table(detected, targets):
    """Human table: name, role, available, version, path, and the targets
    each toolchain serves (or why it is unavailable)."""
    rows = [("TOOLCHAIN", "ROLE", "AVAILABLE", "VERSION", "PATH", "TARGETS / REASON")]
    for d in detected:
        if not d.available:
            last = d.reason or "unavailable"
        elif d.family.role == "host":
            last = "host compiler"
        else:
            parts = []
            for t in targets:
                plan = d.plan(t)
                if plan.complete:
                    parts.append(t.name)
                elif plan.possible:
                    parts.append(f"{t.name} (only {', '.join(plan.images)})")
            last = ", ".join(parts) or "none of the given targets"
            if "backends" in d.info:
                last += f" (backends: {', '.join(d.info['backends']) or 'none'})"
        rows.append((d.name, d.family.role, "yes" if d.available else "no",
                     d.version or "-", d.path or "-", last))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5]
                     for r in rows)
