"""SCons tool for runtime-compiler SYCL families (oneapi-pip).

Device code is compiled at build time: SYCL source -> SPIR-V (sf-devc, the
runtime's own DPC++ front end), SPIR-V -> one native ELF per ISA (sf-aot, the
OpenCL CPU runtime's code generator); the images are embedded in the kernel
library, whose loader picks one at run time. Host code builds with the
detected host compiler.
"""
import os

from SCons.Script import Action, Builder, Dir, File

from syclforge.core import embed


def _rel(env, path):
    """Paths inside the checkout become top-relative, so that the command
    lines (and so CacheDir keys) are the same in every clone."""
    top = Dir("#").abspath
    path = os.path.abspath(path)
    return "#" + os.path.relpath(path, top) if path.startswith(top + os.sep) else path


def _embed_action(target, source, env):
    images = [(img_id, kind, open(str(src), "rb").read())
              for (img_id, kind), src in zip(env["SF_IMAGE_KINDS"], source)]
    text = embed.render_image_table(env["SF_TARGET_NAME"], env["SF_TOOLCHAIN_NAME"], images)
    out = str(target[0])
    with open(out + ".tmp", "w") as f:
        f.write(text)
    os.replace(out + ".tmp", out)


def _configure(env, det, target, out, images):
    info = det.info
    env["CXX"] = info["host_cxx"]
    env["SF_OUT"] = out
    env["SF_TARGET"] = target
    env["SF_TARGET_NAME"] = target.name
    env["SF_TOOLCHAIN_NAME"] = det.name
    env["SF_DET"] = det
    env["SF_IMAGES"] = list(images)
    include, lib = _rel(env, info["include"]), _rel(env, info["lib"])
    env.Append(CPPPATH=["#kernels", "#kernels/include", include],
               CPPDEFINES=["SYCL_DISABLE_FSYCL_SYCLHPP_WARNING", "CL_TARGET_OPENCL_VERSION=300"],
               CXXFLAGS=["-std=c++17", "-O2", "-Wno-deprecated-declarations"],
               LIBPATH=[lib])
    # Reproducible objects: no absolute path of the checkout or of the
    # runtime's prefix in __FILE__ or code_location strings. The last map
    # that matches wins, so the prefix is named the same (oneapi-pip/...)
    # wherever it is, also when spelled relative (-I.venv/include). Between
    # $( $): left out of the signature, so clones in different directories
    # still share CacheDir entries (the output is the same in each).
    top, prefix = Dir("#").abspath, os.path.abspath(info["prefix"])
    maps = [f"-ffile-prefix-map={top}=.", f"-ffile-prefix-map={prefix}={det.name}"]
    if prefix.startswith(top + os.sep):
        maps.append(f"-ffile-prefix-map={os.path.relpath(prefix, top)}/={det.name}/")
    env.Append(CCFLAGS=["$("] + maps + ["$)"])
    env["ENV"]["OCL_ICD_FILENAMES"] = info["icd"]
    # libOpenCL from the wheel needs its own neighbours (libsvml, ...):
    # --disable-new-dtags makes the rpath apply to them as well.
    env["SF_RUNTIME_LIBDIR"] = lib
    # ISA -> environment that makes sf-aot emit that ISA (toolchains/oneapi-pip.yaml)
    env["SF_IMAGE_ENV"] = info["image_env"]


def _rpath_flags(env, bin_dir):
    """$ORIGIN-relative rpaths: to our lib/ and to the runtime's lib dir."""
    out = Dir(env["SF_OUT"]).abspath
    runtime = Dir(env["SF_RUNTIME_LIBDIR"]).abspath
    paths = ["$$ORIGIN/" + os.path.relpath(os.path.join(out, "lib"), bin_dir),
             "$$ORIGIN/" + os.path.relpath(runtime, bin_dir)]
    return ["-Wl,--disable-new-dtags"] + [f"-Wl,-rpath,'{p}'" for p in paths]


def _tools(env):
    """sf-devc and sf-aot, built once per target build tree."""
    if "SF_DEVC" in env:
        return env["SF_DEVC"], env["SF_AOT"]
    tenv = env.Clone()
    tdir = Dir(env["SF_OUT"]).Dir("tools")
    tenv.Append(LINKFLAGS=_rpath_flags(env, tdir.abspath))
    src = "#toolchains/oneapi_pip/"
    devc = tenv.Program(tdir.File("sf-devc"), tenv.Object(tdir.File("sf-devc.o"), src + "sf-devc.cpp"),
                        LIBS=["sycl"])
    aot = tenv.Program(tdir.File("sf-aot"), tenv.Object(tdir.File("sf-aot.o"), src + "sf-aot.cpp"),
                       LIBS=["OpenCL"])
    env["SF_DEVC"], env["SF_AOT"] = devc[0], aot[0]
    return devc[0], aot[0]


def SyclKernelLibrary(env, name, *, ops_headers, free_function_kernels, free_function_host,
                      lambda_sources, common):
    """The kernel library of one target: device images + loader + host API."""
    devc, aot = _tools(env)
    target = env["SF_TARGET"]
    out = Dir(env["SF_OUT"])
    kernels_dir = Dir("#kernels").srcnode().abspath
    include_args = " ".join(
        f"--include {os.path.relpath(File(h).srcnode().abspath, kernels_dir)}={File(h).srcnode().path}"
        for h in ops_headers)
    images_dir = out.Dir("images")
    spirv_nodes = []
    for i, src in enumerate(free_function_kernels):
        spirv_nodes += env.Command(
            images_dir.File(f"kernels{i}.spv"), src,
            Action(f"{devc.path} -o $TARGET {include_args} $SOURCE", "$SF_DEVCSTR"))
        env.Depends(spirv_nodes[-1], [devc] + list(ops_headers))
    if len(spirv_nodes) != 1:
        raise ValueError("runtime-compiler builds expect exactly one free-function kernel source")
    spirv = spirv_nodes[0]
    image_nodes, kinds = [], []
    for image in (i for i in target.images if i.id in env["SF_IMAGES"]):
        if image.kind == "native":
            arch = env["SF_IMAGE_ENV"][image.id]["CL_CONFIG_CPU_TARGET_ARCH"]
            node = env.Command(images_dir.File(f"{image.id}.bin"), spirv,
                               Action(f"{aot.path} --arch {arch} -o $TARGET $SOURCE", "$SF_AOTSTR"))
            env.Depends(node, aot)
            image_nodes += node
        else:
            image_nodes.append(spirv)
        kinds.append((image.id, image.kind))
    table = env.Command(out.Dir("obj").File("images.cpp"), image_nodes,
                        Action(_embed_action, "$SF_EMBEDSTR"), SF_IMAGE_KINDS=kinds)
    env.Depends(table, File("#site_scons/syclforge/core/embed.py"))
    lib_env = env.Clone()
    lib_env.Append(LINKFLAGS=_rpath_flags(env, out.Dir("lib").abspath))
    sources = list(common) + list(free_function_host) + ["runtime/loader_opencl.cpp"] + table
    # A string target: SCons adds the platform's lib prefix and .so suffix.
    # A SONAME, so programs record "lib<name>.so" (found through their rpath)
    # rather than the build-relative path they were linked against.
    lib_env.Append(SHLINKFLAGS=[f"-Wl,-soname,{lib_env.subst('$SHLIBPREFIX')}{name}{lib_env.subst('$SHLIBSUFFIX')}"])
    lib = lib_env.SharedLibrary(f"{env['SF_OUT']}/lib/{name}", sources, LIBS=["sycl", "OpenCL"])
    return lib


def SyclProgram(env, name, sources, library):
    out = Dir(env["SF_OUT"])
    penv = env.Clone()
    penv.Append(LINKFLAGS=_rpath_flags(env, out.Dir("bin").abspath))
    objs = [penv.Object(out.Dir("obj").Dir("apps").File(os.path.splitext(os.path.basename(str(s)))[0] + ".o"), s)
            for s in sources]
    return penv.Program(out.Dir("bin").File(name), objs, LIBS=[library[0], "sycl", "OpenCL"])


def generate(env):
    env.AddMethod(_configure, "SyclforgeConfigure")
    env.AddMethod(SyclKernelLibrary, "SyclKernelLibrary")
    env.AddMethod(SyclProgram, "SyclProgram")


def exists(env):
    return True
