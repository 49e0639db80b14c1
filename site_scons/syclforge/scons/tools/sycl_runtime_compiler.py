"""SCons tool for runtime-compiler SYCL families (oneapi-pip), on sf_common.

Host sources build with the detected host compiler (g++ or clang++), as
SCons builds any C++. Device sources (device=[...], free-function kernels)
are compiled at build time: SYCL source -> SPIR-V (sf-devc, the runtime's own
DPC++ front end), SPIR-V -> one native ELF per ISA (sf-aot, the OpenCL CPU
runtime's code generator). The images are embedded in the binary with
syclforge's fat-binary loader (syclforge/fatbin.hpp), which picks one at run
time. The headers a device source includes are found by SCons's C scanner
(a header edit rebuilds that source's images and nothing else) and handed
to the runtime compiler by name (syclforge.core.devsrc).
"""
import os

import SCons.Scanner.C
from SCons.Script import Action, Dir, File

from syclforge.core import devsrc
from syclforge.scons import paths, registry


def _configure_family(env, det, target):
    info = det.info
    env["CXX"] = info["host_cxx"]
    include, lib = env.SfRelTop(info["include"]), env.SfRelTop(info["lib"])
    env.Append(CPPPATH=[include],
               CPPDEFINES=["SYCL_DISABLE_FSYCL_SYCLHPP_WARNING", "CL_TARGET_OPENCL_VERSION=300",
                           "SYCLFORGE_RUNTIME_COMPILER"],
               CXXFLAGS=["-std=c++17", "-O2", "-Wno-deprecated-declarations"],
               LIBPATH=[lib], LIBS=["sycl", "OpenCL"])
    # Reproducible objects: no absolute path of the checkout or of the
    # runtime's prefix in __FILE__ or code_location strings. The last map
    # that matches wins, so the prefix is named the same (oneapi-pip/...)
    # wherever it is, also when spelled relative (-I.venv/include). Between
    # $( $): left out of the signature, so clones in different directories
    # still share CacheDir entries (the output is the same in each).
    top, prefix = Dir("#").abspath, os.path.abspath(info["prefix"])
    maps = [f"-ffile-prefix-map={top}=.", f"-ffile-prefix-map={prefix}={det.name}",
            f"-ffile-prefix-map={paths.PACKAGE}=syclforge"]
    if prefix.startswith(top + os.sep):
        maps.append(f"-ffile-prefix-map={os.path.relpath(prefix, top)}/={det.name}/")
    env.Append(CCFLAGS=["$("] + maps + ["$)"])
    env["ENV"]["OCL_ICD_FILENAMES"] = info["icd"]
    env["SF_RUNTIME_LIBDIR"] = lib
    # ISA -> environment that makes sf-aot emit that ISA (toolchains/oneapi-pip.yaml)
    env["SF_IMAGE_ENV"] = info["image_env"]
    # libOpenCL from the wheel needs its own neighbours (libsvml, ...):
    # --disable-new-dtags makes the rpath apply to them as well.
    env.Append(LINKFLAGS=["-Wl,--disable-new-dtags"])


def _rpaths(env, out_dir):
    """Linker flags: $ORIGIN-relative rpaths from out_dir to the target's lib/ and to the
    runtime's lib dir (the bundle rewrites them to its own layout)."""
    out = Dir(env["SF_OUT"]).abspath
    runtime = Dir(env["SF_RUNTIME_LIBDIR"]).abspath
    return [f"-Wl,-rpath,'$$ORIGIN/{os.path.relpath(p, out_dir)}'" for p in (os.path.join(out, "lib"), runtime)]


def _tools(env):
    """sf-devc and sf-aot, built once per target build tree."""
    if "SF_DEVC" in env:
        return env["SF_DEVC"], env["SF_AOT"]
    tenv = env.Clone(CPPPATH=[env.SfRelTop(env["SF_DET"].info["include"])])
    tdir = Dir(env["SF_OUT"]).Dir("tools")
    tenv.Append(LINKFLAGS=_rpaths(env, tdir.abspath))
    devc = tenv.Program(tdir.File("sf-devc"), tenv.Object(tdir.File("sf-devc.o"), File(paths.helper("sf-devc.cpp"))),
                        LIBS=["sycl"])
    aot = tenv.Program(tdir.File("sf-aot"), tenv.Object(tdir.File("sf-aot.o"), File(paths.helper("sf-aot.cpp"))),
                       LIBS=["OpenCL"])
    env["SF_DEVC"], env["SF_AOT"] = devc[0], aot[0]
    return devc[0], aot[0]


def _includes(target, source, env, for_signature):
    """--include NAME=PATH for every header the device source reaches."""
    dirs = [Dir(d).srcnode().abspath if str(d).startswith("#") else env.Dir(d).srcnode().abspath
            for d in env.Flatten([env.get("CPPPATH", [])]) if not str(d).startswith("$")]
    src = source[0].srcnode().abspath
    pairs = devsrc.virtual_includes(src, dirs)
    top = Dir("#").abspath
    return " ".join(f"--include {name}={os.path.relpath(path, top) if path.startswith(top + os.sep) else path}"
                    for name, path in pairs)


def _device_objects(env, name, device, shared, overrides):
    """SPIR-V per device source, one native image per ISA, the image table,
    and the loader: objects for the binary, and what its link needs."""
    if not device:
        return [], {}
    devc, aot = _tools(env)
    target = env["SF_TARGET"]
    if len(device) != 1:
        raise ValueError(f"{name}: the runtime compiler builds one device source per binary (a SPIR-V module); "
                         f"got {len(device)}: include the others from one file")
    src = device[0]
    images_dir = Dir(env["SF_OUT"]).Dir("images").Dir(str(name))
    denv = env.Clone(**{k: v for k, v in overrides.items() if k in ("CPPPATH", "CPPDEFINES")})
    spirv = denv.Command(images_dir.File(os.path.splitext(os.path.basename(str(src)))[0] + ".spv"), src,
                         Action(f"{devc.path} -o $TARGET ${{SF_DEVC_INCLUDES}} $SOURCE", "$SF_DEVCSTR"),
                         source_scanner=SCons.Scanner.C.CScanner(), SF_DEVC_INCLUDES=_includes)
    env.Depends(spirv, devc)
    registry.device_source(denv, src, spirv[0])
    files, entries = [], []
    for image in (i for i in target.images if i.id in env["SF_IMAGES"]):
        if image.kind == "native":
            arch = env["SF_IMAGE_ENV"][image.id]["CL_CONFIG_CPU_TARGET_ARCH"]
            node = env.Command(images_dir.File(f"{image.id}.bin"), spirv,
                               Action(f"{aot.path} --arch {arch} -o $TARGET $SOURCE", "$SF_AOTSTR"))
            env.Depends(node, aot)
            files += node
        else:
            files += spirv
        entries.append((image.id, image.kind, True))
    table = env.SfImageTable(name, entries, files)
    renv = env.Clone()
    renv.Append(CPPPATH=[env.SfRelTop(paths.RUNTIME)])
    build = renv.SharedObject if shared else renv.Object
    suffix = ".os" if shared else ".o"
    out = Dir(env["SF_OUT"]).Dir("obj").Dir("syclforge")
    objs = build(out.File(f"{name}.images{suffix}"), table)
    for part in ("loader_opencl", "info", "cpu_isa"):
        objs += build(out.File(f"{name}.{part}{suffix}"), File(os.path.join(paths.RUNTIME, part + ".cpp")))
    return objs, {}


def generate(env):
    env.Tool("sf_common", toolpath=[paths.TOOLS])
    env.AddMethod(_configure_family, "SyclforgeConfigureFamily")
    env.AddMethod(_device_objects, "SyclforgeDeviceObjects")
    env.AddMethod(_rpaths, "SyclforgeRpaths")


def exists(env):
    """True when a runtime-compiler family is installed and usable here."""
    from syclforge import cli
    families = cli.load_families(env.Dir("#").abspath)
    return any(d.available and d.family.kind == "runtime-compiler" for d in cli.detect(families))
