"""What a release bundle carries of its toolchain's runtime.

A family that is no wheel (AdaptiveCpp) says in its toolchains/*.yaml which
of its installation's files a program needs at run time, and which of the
libraries those (and the bundle's binaries) need a bare machine may lack:

    runtime:
      carry: [lib/libacpp-rt.so]
      carry_for: {x86: [lib/hipSYCL/librt-backend-omp.so]}
      carry_needed: ['libboost_fiber.so*', 'libgomp.so*']

plan() turns that into files for the bundle's lib/: the installation's own
(their path under the installation's lib/ kept, so the plugins stay in
lib/hipSYCL/ where libacpp-rt.so looks for them), and the needed libraries
found where this machine's loader finds them (ldd), each with the component
and version the SBOM lists. Imports no SCons.
"""
import fnmatch
import glob
import os
import re
import subprocess

from syclforge.errors import SyclforgeError

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_MISSING = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


def parse_ldd(text):
    """({soname: resolved path}, [sonames not found]) from `ldd FILE` output."""
    found, missing = {}, []
    for line in text.splitlines():
        m = _LDD_LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
            continue
        m = _LDD_MISSING.match(line)
        if m:
            missing.append(m.group(1))
    return found, missing


def _ldd(path):
    p = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60)
    return p.stdout


def _debian_package(path):
    """(package, version) of the Debian package that installed path, or (None, None)."""
    try:
        p = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            p = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            return None, None
        pkg = p.stdout.split(":", 1)[0].split(",")[0].strip()
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                           timeout=30)
        return pkg, (v.stdout.strip() or None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def plan(*, family, version, root, spec, binaries, vendor=None, ldd=_ldd, package_of=_debian_package):
    """[{src, dest, component, version}] the bundle carries in lib/.

    family/version: the toolchain (the installation's files are its
    component); root: its installation folder (above bin/); spec: the
    family's 'runtime' object; binaries: the ELF files whose needs count
    (the bundle's programs and libraries, and modules embedded in them);
    vendor: the target's, for the family's carry_for (its backend plugins)."""
    out, seen = [], set()
    lib_root = os.path.join(root, "lib")
    for pattern in [*spec.get("carry", []), *(spec.get("carry_for") or {}).get(vendor, [])]:
        hits = sorted(glob.glob(os.path.join(root, pattern)))
        if not hits:
            raise SyclforgeError(f"{family}: its runtime file {pattern} is not in {root} "
                                 f"(toolchains/{family}.yaml, runtime.carry): reinstall it")
        for path in hits:
            rel = os.path.relpath(path, lib_root)
            if rel.startswith(".."):
                rel = os.path.basename(path)
            seen.add(os.path.basename(path))
            out.append({"src": os.path.realpath(path), "dest": "lib/" + rel, "component": family,
                        "version": version})
    wanted = spec.get("carry_needed", [])
    if not wanted:
        return out
    needs, missing = {}, []
    for f in [e["src"] for e in out] + list(binaries):
        found, lost = parse_ldd(ldd(f))
        for name, path in found.items():
            needs.setdefault(name, path)
        missing += [(f, n) for n in lost if n not in seen]
    for name in sorted(needs):
        if name in seen or not any(fnmatch.fnmatch(name, p) for p in wanted):
            continue
        path = needs[name]
        pkg, ver = package_of(path)
        seen.add(name)
        out.append({"src": os.path.realpath(path), "dest": "lib/" + name,
                    "component": pkg or name, "version": ver or _soname_version(name)})
    lost = [(f, n) for f, n in missing if n not in seen and any(fnmatch.fnmatch(n, p) for p in wanted)]
    if lost:
        raise SyclforgeError("libraries the bundle must carry are not found on this machine: " +
                             "; ".join(f"{os.path.basename(f)} needs {n}" for f, n in lost))
    return out


def _soname_version(name):
    m = re.search(r"\.so\.(\d[\d.]*)$", name)
    return m.group(1) if m else None


def rpath_for(dest):
    """The RUNPATH a carried library gets: its neighbours in lib/, and lib/
    itself from a subfolder (lib/hipSYCL/ plugins need libacpp-rt.so)."""
    depth = dest.count("/") - 1
    return "$ORIGIN" if depth <= 0 else "$ORIGIN/" + "/".join([".."] * depth)
