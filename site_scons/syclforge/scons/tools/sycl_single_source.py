"""SCons tool for single-source SYCL families (icpx, intel/llvm clang, acpp), on sf_common.

The compiler driver builds host and device code together and embeds one
device image per arch in the objects, so every source builds as SCons
builds any C++ (CPPPATH, CPPDEFINES, CXXFLAGS, LIBS, ... and the C scanner
as usual) with $CXX set to the driver and the device flags of the family's
description in toolchains/ (syclforge.core.commands). Device sources need
no other treatment: device=[...] only adds them to the binary, with a table
of the images the driver embedded (syclforge/fatbin.hpp reads it).
"""
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



def _device_objects(env, name, device, shared, overrides):
    if not device:
        return [], {}
    objs = env.SfObjects(device, shared, overrides)
    kinds = {i.id: i.kind for i in env["SF_TARGET"].images}
    table = env.SfImageTable(name, [(i, kinds[i], False) for i in env["SF_IMAGES"]], [])
    renv = env.Clone()
    renv.Append(CPPPATH=[env.SfRelTop(paths.RUNTIME)])
    build = renv.SharedObject if shared else renv.Object
    suffix = ".os" if shared else ".o"
    out = env.Dir(env["SF_OUT"]).Dir("obj").Dir("syclforge")
    objs += build(out.File(f"{name}.images{suffix}"), table)
    objs += build(out.File(f"{name}.info{suffix}"), env.File(paths.RUNTIME + "/info.cpp"))
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
