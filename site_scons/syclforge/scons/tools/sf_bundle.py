"""SCons glue for release bundles: env.SyclforgeBundle() gathers what one
target's build made and hands it to syclforge.release.bundle.make_bundle
(the logic, unit-tested there). Used by Project.release (`scons release`).
"""
import json
import os

from SCons.Script import Action, Dir, File, Value
from SCons.Subst import SUBST_SIG

from syclforge.release import bundle, carry
from syclforge.scons import paths


def _model_dirs(models_dir):
    """[(name, [files])] for each model folder (config.json) of models_dir."""
    if not os.path.isdir(models_dir):
        return []
    found = [(name, bundle.model_files(os.path.join(models_dir, name))) for name in sorted(os.listdir(models_dir))]
    return [(name, files) for name, files in found if files]


def _headers(include_dir):
    out = []
    for here, dirs, names in os.walk(include_dir):
        dirs.sort()
        for n in sorted(names):
            full = os.path.join(here, n)
            out.append((full, os.path.relpath(full, include_dir).replace(os.sep, "/")))
    return out


def _embedded_images(nodes):
    """[(id, kind, image node or None)] from the step that wrote a binary's
    image table (the node built with SF_IMAGE_TABLE), or None."""
    stack, seen = list(nodes), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.has_builder():
            entries = node.get_build_env().get("SF_IMAGE_TABLE")
            if entries is not None:
                files = list(node.sources)
                return [(i, k, files.pop(0) if embedded else None) for i, k, embedded in entries]
            stack.extend(node.sources)
    return None


def _bundle_action(target, source, env):
    spec = dict(env["SF_BUNDLE_SPEC"])
    det = env["SF_DET"]
    image_env = env.get("SF_IMAGE_ENV") or {}
    found = _embedded_images([File(p) for p in spec.pop("binary_nodes")])
    images = []
    if found is not None and any(node is not None for _, _, node in found):
        for img_id, kind, node in found:
            arch = ",".join(str(v) for v in (image_env.get(img_id) or {}).values()) or None
            images.append({"id": img_id, "kind": kind, "arch": arch, "file": node.abspath})
    else:
        kinds = {i.id: i.kind for i in env["SF_TARGET"].images}
        images = [{"id": i, "kind": kinds.get(i, "?")} for i in env["SF_IMAGES"]]
    spec["images"] = images
    spec["site_packages"] = bundle.site_packages_of(det.info.get("prefix"))
    runtime = det.family.data.get("runtime")
    if runtime:   # the toolchain's runtime, carried in lib/ (release/carry.py)
        modules = [i["file"] for i in images if i.get("file")]
        spec["carried"] = carry.plan(family=det.name, version=det.version,
                                     root=os.path.dirname(os.path.dirname(det.path)), spec=runtime,
                                     vendor=env["SF_TARGET"].vendor,
                                     binaries=spec["libraries"] + spec["programs"] + modules)
    bundle.make_bundle(bundle.Spec(out=target[0].abspath, **spec))
    return 0


def SyclforgeBundle(env, libraries, programs, *, headers=None, models=None, name, version, git,
                    source_date_epoch):
    """dist/<name>-<version>-<target>.tar.gz for this env's target."""
    det, target = env["SF_DET"], env["SF_TARGET"]
    top = Dir("#").abspath
    prefix = det.info.get("prefix")
    stand_ins = {top: "."}
    if prefix:
        stand_ins[os.path.abspath(prefix)] = det.name
        stand_ins[os.path.realpath(prefix)] = det.name
    elif det.family.kind == "single-source":   # the driver's installation (above bin/)
        root = os.path.dirname(os.path.dirname(os.path.abspath(det.path)))
        stand_ins[root] = det.name
        stand_ins[os.path.realpath(root)] = det.name
    strip = lambda text: bundle.strip_build_paths(text, stand_ins)
    libs = env.Flatten(libraries)
    progs = env.Flatten(programs)
    link_env = progs[0].get_build_env() if progs and progs[0].has_builder() else env
    flags = {
        "cxx": strip(env.subst("$CXXFLAGS $CCFLAGS", SUBST_SIG)).split(),
        "defines": [strip(str(d)) for d in env.Flatten([env.get("CPPDEFINES", [])])],
        "include_dirs": [strip(Dir(p).abspath) for p in env.get("CPPPATH", [])],
        # The build's RPATHs reach into the build tree; the bundle's are
        # $ORIGIN/../lib (bin/) and $ORIGIN (lib/): manifest files[].elf.
        "link": [f for f in strip(link_env.subst("$LINKFLAGS", SUBST_SIG)).split()
                 if not f.startswith("-Wl,-rpath")],
    }
    header_files = _headers(Dir(headers).srcnode().abspath) if headers else []
    model_dirs = _model_dirs(Dir(models).srcnode().abspath) if models else []
    spec = {
        "target": {"name": target.name, "description": target.description,
                   "vendor": target.vendor, "device": target.device},
        "toolchain": {"name": det.name, "kind": det.family.data.get("kind"), "version": det.version,
                      "host_compiler": ({"name": det.info["host_family"],
                                         "version": det.info.get("host_version")}
                                        if det.info.get("host_family") else None)},
        "programs": [p.abspath for p in progs],
        "libraries": [lib.abspath for lib in libs],
        "headers": header_files,
        "models": model_dirs,
        "flags": flags,
        "source_date_epoch": source_date_epoch,
        "git": git,
        "forbidden": sorted(stand_ins),
        "binary_nodes": [n.abspath for n in libs + progs],
        "name": name,
        "version": version,
        "variant": env["SF_PLAN"].variant,
    }
    name = bundle.bundle_name(target.name + (f"-{spec['variant']}" if spec["variant"] else ""), version, name)
    # The spec (with SOURCE_DATE_EPOCH and the git revision) is part of the
    # bundle's signature: a new commit or epoch makes a new archive.
    stamp = Value(json.dumps({k: v for k, v in spec.items() if k != "forbidden"}, sort_keys=True,
                             default=str).replace(top, "."))
    sources = libs + progs + [File(h) for h, _ in header_files] + \
        [File(f) for _, files in model_dirs for f in files]
    node = env.Command(f"#dist/{name}.tar.gz", sources, Action(_bundle_action, "$SF_BUNDLESTR"),
                       SF_BUNDLE_SPEC=spec)
    env.Depends(node, [stamp] + [File(os.path.join(paths.PACKAGE, f"{m}.py"))
                                 for m in ("release/bundle", "release/sbom", "release/elf", "__init__")])
    return node


def generate(env):
    env.AddMethod(SyclforgeBundle, "SyclforgeBundle")
    env.SetDefault(SF_BUNDLESTR="  BUNDLE   $TARGET" if not env.get("verbose") else "bundle $TARGET")


def exists(env):
    return True   # plain Python: nothing to detect
