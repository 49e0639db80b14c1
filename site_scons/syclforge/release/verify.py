"""Check a release bundle (a .tar.gz or an extracted folder) and refuse it,
naming the culprit, unless everything agrees.

    syclforge verify BUNDLE [BUNDLE ...]     (or python -m syclforge.release.verify)
    scons verify bundle=BUNDLE

Exit status: 0 every bundle is sound; 1 one was refused; 2 one could not be
read at all (no such file, not a gzip tar).

1. Entries, before any content is read (nothing is ever extracted): one top
   folder; no absolute path, no '..', no link of either kind (one leading
   out of the bundle is named so), no device or other special file, no
   setuid/setgid bits, no name twice.
2. Content against SHA256SUMS: a changed, missing or extra file.
3. manifest.json: its file list, sizes and sums, its name for the top
   folder, every device image at its offset in the library that embeds it.
4. sbom.spdx.json: SPDX 2.3, its files and their SHA1/SHA256, the package
   verification code, relationships, the runtime wheels the manifest names.

Imports no SCons.
"""
import hashlib
import json
import os
import posixpath
import stat
import sys
import tarfile

from syclforge.release import sbom
from syclforge.release.bundle import MANIFEST, MANIFEST_SCHEMA, METADATA, SBOM, SUMS, parse_sha256sums, sha256

OK, REFUSED, UNREADABLE = 0, 1, 2


class Unreadable(Exception):
    pass


# --------------------------------------------------------------------------
# 1. entries

def _path_problem(name):
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "path traversal ('..' in the path)"
    if "" in parts[:-1] or "." in parts:
        return "odd path ('.' or '//' in it)"
    return None


def _link_problem(name, target, root, hard):
    kind = "hard link" if hard else "symlink"
    if hard:
        resolved = posixpath.normpath(target)
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../") or \
            not (resolved == root or resolved.startswith(root + "/")):
        return f"{kind} -> {target} leads out of the bundle"
    return f"{kind} -> {target}: a bundle holds no links"


def check_members(members):
    """members: [(name, kind, linkname, mode)] with kind one of 'file',
    'dir', 'symlink', 'hardlink', 'special'. Returns (root, problems)."""
    problems, seen, root = [], set(), None
    for name, kind, linkname, mode in members:
        name = name.rstrip("/") if kind == "dir" else name
        why = _path_problem(name)
        if why:
            problems.append((name, why))
            continue
        top = name.split("/")[0]
        if root is None:
            root = top
        elif top != root:
            problems.append((name, f"outside the bundle's one top folder {root}/"))
            continue
        if name in seen:
            problems.append((name, "listed twice"))
        seen.add(name)
        if kind in ("symlink", "hardlink"):
            problems.append((name, _link_problem(name, linkname, root, kind == "hardlink")))
        elif kind == "special":
            problems.append((name, "device or other special file"))
        elif mode & 0o7000:
            problems.append((name, f"mode {mode:04o} has setuid/setgid/sticky bits"))
    if root is None and not problems:
        problems.append(("(archive)", "empty"))
    return root, problems


def _tar_kind(m):
    if m.isreg():
        return "file"
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    return "special"


def read_archive(path):
    """(root, problems, files {path under root: bytes}); files is empty when
    the entries were refused (contents are then never read)."""
    try:
        tar = tarfile.open(path, mode="r:gz")
    except FileNotFoundError:
        raise Unreadable(f"{path}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Unreadable(f"{path}: not a gzip-compressed tar archive ({e})") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise Unreadable(f"{path}: damaged archive ({e})") from None
        root, problems = check_members([(m.name, _tar_kind(m), m.linkname, m.mode) for m in members])
        if problems:
            return root, problems, {}
        files = {}
        for m in members:
            if m.isreg():
                files[m.name[len(root) + 1:]] = tar.extractfile(m).read()
    return root, [], files


def read_folder(path):
    """Like read_archive, for an extracted bundle."""
    if not os.path.isdir(path):
        raise Unreadable(f"{path}: no such folder")
    path = os.path.abspath(path)
    root = os.path.basename(path.rstrip("/"))
    members = [(root, "dir", "", 0o755)]
    for here, dirs, names in os.walk(path):
        for n in sorted(dirs + names):
            full = os.path.join(here, n)
            rel = root + "/" + os.path.relpath(full, path).replace(os.sep, "/")
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                members.append((rel, "symlink", os.readlink(full), 0))
            elif stat.S_ISDIR(st.st_mode):
                members.append((rel, "dir", "", stat.S_IMODE(st.st_mode)))
            elif stat.S_ISREG(st.st_mode):
                members.append((rel, "file", "", stat.S_IMODE(st.st_mode)))
            else:
                members.append((rel, "special", "", 0))
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(here, d))]
    root, problems = check_members(members)
    if problems:
        return root, problems, {}
    files = {}
    for rel, kind, _, _ in members:
        if kind == "file":
            with open(os.path.join(path, rel[len(root) + 1:]), "rb") as f:
                files[rel[len(root) + 1:]] = f.read()
    return root, [], files


# --------------------------------------------------------------------------
# 2-4. content

def _short(h):
    return h[:12] + "…"


def check_contents(root, files):
    """[(culprit, what is wrong)] for the files of a bundle whose top folder
    is root."""
    problems = []
    if SUMS not in files:
        return [(SUMS, "missing: a bundle lists its files' sha256 there")]
    try:
        sums = parse_sha256sums(files[SUMS].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return [(SUMS, f"unreadable: {e}")]
    for p in sorted(sums):
        if p not in files:
            problems.append((p, "missing file (listed in SHA256SUMS)"))
        elif sha256(files[p]) != sums[p]:
            problems.append((p, f"changed file: sha256 {_short(sha256(files[p]))}, "
                                f"SHA256SUMS says {_short(sums[p])}"))
    for p in sorted(set(files) - set(sums) - {SUMS}):
        problems.append((p, "extra file (not in SHA256SUMS)"))
    if problems:
        return problems
    problems += _check_manifest(root, files)
    problems += _check_sbom(files)
    return problems


def _load_json(files, name):
    if name not in files:
        return None, [(name, "missing")]
    try:
        return json.loads(files[name]), []
    except ValueError as e:
        return None, [(name, f"not JSON: {e}")]


def _check_manifest(root, files):
    m, problems = _load_json(files, MANIFEST)
    if problems:
        return problems
    out = []
    if not isinstance(m, dict) or m.get("schema") != MANIFEST_SCHEMA:
        return [(MANIFEST, f"schema is not {MANIFEST_SCHEMA}")]
    for key in ("name", "version", "target", "toolchain", "images", "runtime", "files",
                "source_date_epoch", "git", "flags"):
        if key not in m:
            out.append((MANIFEST, f"has no \"{key}\""))
    if out:
        return out
    # a toolchain other than the resolver's pick builds a variant: -<toolchain>
    variant = m.get("variant") or ""
    if variant and variant != (m.get("toolchain") or {}).get("name"):
        out.append((MANIFEST, f"names the variant {variant} but the toolchain {m['toolchain'].get('name')}"))
    want = f"{m['name']}-{m['version']}-{m['target'].get('name')}" + (f"-{variant}" if variant else "")
    if m.get("bundle") != want or root != want:
        out.append((MANIFEST, f"names the bundle {m.get('bundle')} ({want} by its fields) "
                              f"but the top folder is {root}"))
    listed = {}
    for row in m["files"]:
        listed[row.get("path")] = row
    content = set(files) - set(METADATA)
    for p in sorted(content - set(listed)):
        out.append((p, "extra file (not in manifest.json)"))
    for p in sorted(set(listed) - content):
        out.append((p, "missing file (listed in manifest.json)"))
    for p in sorted(content & set(listed)):
        row = listed[p]
        if row.get("sha256") != sha256(files[p]) or row.get("size") != len(files[p]):
            out.append((p, "changed file: manifest.json has another sha256 or size"))
    for img in m["images"]:
        holder = img.get("embedded_in")
        if holder is None:
            continue
        data = files.get(holder)
        if data is None:
            out.append((MANIFEST, f"image {img.get('id')} is embedded in {holder}, which is not in the bundle"))
            continue
        off, size = img.get("offset", -1), img.get("size", -1)
        if not (isinstance(off, int) and isinstance(size, int) and 0 <= off and off + size <= len(data)) \
                or sha256(data[off:off + size]) != img.get("sha256"):
            out.append((holder, f"device image {img.get('id')} is not at offset {off} "
                                f"(sha256 {_short(str(img.get('sha256')))})"))
    return out


def _check_sbom(files):
    doc, problems = _load_json(files, SBOM)
    if problems:
        return problems
    out = []
    if not isinstance(doc, dict) or doc.get("spdxVersion") != sbom.SPDX_VERSION:
        return [(SBOM, f"spdxVersion is not {sbom.SPDX_VERSION}")]
    for key in ("dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo", "packages"):
        if key not in doc:
            out.append((SBOM, f"has no \"{key}\""))
    if out:
        return out
    rows = {f.get("fileName", "")[2:]: f for f in doc.get("files", [])}
    covered = set(files) - {SUMS, SBOM}
    for p in sorted(covered - set(rows)):
        out.append((p, "extra file (not in the SBOM)"))
    for p in sorted(set(rows) - covered):
        out.append((p, "missing file (listed in the SBOM)"))
    sha1s = []
    for p in sorted(covered & set(rows)):
        sums = {c.get("algorithm"): c.get("checksumValue") for c in rows[p].get("checksums", [])}
        s1 = hashlib.sha1(files[p]).hexdigest()
        sha1s.append(s1)
        if sums.get("SHA1") != s1 or sums.get("SHA256") != sha256(files[p]):
            out.append((p, "changed file: the SBOM has other checksums"))
    ids = {doc["SPDXID"]} | {f.get("SPDXID") for f in doc.get("files", [])} | \
        {p.get("SPDXID") for p in doc["packages"]}
    for r in doc.get("relationships", []):
        for side in ("spdxElementId", "relatedSpdxElement"):
            if r.get(side) not in ids:
                out.append((SBOM, f"relationship {r.get('relationshipType')} names unknown {r.get(side)}"))
    described = [r["relatedSpdxElement"] for r in doc.get("relationships", [])
                 if r.get("spdxElementId") == "SPDXRef-DOCUMENT" and r.get("relationshipType") == "DESCRIBES"]
    bundle_pkg = next((p for p in doc["packages"] if p.get("SPDXID") in described), None)
    if bundle_pkg is None:
        out.append((SBOM, "describes no package"))
    elif not out:
        code = (bundle_pkg.get("packageVerificationCode") or {}).get("packageVerificationCodeValue")
        if code != sbom.verification_code(sha1s):
            out.append((SBOM, "package verification code does not match the files"))
    m, _ = _load_json(files, MANIFEST)
    if isinstance(m, dict) and isinstance(m.get("runtime"), dict):
        want = {(w.get("name"), w.get("version")) for w in m["runtime"].get("wheels", [])}
        want |= {(c.get("component"), c.get("version") or sbom.NOASSERTION)
                 for c in m["runtime"].get("carried", [])}
        have = {(p.get("name"), p.get("versionInfo")) for p in doc["packages"] if p is not bundle_pkg}
        for name, ver in sorted(want - have, key=str):
            out.append((SBOM, f"lacks the runtime package {name} {ver} that manifest.json names"))
        for name, ver in sorted(have - want, key=str):
            out.append((SBOM, f"names a package {name} {ver} that manifest.json does not"))
    return out


# --------------------------------------------------------------------------

class Result:
    def __init__(self, path, root, problems, files):
        self.path, self.root, self.problems, self.files = path, root, problems, files

    @property
    def ok(self):
        return not self.problems

    def manifest(self):
        return json.loads(self.files[MANIFEST]) if self.ok else None

    def report(self):
        if self.ok:
            m = self.manifest()
            return (f"verify: OK {self.path}: {m['name']} {m['version']} for {m['target']['name']}, "
                    f"{len(self.files)} files; SHA256SUMS, manifest.json and sbom.spdx.json agree")
        lines = [f"verify: REFUSED {self.path}:"]
        for culprit, why in self.problems:
            lines.append(f"  {culprit}: {why}")
        return "\n".join(lines)


def verify(path):
    """Result for a .tar.gz or an extracted folder; raises Unreadable."""
    root, problems, files = (read_folder if os.path.isdir(path) else read_archive)(path)
    if problems:
        return Result(path, root, problems, files)
    return Result(path, root, check_contents(root, files), files)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1] if argv else "usage: syclforge verify BUNDLE [BUNDLE ...]",
              file=sys.stdout if argv else sys.stderr)
        return OK if argv else UNREADABLE
    status = OK
    for path in argv:
        try:
            result = verify(path)
        except Unreadable as e:
            print(f"verify: error: {e}", file=sys.stderr)
            status = max(status, UNREADABLE)
            continue
        print(result.report(), file=sys.stdout if result.ok else sys.stderr)
        if not result.ok:
            status = max(status, REFUSED)
    return status


if __name__ == "__main__":
    sys.exit(main())
