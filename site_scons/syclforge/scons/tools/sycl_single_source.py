"""SCons tool for single-source SYCL families (icpx, intel/llvm clang, acpp).

The compiler driver builds host and device code together and embeds one
device image per arch in the objects; the command lines come from the
family's description in toolchains/ through syclforge.commands.
"""
import os
import shlex

from SCons.Script import Action, Dir, File

from syclforge.core import commands


def _configure(env, det, target, out, images):
    env["SF_OUT"] = out
    env["SF_TARGET"] = target
    env["SF_DET"] = det
    env["SF_IMAGES"] = list(images)
    kinds = {i.id: i.kind for i in target.images}
    # What the binary really holds (a family may hold fewer than the target lists).
    images = ",".join(f"{i}:{kinds[i]}" for i in images)
    env["SF_DEFINES"] = [f'KL_BUILD_TARGET="{target.name}"', f'KL_BUILD_TOOLCHAIN="{det.name}"',
                         f'KL_BUILD_IMAGES="{images}"']


def _cmd(argv):
    return " ".join(shlex.quote(a) for a in argv)


def _rel(path):
    """Paths inside the checkout become top-relative (commands run there),
    so the command lines, and so the cache keys, are the same in every
    clone and on every machine."""
    top = Dir("#").abspath
    path = os.path.abspath(str(path))
    return os.path.relpath(path, top) if path.startswith(top + os.sep) else path


def _compile(env, obj, src, extra=()):
    det, target = env["SF_DET"], env["SF_TARGET"]
    includes = [_rel(Dir("#kernels").abspath), _rel(Dir("#kernels/include").abspath)]
    tmp = _rel(File(obj).abspath) + ".tmp"
    argv = commands.compile_command(det, target, _rel(File(src).srcnode().abspath), tmp,
                                    includes=includes, defines=env["SF_DEFINES"], extra=extra,
                                    images=env["SF_IMAGES"])
    action = Action(_cmd(argv) + f" && mv -f {shlex.quote(tmp)} $TARGET", "$SF_SYCLCXXSTR")
    node = env.Command(obj, src, action)
    return node


def _link(env, out, objs, *, shared=False, libs=(), libdirs=(), rpaths=()):
    det, target = env["SF_DET"], env["SF_TARGET"]
    tmp = _rel(File(out).abspath) + ".tmp"
    argv = commands.link_command(det, target, [_rel(File(o).abspath) for o in objs], tmp, shared=shared,
                                 libdirs=[_rel(d) for d in libdirs], libs=libs, rpaths=rpaths, images=env["SF_IMAGES"])
    return env.Command(out, objs, Action(_cmd(argv).replace("$", "$$") + f" && mv -f {shlex.quote(tmp)} $TARGET",
                                         "$SF_SYCLLINKSTR"))


def SyclKernelLibrary(env, name, *, ops_headers, free_function_kernels, free_function_host,
                      lambda_sources, common):
    out = Dir(env["SF_OUT"])
    objs = []
    for src in list(common) + list(lambda_sources):
        base = os.path.splitext(str(src))[0].replace("/", "_")
        objs += _compile(env, out.Dir("obj").File(base + ".o"), src, extra=["-fPIC"])
        env.Depends(objs[-1], list(ops_headers))
    return _link(env, out.Dir("lib").File(f"lib{name}.so"), objs, shared=True)


def SyclProgram(env, name, sources, library):
    out = Dir(env["SF_OUT"])
    objs = []
    for src in sources:
        base = os.path.splitext(os.path.basename(str(src)))[0]
        objs += _compile(env, out.Dir("obj").Dir("apps").File(base + ".o"), src)
    lib = library[0]
    prog = _link(env, out.Dir("bin").File(name), objs, libdirs=[lib.dir.abspath],
                 libs=[name_of(lib)], rpaths=["$ORIGIN/../lib"])
    env.Depends(prog, library)
    return prog


def name_of(lib):
    base = os.path.basename(str(lib))
    return base[3:-3] if base.startswith("lib") and base.endswith(".so") else base


def generate(env):
    env.AddMethod(_configure, "SyclforgeConfigure")
    env.AddMethod(SyclKernelLibrary, "SyclKernelLibrary")
    env.AddMethod(SyclProgram, "SyclProgram")


def exists(env):
    return True
