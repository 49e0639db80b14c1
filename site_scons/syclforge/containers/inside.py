"""What runs inside a syclforge container (standard library only).

The source is mounted read-only at /src and a volume at /work. SCons wants
to write next to the SConstruct (.sconsign.dblite, build/), so the build
runs in /work/tree, a tree of symbolic links to /src's entries: sources are
read from the read-only mount, every output lands in the volume, and the
volume keeps them for an incremental build next time.

Then `scons numerics target=<target>` (site_scons/syclforge/numerics.py),
whose build/numerics folder (report.json and the raw outputs that let the
host compare devices pairwise) is copied to /work/report, with the logs,
for the host to copy back and merge.
Exit status: 0 when the build and the numerics passed.
"""
import argparse
import json
import os
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


def run(cmd, log):
    """Runs cmd, its output to stdout and to the log file; its exit status."""
    print("+ " + " ".join(cmd), flush=True)
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in proc.stdout:
            sys.stdout.write(line)
            f.write(line)
        sys.stdout.flush()
        return proc.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="syclforge.inside")
    ap.add_argument("--target", required=True)
    ap.add_argument("--src", default="/src")
    ap.add_argument("--work", default="/work")
    ap.add_argument("--scons-arg", action="append", default=[],
                    help="a VARIABLE=VALUE for both scons runs (docker=1 cache=http://...)")
    a = ap.parse_args(argv)
    tree, report = os.path.join(a.work, "tree"), os.path.join(a.work, "report")
    shutil.rmtree(report, ignore_errors=True)
    os.makedirs(report)
    log = os.path.join(report, "build.log")
    link_tree(a.src, tree)
    scons = shutil.which("scons") or "scons"
    status = {"target": a.target, "build": None, "numerics": None}

    def done(code):
        status["exit"] = code
        with open(os.path.join(report, "status.json"), "w", encoding="utf-8") as f:
            json.dump(status, f, indent=1)
        return code

    rc = run([scons, "-C", tree, f"target={a.target}", *a.scons_arg], log)
    status["build"] = rc
    if rc:
        return done(rc)
    rc = run([scons, "-C", tree, "numerics", f"target={a.target}", *a.scons_arg], log)
    status["numerics"] = rc
    produced = os.path.join(tree, "build", "numerics")
    if os.path.isfile(os.path.join(produced, "report.json")):
        for name in sorted(os.listdir(produced)):     # flat: report, table, outputs
            if os.path.isfile(os.path.join(produced, name)):
                shutil.copy(os.path.join(produced, name), os.path.join(report, name))
    elif not rc:
        rc = 1
        print(f"syclforge.inside: `scons numerics` wrote no {produced}/report.json", file=sys.stderr)
    return done(rc)


if __name__ == "__main__":
    sys.exit(main())
