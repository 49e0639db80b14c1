"""The part every SYCL family's SCons tool shares (as SCons's `cxx` is to `gxx`).

- Every compile and link writes ${TARGET}.tmp and renames it on success, so
  an interrupted or failed step never leaves a half-written artifact that a
  later build could mistake for a good one.
- Short COMSTR lines unless verbose=1.
- The builders' common shape: env.SyclProgram / SyclSharedLibrary /
  SyclObject take sources like Program / SharedLibrary / Object, honour
  CPPPATH, CPPDEFINES, CXXFLAGS, LIBS, LIBPATH and RPATH, and take the
  sources holding device code as device=[...]. Outputs go to
  $SF_OUT/bin (programs), $SF_OUT/lib (libraries) and $SF_OUT/obj/<source
  path> (objects), so that one SConscript serves every target. Each
  family's tool supplies how device code becomes images (SF_DEVICE_OBJECTS)
  and how a binary links (SF_LINK).
- Every binary with device sources gets a table of its images (the family
  decides whether it holds their bytes): syclforge/fatbin.hpp reads it.
"""
import os

from SCons.Script import Action, Dir, File

from syclforge.core import embed
from syclforge.scons import paths, registry

# One line per step unless verbose=1; the tests read these words.
COMSTRS = {
    "CXXCOMSTR": "  CXX      $TARGET", "SHCXXCOMSTR": "  CXX      $TARGET",
    "LINKCOMSTR": "  LINK     $TARGET", "SHLINKCOMSTR": "  SHLINK   $TARGET",
    "SF_DEVCSTR": "  SPIRV    $TARGET", "SF_AOTSTR": "  AOT      $TARGET",
    "SF_EMBEDSTR": "  EMBED    $TARGET", "SF_MODULESTR": "  MODULE   $TARGET",
}


def _atomic(com):
    if "${TARGET}.tmp" in com:
        return com
    return com.replace("-o $TARGET", "-o ${TARGET}.tmp") + " && mv -f ${TARGET}.tmp $TARGET"


def rel_top(path):
    """Paths inside the checkout become top-relative ("#..."), so that
    command lines (and CacheDir keys) are the same in every clone."""
    top = Dir("#").abspath
    path = os.path.abspath(str(path))
    return "#" + os.path.relpath(path, top) if path.startswith(top + os.sep) else path


def obj_path(env, src, suffix):
    """$SF_OUT/obj/<the source's path under the top, or its name>.o"""
    node = File(src).srcnode()
    top = Dir("#").abspath
    rel = os.path.relpath(node.abspath, top) if node.abspath.startswith(top + os.sep) else \
        os.path.join("_ext", os.path.basename(node.abspath))
    return Dir(env["SF_OUT"]).Dir("obj").File(os.path.splitext(rel)[0] + suffix)


def _configure(env, det, target, out, images):
    """Point env at one (target, toolchain): called by syclforge.scons.Project."""
    env["SF_OUT"] = out
    env["SF_TARGET"] = target
    env["SF_TARGET_NAME"] = target.name
    env["SF_TOOLCHAIN_NAME"] = det.name
    env["SF_DET"] = det
    env["SF_IMAGES"] = list(images)
    env.Append(CPPPATH=[rel_top(paths.RUNTIME_INCLUDE)])
    env.SyclforgeConfigureFamily(det, target)


def _table_action(target, source, env):
    data = [open(str(s), "rb").read() for s in source]
    images = [(i, k, data.pop(0) if embedded else None) for i, k, embedded in env["SF_IMAGE_TABLE"]]
    text = embed.render_image_table(env["SF_TARGET_NAME"], env["SF_TOOLCHAIN_NAME"], images,
                                    device=env["SF_TARGET"].device)
    out = str(target[0])
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)


def image_table(env, name, entries, sources):
    """The generated .cpp of one binary's image table. entries: (id, kind,
    embedded?) in the loader's order; sources: the embedded images' files."""
    node = env.Command(Dir(env["SF_OUT"]).Dir("obj").Dir("syclforge").File(f"{name}.images.cpp"),
                       sources, Action(_table_action, "$SF_EMBEDSTR"), SF_IMAGE_TABLE=entries)
    env.Depends(node, env.Value(repr((env["SF_TARGET_NAME"], env["SF_TOOLCHAIN_NAME"], env["SF_TARGET"].device,
                                      entries))))
    env.Depends(node, File(os.path.join(paths.PACKAGE, "core", "embed.py")))
    return node


def _objects(env, sources, shared, overrides):
    build = env.SharedObject if shared else env.Object
    out = []
    for s in env.Flatten([sources]):
        if isinstance(s, str) and not s.endswith((".c", ".cc", ".cpp", ".cxx", ".C")):
            out.append(File(s))            # objects and libraries pass through
            continue
        objs = build(obj_path(env, s, ".os" if shared else ".o"), s, **overrides)
        registry.host_source(env, s, objs[0], shared, overrides)
        out += objs
    return out


def _binary(env, kind, name, sources, device, overrides):
    shared = kind == "lib"
    objs = _objects(env, sources, shared, overrides)
    extra_objs, link_overrides = env.SyclforgeDeviceObjects(name, env.Flatten([device or []]), shared, overrides)
    objs += extra_objs
    kw = dict(overrides)
    kw.update(link_overrides)
    out_dir = Dir(env["SF_OUT"]).Dir("bin" if kind == "bin" else "lib")
    name = str(name)
    if os.sep in name or "/" in name:
        out_dir, name = Dir(os.path.dirname(name)), os.path.basename(name)
    # The family's $ORIGIN-relative rpaths (a user's RPATH= is honoured as SCons does).
    rpaths = env.SyclforgeRpaths(out_dir.abspath)
    if shared:
        soname = f"{env.subst('$SHLIBPREFIX')}{name}{env.subst('$SHLIBSUFFIX')}"
        kw["SHLINKFLAGS"] = env.Split(kw.get("SHLINKFLAGS", env.get("SHLINKFLAGS", []))) + rpaths + \
            [f"-Wl,-soname,{soname}"]
        # A string target: SCons adds the platform's lib prefix and .so suffix.
        return registry.output(env, env.SharedLibrary(os.path.join(out_dir.abspath, name), objs, **kw))
    kw["LINKFLAGS"] = env.Split(kw.get("LINKFLAGS", env.get("LINKFLAGS", []))) + rpaths
    return registry.output(env, env.Program(os.path.join(out_dir.abspath, name), objs, **kw))


def SyclProgram(env, target, source, device=None, **overrides):
    """A program for env's device target: like env.Program, plus device=[...]
    (the sources that hold device code)."""
    return _binary(env, "bin", target, source, device, overrides)


def SyclSharedLibrary(env, target, source, device=None, **overrides):
    """A shared library for env's device target (SONAME lib<name>.so)."""
    return _binary(env, "lib", target, source, device, overrides)


def SyclObject(env, source, **overrides):
    """Host objects of env's target, under $SF_OUT/obj (for static archives
    or programs assembled by hand)."""
    return _objects(env, source, False, overrides)


def SyclKind(env):
    """The family kind building this env: 'runtime-compiler' or 'single-source'."""
    return env["SF_DET"].family.kind


def generate(env):
    for var in ("CXXCOM", "SHCXXCOM", "LINKCOM", "SHLINKCOM"):
        env[var] = _atomic(env[var])
    if not env.get("verbose"):
        for k, v in COMSTRS.items():
            env[k] = v
    env.AddMethod(_configure, "SyclforgeConfigure")
    env.AddMethod(SyclProgram, "SyclProgram")
    env.AddMethod(SyclSharedLibrary, "SyclSharedLibrary")
    env.AddMethod(SyclObject, "SyclObject")
    env.AddMethod(SyclKind, "SyclKind")
    env.AddMethod(lambda env, path: rel_top(path), "SfRelTop")
    env.AddMethod(image_table, "SfImageTable")
    env.AddMethod(_objects, "SfObjects")


def exists(env):
    return True
