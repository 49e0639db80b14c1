"""SPDX 2.3 JSON software bill of materials for a release bundle.

One package for the bundle (every file it holds, with SHA1 and SHA256, and
its verification code) and one per wheel of the runtime it needs but does
not hold (name, version, purl), linked by DEPENDS_ON. Everything derives
from the bundle's content and SOURCE_DATE_EPOCH: the same inputs give the
same bytes.

Imports no SCons.
"""
import hashlib
import re
import time

SPDX_VERSION = "SPDX-2.3"
NOASSERTION = "NOASSERTION"
EXCLUDED = ("./SHA256SUMS", "./sbom.spdx.json")   # in the archive, not in the document


def _id(prefix, text, used):
    base = f"SPDXRef-{prefix}-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")
    ident, n = base, 2
    while ident in used:
        ident, n = f"{base}-{n}", n + 1
    used.add(ident)
    return ident


def _file_type(path, data, role):
    if data[:4] == b"\x7fELF":
        return ["BINARY"]
    if role in ("header", "wrapper"):
        return ["SOURCE"]
    if path.endswith((".json", ".txt")) or role == "doc":
        return ["TEXT"]
    return ["OTHER"]


def verification_code(sha1s):
    """SPDX 2.3 package verification code: SHA1 of the sorted file SHA1s."""
    return hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest()


def iso_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def spdx_document(*, root, name, version, target, git, toolchain, created, files, runtime):
    """files: [(path in bundle, bytes, role)] (every file but SHA256SUMS and
    the document itself); runtime: the manifest's "runtime" object."""
    used = {"SPDXRef-DOCUMENT"}
    file_rows, sha1s = [], []
    for path, data, role in sorted(files, key=lambda f: f[0]):
        s1 = hashlib.sha1(data).hexdigest()
        sha1s.append(s1)
        file_rows.append({
            "fileName": "./" + path,
            "SPDXID": _id("File", path, used),
            "fileTypes": _file_type(path, data, role),
            "checksums": [{"algorithm": "SHA1", "checksumValue": s1},
                          {"algorithm": "SHA256", "checksumValue": hashlib.sha256(data).hexdigest()}],
            "licenseConcluded": NOASSERTION,
            "licenseInfoInFiles": [NOASSERTION],
            "copyrightText": NOASSERTION,
        })
    code = verification_code(sha1s)
    bundle_id = _id("Package", name, used)
    rev = git.get("revision") or "unknown"
    bundle = {
        "SPDXID": bundle_id,
        "name": name,
        "versionInfo": version,
        "packageFileName": root + ".tar.gz",
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": code,
                                    "packageVerificationCodeExcludedFiles": list(EXCLUDED)},
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "licenseInfoFromFiles": [NOASSERTION],
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "APPLICATION",
        "sourceInfo": (f"built from git revision {rev}{' with local changes' if git.get('dirty') else ''} "
                       f"for device target {target['name']} with {toolchain['name']} "
                       f"{toolchain.get('version') or ''}").rstrip(),
        "hasFiles": [f["SPDXID"] for f in file_rows],
    }
    packages, relationships = [bundle], [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": bundle_id}]
    wheel_ids = {}
    for w in runtime.get("wheels", []):
        wheel_ids[re.sub(r"[-_.]+", "-", w["name"]).lower()] = _id("Package-pypi", w["name"], used)
    for w in runtime.get("wheels", []):
        key = re.sub(r"[-_.]+", "-", w["name"]).lower()
        pkg = {
            "SPDXID": wheel_ids[key],
            "name": w["name"],
            "versionInfo": w["version"],
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:pypi/{key}@{w['version']}"}],
            "comment": ("runtime dependency, not in the bundle"
                        + (f"; provides {', '.join(sorted(w['provides']))}" if w.get("provides") else "")
                        + (f"; license (wheel metadata): {w['license']}" if w.get("license") else "")),
        }
        packages.append(pkg)
        if w.get("direct"):
            relationships.append({"spdxElementId": bundle_id, "relationshipType": "DEPENDS_ON",
                                  "relatedSpdxElement": pkg["SPDXID"]})
        for req in w.get("requires", []):
            if req in wheel_ids:
                relationships.append({"spdxElementId": pkg["SPDXID"], "relationshipType": "DEPENDS_ON",
                                      "relatedSpdxElement": wheel_ids[req]})
    # The toolchain's runtime carried in lib/ (AdaptiveCpp): one package per
    # (component, version), CONTAINED_BY the bundle, with its files.
    by_component = {}
    for c in runtime.get("carried", []):
        by_component.setdefault((c["component"], c.get("version")), []).append(c["path"])
    for (component, ver), paths in sorted(by_component.items(), key=str):
        pkg = {
            "SPDXID": _id("Package-carried", component, used),
            "name": component,
            "versionInfo": ver or NOASSERTION,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": False,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
            "primaryPackagePurpose": "LIBRARY",
            "comment": "runtime carried in the bundle: " + ", ".join(sorted(paths)),
        }
        packages.append(pkg)
        relationships.append({"spdxElementId": bundle_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": pkg["SPDXID"]})
    namespace_hash = hashlib.sha256(code.encode() + root.encode()).hexdigest()[:32]
    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": root,
        "documentNamespace": f"https://syclforge.invalid/spdx/{root}-{namespace_hash}",
        "creationInfo": {"created": iso_time(created), "creators": [f"Tool: {name}-{version}"]},
        "packages": packages,
        "files": file_rows,
        "relationships": relationships,
    }
