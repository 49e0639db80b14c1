"""SCons tool for single-source SYCL families (icpx, intel/llvm clang, acpp), on sf_common.

The compiler driver builds host and device code together and embeds one
device image per arch in the objects, so every source builds as SCons
builds any C++ (CPPPATH, CPPDEFINES, CXXFLAGS, LIBS, ... and the C scanner
as usual) with $CXX set to the driver and the device flags of the family's
description in toolchains/ (syclforge.core.commands). Device sources need
no other treatment: device=[...] only adds them to the binary, with a table
of the images the driver embedded (syclforge/fatbin.hpp reads it).

Where the family compiles one native image per binary (its 'modules', e.g.
AdaptiveCpp's omp flow, one -march per compile), the device sources are
compiled once per native image with that image's flags and linked into a
module per image ($SF_OUT/images/<binary>/<image>.so, -Wl,--no-undefined:
a module is loaded privately and must not call back into the binary); the
binary embeds the modules and syclforge::load_module() picks one at run time.
"""
import os

from SCons.Script import Action, Dir, File

from syclforge.core import commands
from syclforge.scons import paths


def _configure_family(env, det, target):
    images = env["SF_IMAGES"]
    env["CXX"] = det.path
    env["LINK"] = det.path
    env["SHLINK"] = det.path
    env.Append(CXXFLAGS=commands.compile_flags(det, target, images=images),
               LINKFLAGS=commands.link_flags(det, target, images=images),
               SHLINKFLAGS=commands.link_flags(det, target, images=images),
               LIBPATH=["$SF_OUT/lib"])
    # Reproducible objects: no absolute path of the checkout or of the
    # compiler's installation (its headers' __FILE__) in them; left out of
    # the signature ($( $)) so that clones share cache entries.
    top = Dir("#").abspath
    root = os.path.dirname(os.path.dirname(os.path.abspath(det.path)))
    env.Append(CCFLAGS=["$(", f"-ffile-prefix-map={top}=.", f"-ffile-prefix-map={root}={det.name}",
                        f"-ffile-prefix-map={paths.PACKAGE}=syclforge", "$)"])


def _scrub_runpath(target, source, env):
    """A module is loaded from memory, after the binary's own libraries:
    the driver's absolute RUNPATH (its installation) has nothing to find and
    would tie the bundle to this machine's paths."""
    from syclforge.release import elf
    path = str(target[0])
    e = elf.Elf(open(path, "rb").read(), os.path.basename(path))
    if e.rpath is not None:
        e.set_rpath("$ORIGIN")
        with open(path + ".tmp", "wb") as f:
            f.write(bytes(e.data))
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)



def _modules(env, name, device, overrides):
    """One module per native image: the device sources compiled and linked
    with that image's flags. Returns (table entries, module files)."""
    det, target = env["SF_DET"], env["SF_TARGET"]
    entries, files = [], []
    images_dir = Dir(env["SF_OUT"]).Dir("images").Dir(str(name))
    for image in (i for i in target.images if i.id in env["SF_IMAGES"] and i.kind == "native"):
        menv = env.Clone(**{k: v for k, v in overrides.items() if k in ("CPPPATH", "CPPDEFINES", "CXXFLAGS")})
        # What the module adds to the binary's flags (the image's -march).
        cflags = [f for f in commands.module_compile_flags(det, target, image.id) if f not in menv["CXXFLAGS"]]
        lflags = [f for f in commands.module_link_flags(det, target, image.id) if f not in menv["SHLINKFLAGS"]]
        menv.Append(CXXFLAGS=cflags, SHLINKFLAGS=lflags + ["-Wl,--no-undefined"])
        menv["SF_OUT"] = env.Dir(env["SF_OUT"]).Dir("modules").Dir(str(name)).Dir(image.id).abspath
        objs = menv.SfObjects(device, True, {})
        module = menv.SharedLibrary(images_dir.File(f"{image.id}.so"), objs, SHLIBPREFIX="", SHLIBSUFFIX=".so",
                                    SHLINKCOMSTR=env.get("SF_MODULESTR", "$SHLINKCOMSTR"))
        menv.AddPostAction(module, Action(_scrub_runpath, None))
        files += module
        entries.append((image.id, image.kind, True))
    return entries, files


def _device_objects(env, name, device, shared, overrides):
    if not device:
        return [], {}
    det, target = env["SF_DET"], env["SF_TARGET"]
    renv = env.Clone()
    renv.Append(CPPPATH=[env.SfRelTop(paths.RUNTIME)])
    build = renv.SharedObject if shared else renv.Object
    suffix = ".os" if shared else ".o"
    out = env.Dir(env["SF_OUT"]).Dir("obj").Dir("syclforge")
    if commands.uses_modules(det, target):
        entries, files = _modules(env, name, device, overrides)
        objs = []
    else:
        objs = env.SfObjects(device, shared, overrides)
        kinds = {i.id: i.kind for i in target.images}
        entries, files = [(i, kinds[i], False) for i in env["SF_IMAGES"]], []
    table = env.SfImageTable(name, entries, files)
    objs += build(out.File(f"{name}.images{suffix}"), table)
    for part in ("info", "loader_module", "cpu_isa"):
        objs += build(out.File(f"{name}.{part}{suffix}"), env.File(os.path.join(paths.RUNTIME, part + ".cpp")))
    return objs, {}


def generate(env):
    env.Tool("sf_common", toolpath=[paths.TOOLS])
    env.AddMethod(_configure_family, "SyclforgeConfigureFamily")
    env.AddMethod(_device_objects, "SyclforgeDeviceObjects")
    # Programs find the target's libraries in ../lib wherever they are copied.
    env.AddMethod(lambda env, out_dir: ["-Wl,-rpath,'$$ORIGIN/../lib'"], "SyclforgeRpaths")


def exists(env):
    """True when a single-source family is installed and usable here."""
    from syclforge import cli
    families = cli.load_families(env.Dir("#").abspath)
    return any(d.available and d.family.kind == "single-source" for d in cli.detect(families))
