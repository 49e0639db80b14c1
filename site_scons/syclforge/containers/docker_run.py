"""`scons docker=1`: run the numerics of each chosen target inside its
vendor's container image, through the Docker SDK, and merge the reports.

For each target: pick the image family serving its vendor
(toolchains/containers/*.yaml); SKIPPED with the reason where this host
lacks the vendor's devices; else build (or find) the image, run
`python -m syclforge.containers.inside` in it with the source mounted read-only at
/src and a volume at /work, copy /work/report back to
build/containers/<target>/ and merge the reports.

Also a command line (the CI workflow and the tests use it):

    python -m syclforge.containers.docker_run lock FAMILY... [--force]   # network
    python -m syclforge.containers.docker_run fetch FAMILY
    python -m syclforge.containers.docker_run build FAMILY [--layers DIR] [--no-load]
    python -m syclforge.containers.docker_run render FAMILY [--out DIR]
    python -m syclforge.containers.docker_run run TARGET[,TARGET...] [--strict]
    python -m syclforge.containers.docker_run merge DIR...
    python -m syclforge.containers.docker_run engine     # start dockerd if none answers

No SCons import; the Docker SDK is imported only when an engine is needed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from syclforge import containers
from syclforge.containers import imagebuild, oci
from syclforge.core import config, summary, toolchains
from syclforge.errors import SyclforgeError

SRC_MOUNT = "/src"
WORK_MOUNT = containers.WORKDIR
RUN_TIMEOUT = 3600


def log_line(msg):
    print(f"containers: {msg}", flush=True)


def _short(exc):
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else exc.__class__.__name__


# --------------------------------------------------------------------------
# The engine

CALL_TIMEOUT = 900     # s: an image load or a container run answers late


def connect(probe_timeout=CALL_TIMEOUT):
    """A docker.DockerClient that answered a ping within probe_timeout s,
    or SyclforgeError; its later calls wait up to CALL_TIMEOUT."""
    try:
        import docker
    except ImportError:
        raise SyclforgeError("the Docker SDK for Python (package 'docker') is missing: "
                             ".venv/bin/pip install -r requirements.txt") from None
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(version="auto", timeout=probe_timeout)
        client.ping()
        client.api.timeout = CALL_TIMEOUT
    except Exception as e:   # DockerException, requests' ConnectionError, socket errors
        raise SyclforgeError(
            f"no Docker engine answers at {host} ({_short(e)}); install one "
            "(apt-get install docker.io) and start it (dockerd), or set DOCKER_HOST") from None
    return client


# The pid files dockerd and its containerd leave when they are killed
# (a reboot, a session's processes ended) survive in /var/run where it is
# not a tmpfs. A later dockerd trusts a file whose pid is alive, even when
# the pid now belongs to another process, then waits for a containerd that
# is not there and exits ("timeout waiting for containerd to start").
PIDFILES = (("/var/run/docker.pid", "dockerd"),
            ("/var/run/docker/containerd/containerd.pid", "containerd"))


def stale_pidfiles(pidfiles=PIDFILES, proc="/proc"):
    """The pid files among `pidfiles` ((path, process name) pairs) whose
    pid is not a live process of that name (a zombie, killed and not yet
    reaped, is not live: dockerd would still wait for it)."""
    stale = []
    for path, name in pidfiles:
        try:
            pid = int(Path(path).read_text().strip())
        except ValueError:      # junk, or empty: no process to wait for
            stale.append(path)
            continue
        except OSError:         # absent, or not ours to read (not root): leave it
            continue
        try:
            comm = Path(proc, str(pid), "comm").read_text().strip()
            # /proc/PID/stat: "pid (comm) state ...", comm may hold spaces
            state = Path(proc, str(pid), "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            comm, state = None, None
        if comm != name or state in ("Z", "X"):
            stale.append(path)
    return stale


def _log_tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line[:300] for line in text[-lines:])


PROBE_TIMEOUT = 10


def start_engine(command=None, log_path="/tmp/dockerd.log", timeout=120, pidfiles=PIDFILES, log=log_line):
    """connect(), starting the engine first where none answers: `command`
    (dockerd unless DOCKER_HOST names another engine) after removing stale
    pid files; its output goes to log_path. SyclforgeError with the log's
    last lines when it exits or does not answer within `timeout` s (each
    probe waits PROBE_TIMEOUT s: an engine starting up may hold its socket
    open without answering yet)."""
    try:
        return connect(PROBE_TIMEOUT)
    except SyclforgeError as e:
        first = e
    if command is None:
        if os.environ.get("DOCKER_HOST"):
            raise first     # another host's engine: not ours to start
        if not shutil.which("dockerd"):
            raise SyclforgeError(f"{first}; dockerd is not installed (./install.sh --containers)") from None
        command = ["dockerd"]
    for path in stale_pidfiles(pidfiles):
        log(f"removing the stale pid file {path} (its process is gone)")
        try:
            os.unlink(path)
        except OSError as e:
            raise SyclforgeError(f"{first}; the stale pid file {path} would stop a new dockerd and cannot be "
                                 f"removed ({e.strerror}): start the engine as root") from None
    log(f"starting the Docker engine ({' '.join(command)}; its log: {log_path})")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.time() + timeout
    while True:
        try:
            return connect(PROBE_TIMEOUT)
        except SyclforgeError as e:
            if proc.poll() is not None:
                raise SyclforgeError(f"the Docker engine ({command[0]}) exited with status {proc.returncode} "
                                     f"before it answered; the end of {log_path}:\n{_log_tail(log_path)}") from None
            if time.time() > deadline:
                raise SyclforgeError(f"the Docker engine ({command[0]}) did not answer within {timeout} s "
                                     f"({e}); the end of {log_path}:\n{_log_tail(log_path)}") from None
            time.sleep(1)


def _engine_errors():
    import docker
    import requests
    return (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def load_image(client, built, log=log_line):
    """Load a BuiltImage into the engine unless it is there; tag it.
    Returns True when it was loaded now."""
    import docker
    try:
        img = client.images.get(built.image_id)
        loaded = False
    except docker.errors.ImageNotFound:
        log(f"loading {built.family} image into the engine ({built.size / 1e9:.2f} GB)")
        stream = oci.iter_docker_archive(built.config, built.layers, [],
                                         epoch=0)
        client.images.load(stream)
        img = client.images.get(built.image_id)
        loaded = True
    if img.id != built.image_id:
        raise SyclforgeError(f"the engine gave image {img.id}, expected {built.image_id}")
    for tag in built.tags:
        repo, t = tag.rsplit(":", 1)
        img.tag(repo, t)
    return loaded


# --------------------------------------------------------------------------
# Images

def _definitions(top):
    targets = config.load_targets(os.path.join(top, "targets.yaml"))
    families = toolchains.load_families(os.path.join(top, "toolchains"))
    return targets, containers.load_definitions(top, targets, families)


def build_local_image(top, defn, *, layers_dir=None, log=log_line, cache=None):
    lock = containers.load_lock(top, defn)
    source, revision, epoch = containers.source_info(top, lock=lock)
    t0 = time.time()
    built = imagebuild.build_local(top, defn, lock, cache=cache, layers_dir=layers_dir, log=log,
                                   meta={"source": source, "revision": revision, "epoch": epoch})
    built.seconds = time.time() - t0
    return built


def ensure_image(client, top, defn, log=log_line):
    """The image ID of defn's image in the engine, built (or loaded) as needed."""
    t0 = time.time()
    if defn.local:
        built = build_local_image(top, defn, log=log)
        loaded = load_image(client, built, log)
        how = "built" if any(built.built) else ("loaded" if loaded else "cached")
        log(f"image {defn.name}: {built.image_id} ({built.size / 1e9:.2f} GB, {how}, "
            f"{time.time() - t0:.0f} s)")
        return built.image_id
    return build_dockerfile_image(client, top, defn, log)


def render_context(top, defn, out_dir=None):
    lock = containers.load_lock(top, defn)
    source, revision, epoch = containers.source_info(top, lock=lock)
    out_dir = out_dir or os.path.join(top, "build", "containers", defn.name, "context")
    return containers.write_context(defn, lock, out_dir, source=source, revision=revision,
                                    created=oci.rfc3339(epoch)), epoch


def build_dockerfile_image(client, top, defn, log=log_line):
    """Build a dockerfile family with the engine (needs its registry)."""
    context, epoch = render_context(top, defn)
    tag = f"{defn.repository}:latest"
    log(f"building {defn.name} image from {context}/Dockerfile")
    image_id = None
    try:
        for chunk in client.api.build(path=context, tag=tag, rm=True, decode=True,
                                      buildargs={"SOURCE_DATE_EPOCH": str(epoch)}):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        log(f"  {line}")
            if "errorDetail" in chunk:
                raise SyclforgeError(f"building the {defn.name} image failed: "
                                     f"{chunk['errorDetail'].get('message')}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except SyclforgeError:
        raise
    except Exception as e:
        raise SyclforgeError(f"building the {defn.name} image failed: {_short(e)}") from None
    return image_id or client.images.get(tag).id


# --------------------------------------------------------------------------
# Running the numerics

def _prune_volumes(client, target, keep):
    for v in client.volumes.list(filters={"label": f"io.syclforge.target={target}"}):
        if v.name != keep:
            try:
                v.remove()
            except Exception:
                pass


def run_numerics(client, top, target, defn, image_id, plan, log=log_line, *, cache=None):
    """Run the target's build and numerics in the image; copy the report
    back to build/containers/<target>/. Returns (exit code, report dict).
    cache: None, or (inside.py arguments, environment, network mode) from
    remote_cache.container_settings for cache=http(s)://..."""
    import docker
    out = Path(top, "build", "containers", target.name)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    volume = f"syclforge-work-{target.name}-{image_id.split(':')[-1][:12]}"
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        client.volumes.create(volume, labels={"io.syclforge.target": target.name})
    _prune_volumes(client, target.name, volume)
    venv = defn.python["venv"]
    kwargs = dict(
        image=image_id,
        command=[f"{venv}/bin/python", "-m", "syclforge.containers.inside", "--target", target.name,
                 "--src", SRC_MOUNT, "--work", WORK_MOUNT],
        # SYCLFORGE_RUNNER: the report's rows say they ran in this image.
        environment={"PYTHONPATH": f"{SRC_MOUNT}/site_scons", "PYTHONDONTWRITEBYTECODE": "1",
                     "SYCLFORGE_RUNNER": f"container:{defn.name}"},
        volumes={os.path.abspath(top): {"bind": SRC_MOUNT, "mode": "ro"},
                 volume: {"bind": WORK_MOUNT, "mode": "rw"}},
        working_dir=WORK_MOUNT,
        network_mode="none",
        labels={"io.syclforge.target": target.name, "io.syclforge.family": defn.name},
    )
    if cache is not None:    # cache=http(s)://...: the build inside uses it (remote_cache.container_settings)
        args, env, network = cache
        kwargs["command"] = kwargs["command"] + list(args)
        kwargs["environment"].update(env)
        kwargs["network_mode"] = network
    if plan.devices:
        kwargs["devices"] = [f"{p}:{p}:rwm" for p in plan.devices]
        kwargs["group_add"] = [str(g) for g in plan.group_add]
    if plan.gpus:
        kwargs["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    log(f"{target.name}: scons target={target.name} then scons numerics "
        f"in {defn.repository} ({image_id[:19]}), source read-only, outputs in volume {volume}")
    container = client.containers.create(**kwargs)
    try:
        container.start()
        with open(out / "run.log", "w", encoding="utf-8") as f:
            for raw in container.logs(stream=True, follow=True):
                text = raw.decode("utf-8", "replace")
                f.write(text)
                for line in text.splitlines():
                    log(f"  [{target.name}] {line}")
        code = container.wait(timeout=RUN_TIMEOUT)["StatusCode"]
        try:
            stream, _ = container.get_archive(f"{WORK_MOUNT}/report")
            _extract_report(b"".join(stream), out)
        except docker.errors.NotFound:
            pass
    finally:
        container.remove(force=True)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    if report is not None:
        report["container"] = {"family": defn.name, "image": image_id, "repository": defn.repository}
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    return code, report


def _extract_report(data, out):
    """Files of the copied /work/report into out (flat, names checked)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            name = os.path.basename(m.name)
            if m.isfile() and re.fullmatch(r"[A-Za-z0-9._-]+", name):
                (out / name).write_bytes(tar.extractfile(m).read())


# --------------------------------------------------------------------------
# Merging

def merge(top, report_dirs, log=log_line):
    """Merge the containers' numerics reports into the host's
    (build/numerics, syclforge/numerics.py). Returns its path, or None when
    no container wrote a report."""
    from syclforge import numerics
    dirs = [Path(d) for d in report_dirs if Path(d, "report.json").is_file()]
    if not dirs:
        return None
    out = Path(top, "build", "numerics")
    numerics.merge(top, out, dirs)
    return str(out / "report.json")


# --------------------------------------------------------------------------
# scons docker=1 / run

def run_targets(top, chosen, *, strict=False, log=log_line, cache=None):
    """Returns (rows for the summary table, exit code)."""
    all_targets, defs = _definitions(top)
    client = connect()
    runtimes = tuple((client.info().get("Runtimes") or {}).keys())
    rows, code, report_dirs = [], 0, []
    for target in chosen:
        defn = containers.definition_for(defs, target)
        plan = containers.device_plan(defn.device_kind, engine_runtimes=runtimes)
        if not plan.ok:
            rows.append(summary.Row(target.name, "SKIPPED", defn.name, (), plan.reason))
            if strict:
                code = 1
            continue
        try:
            image_id = ensure_image(client, top, defn, log)
            rc, report = run_numerics(client, top, target, defn, image_id, plan, log, cache=cache)
        except SyclforgeError as e:
            rows.append(summary.Row(target.name, "FAILED", defn.name, (), str(e).splitlines()[0]))
            code = 1
            continue
        except _engine_errors() as e:     # the engine refused or went away mid-run
            rows.append(summary.Row(target.name, "FAILED", defn.name, (), f"engine: {_short(e)}"))
            code = 1
            continue
        report_dirs.append(Path(top, "build", "containers", target.name))
        detail = f"image {image_id[:19]}"
        if report:
            sm = report.get("summary", {})
            detail += (f", {sm.get('devices_ran', '?')} device image(s), {sm.get('comparisons', '?')} comparisons, "
                       f"{sm.get('violations', '?')} violation(s)")
        if rc == 0 and report is not None:
            rows.append(summary.Row(target.name, "RAN", defn.name, (), detail))
        else:
            rows.append(summary.Row(target.name, "FAILED", defn.name, (),
                                    f"{detail}; exit {rc}, see build/containers/{target.name}/run.log"))
            code = 1
    merged = merge(top, report_dirs, log)
    if merged:
        log(f"merged report: {os.path.relpath(merged, top)}")
    return rows, code


def scons_main(top, chosen, *, strict=False, cache=None):
    """The whole of `scons docker=1`; returns the exit status. cache: see
    run_numerics."""
    try:
        rows, code = run_targets(top, chosen, strict=strict, cache=cache)
    except SyclforgeError as e:
        print(f"syclforge: error: {e}", file=sys.stderr)
        return 2
    print("\n" + summary.format_summary(rows).replace("toolchain", "image    ", 1))
    return code


def check_locks(top, defns, log=log_line):
    """0 when the host's mirrors still serve every locked .deb of defns, else
    1, naming what is gone and the two ways out."""
    code = 0
    for defn in defns:
        lock = containers.load_lock(top, defn)
        name = Path(defn.lock_path).name
        if not lock.get("debs"):
            log(f"{name}: no Debian packages are locked (the image's base is pinned by digest)")
            continue
        gone = imagebuild.unserved_debs(lock, log=log)
        if not gone:
            log(f"{name}: the host's mirrors still serve all {len(lock['debs'])} locked .debs")
            continue
        code = 1
        log(f"{name}: the host's mirrors no longer serve {len(gone)} of {len(lock['debs'])} locked .debs: "
            + ", ".join(f"{e['name']} {e['version']}" for e in gone[:8]) + (" ..." if len(gone) > 8 else "")
            + f". Refresh the lock with `{containers.lock_command(defn)} --force`, or set "
            "SYCLFORGE_DEBIAN_ARCHIVES to archives that keep them (a dated snapshot)")
    return code


# --------------------------------------------------------------------------
# Command line

def main(argv=None):
    top = os.environ.get("SYCLFORGE_TOP") or os.getcwd()
    ap = argparse.ArgumentParser(prog="python -m syclforge.containers.docker_run",
                                 description="syclforge container images")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("lock", help="resolve and record every input of an image (network)")
    p.add_argument("family", nargs="+")
    p.add_argument("--force", action="store_true", help="resolve every part, not only the stale ones")
    p = sub.add_parser("check", help="exit 1 if the host's Debian mirrors no longer serve every locked "
                                      ".deb (network; downloads nothing)")
    p.add_argument("family", nargs="+")
    p = sub.add_parser("fetch", help="download the locked inputs the cache lacks")
    p.add_argument("family")
    p = sub.add_parser("build", help="assemble a local image (and load it into the engine)")
    p.add_argument("family")
    p.add_argument("--layers", help="layer cache directory (an empty one: a clean build)")
    p.add_argument("--no-load", action="store_true")
    p = sub.add_parser("render", help="write a Dockerfile family's build context")
    p.add_argument("family")
    p.add_argument("--out")
    p = sub.add_parser("run", help="what `scons docker=1 target=...` does")
    p.add_argument("targets")
    p.add_argument("--strict", action="store_true")
    p = sub.add_parser("merge", help="merge report directories into the host's report")
    p.add_argument("dirs", nargs="+")
    sub.add_parser("engine", help="start the Docker engine (dockerd) unless one answers; "
                                  "stale pid files of a killed one are removed first")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "engine":
            info = start_engine().version()
            print(f"Docker engine {info.get('Version', '?')} answers")
            return 0
        if a.cmd == "run":
            targets = config.load_targets(os.path.join(top, "targets.yaml"))
            return scons_main(top, config.select_targets(targets, a.targets), strict=a.strict)
        if a.cmd == "merge":
            path = merge(top, a.dirs)
            if not path:
                raise SyclforgeError("no report.json in " + ", ".join(a.dirs))
            print(path)
            return 0
        _, defs = _definitions(top)
        names = a.family if isinstance(a.family, list) else [a.family]
        unknown = [n for n in names if n not in defs]
        if unknown:
            raise SyclforgeError(f"unknown image famil{'ies' if len(unknown) > 1 else 'y'} "
                                 f"{', '.join(unknown)} (known: {', '.join(defs)})")
        if a.cmd == "lock":
            for n in names:
                imagebuild.lock(top, defs[n], log=log_line, force=a.force)
            return 0
        if a.cmd == "check":
            return check_locks(top, [defs[n] for n in names])
        defn = defs[names[0]]
        if a.cmd == "fetch":
            imagebuild.fetch(top, defn, containers.load_lock(top, defn), log=log_line)
            return 0
        if a.cmd == "render":
            ctx, _ = render_context(top, defn, a.out)
            print(ctx)
            return 0
        if a.cmd == "build":
            if not defn.local:
                client = connect()
                print(json.dumps({"image_id": build_dockerfile_image(client, top, defn)}))
                return 0
            built = build_local_image(top, defn, layers_dir=a.layers)
            loaded = None
            if not a.no_load:
                loaded = load_image(connect(), built)
            print(json.dumps({"image_id": built.image_id, "diff_ids": built.diff_ids,
                              "sizes": built.sizes, "size": built.size, "layers_built": built.built,
                              "build_seconds": round(built.seconds, 1), "loaded": loaded,
                              "tags": built.tags}))
            return 0
    except SyclforgeError as e:
        print(f"syclforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
