"""What runs inside a syclforge container (standard library only).

The source is mounted read-only at /src and a volume at /work. SCons wants
to write next to the SConstruct (.sconsign.dblite, build/), so the build
runs in /work/tree, a tree of symbolic links to /src's entries: sources are
read from the read-only mount, every output lands in the volume, and the
volume keeps them for an incremental build next time.

Then the numerics: `scons numerics` where the project has that alias;
until then kl-info (the kernel self-test on the device) stands in, its
lines parsed into report rows, so the plumbing is the same.

Writes /work/report/report.json (and logs) for the host to copy back.
Exit status: 0 when the build and the numerics passed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

# Not linked into the tree: the host's outputs and caches.
SKIP = {"build", ".venv", ".pytest_cache", "__pycache__", "dist"}


def link_tree(src, tree):
    """Make tree mirror src's top-level entries as symbolic links, keeping
    the outputs already in tree (build/, .sconsign.dblite)."""
    os.makedirs(tree, exist_ok=True)
    wanted = {e for e in os.listdir(src) if e not in SKIP and not e.startswith(".sconsign")}
    for e in os.listdir(tree):
        p = os.path.join(tree, e)
        if os.path.islink(p) and (e not in wanted or os.readlink(p) != os.path.join(src, e)):
            os.unlink(p)
    for e in sorted(wanted):
        p = os.path.join(tree, e)
        if not os.path.lexists(p):
            os.symlink(os.path.join(src, e), p)


_ROW = re.compile(r"^\s+(\S+)\s+(PASS|FAIL)\s+max rel err (\S+) \(tolerance (\S+)\)")
_CHOSEN = re.compile(r'^chosen:\s+device="([^"]*)" image=(\S+)')


def parse_kl_info(text, target):
    """Report rows from kl-info's kernel self-test lines."""
    device = image = None
    rows = []
    for line in text.splitlines():
        m = _CHOSEN.match(line)
        if m:
            device, image = m.group(1), m.group(2)
            continue
        m = _ROW.match(line)
        if m:
            rows.append({"target": target, "op": m.group(1), "device": device, "image": image,
                         "status": "pass" if m.group(2) == "PASS" else "fail",
                         "max_rel_err": float(m.group(3)), "tolerance": float(m.group(4))})
    return {"version": 1, "kind": "kl-info", "target": target, "device": device, "image": image,
            "passed": sum(r["status"] == "pass" for r in rows),
            "failed": sum(r["status"] == "fail" for r in rows), "rows": rows}


def run(cmd, log, cwd=None):
    print("+ " + " ".join(cmd), flush=True)
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        out = []
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
            out.append(line)
        sys.stdout.flush()
        return proc.wait(), "".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="syclforge.inside")
    ap.add_argument("--target", required=True)
    ap.add_argument("--mode", choices=("numerics", "kl-info"), required=True)
    ap.add_argument("--src", default="/src")
    ap.add_argument("--work", default="/work")
    a = ap.parse_args(argv)
    tree, report = os.path.join(a.work, "tree"), os.path.join(a.work, "report")
    shutil.rmtree(report, ignore_errors=True)
    os.makedirs(report)
    log = os.path.join(report, "build.log")
    link_tree(a.src, tree)
    scons = shutil.which("scons") or "scons"
    status = {"target": a.target, "mode": a.mode, "build": None, "numerics": None}

    def done(code):
        status["exit"] = code
        with open(os.path.join(report, "status.json"), "w", encoding="utf-8") as f:
            json.dump(status, f, indent=1)
        return code

    rc, _ = run([scons, "-C", tree, f"target={a.target}"], log)
    status["build"] = rc
    if rc:
        return done(rc)
    if a.mode == "numerics":
        rc, _ = run([scons, "-C", tree, "numerics", f"target={a.target}"], log)
        status["numerics"] = rc
        produced = os.path.join(tree, "build", "numerics", "report.json")
        if os.path.isfile(produced):
            shutil.copy(produced, os.path.join(report, "report.json"))
        elif not rc:
            rc = 1
            print(f"syclforge.inside: `scons numerics` wrote no {produced}", file=sys.stderr)
        return done(rc)
    kl_info = os.path.join(tree, "build", a.target, "bin", "kl-info")
    # From the top of the tree, as on the host (the program may name its
    # library by a path relative to it).
    rc, text = run([kl_info], os.path.join(report, "kl-info.txt"), cwd=tree)
    doc = parse_kl_info(text, a.target)
    doc["exit"] = rc
    with open(os.path.join(report, "report.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    status["numerics"] = rc
    if not rc and not doc["rows"]:
        rc = 1
    return done(rc)


if __name__ == "__main__":
    sys.exit(main())
