"""Command lines for single-source SYCL compilers (icpx, intel-llvm, acpp...).

Every flag comes from the family's YAML ('flags' and the per-image 'target',
'arch', 'backend_args' under 'capabilities'); nothing here names a family.
Runtime-compiler families (oneapi-pip) build device images inside a program,
not with a command line: asking for one is a SyclforgeError.

By default the images are those the toolchain puts in one binary for the
target (Detected.plan(target).images); pass images=[...] to build another
subset, e.g. one module per x86 ISA where a family holds one native CPU
image per binary.

Imports no SCons.
"""
from syclforge.errors import SyclforgeError


def _check(det):
    if det.family.kind != "single-source":
        raise SyclforgeError(
            f"{det.name} is a {det.family.kind} toolchain: it builds device images at run "
            f"time, not with compile/link command lines")
    if not det.available:
        raise SyclforgeError(f"{det.name} is not available: {det.reason}")


def _images(det, target, images):
    """The image ids to build, checked against what det can produce."""
    if images is None:
        why = det.why_not(target)
        if why:
            raise SyclforgeError(f"{det.name} cannot build {target.name}: {why}")
        return list(det.plan(target).images)
    images = list(images)
    if not images:
        raise SyclforgeError(f"{det.name}: no images asked for {target.name}")
    bad = [i for i in images if not det.can_produce(target.vendor, i)]
    if bad:
        raise SyclforgeError(f"{det.name} cannot produce {', '.join(bad)} for "
                             f"{target.vendor}: it makes "
                             f"{', '.join(det.capabilities.get(target.vendor, [])) or 'none'}")
    caps = det.family.vendor_caps(target.vendor)
    limit = caps.get("max_native_per_binary")
    natives = [i for i in images if det.family.image_spec(target.vendor, i)[0] == "native"]
    if limit is not None and len(natives) > limit:
        raise SyclforgeError(f"{det.name} holds at most {limit} native {target.vendor} "
                             f"image(s) per binary, asked for {', '.join(natives)}: "
                             f"{' '.join(caps.get('limitation', '').split())}")
    return images


def _device_words(det, target, images, stage, module=None):
    device = det.family.data["flags"]["device"]
    if module is not None:
        images = [module]
    parts = device.get(stage, ["always", "targets", "backend"])
    groups = {}           # target string -> archs, in first-seen order
    backend_args = {}     # target string -> args
    for image_id in _images(det, target, images):
        _, spec = det.family.image_spec(target.vendor, image_id)
        if "target" not in spec:          # 'implied': comes with the others
            continue
        archs = groups.setdefault(spec["target"], [])
        if spec.get("arch") and spec["arch"] not in archs:
            archs.append(spec["arch"])
        args = backend_args.setdefault(spec["target"], [])
        args += [a for a in spec.get("backend_args", []) if a not in args]
    words = []
    if "always" in parts:
        words += device.get("always", [])
    if "targets" in parts and groups:
        fmt = device["targets"]
        arch_join = fmt.get("arch_join", ",")
        listed = [t if not archs else f"{t}:{arch_join.join(archs)}"
                  for t, archs in groups.items()]
        words.append(fmt["format"].replace("{}", fmt["join"].join(listed)))
    if "backend" in parts and device.get("backend"):
        for t, args in backend_args.items():
            if args:
                words += [w.replace("{target}", t).replace("{args}", " ".join(args))
                          for w in device["backend"]]
    if module is not None:
        words += det.family.image_spec(target.vendor, module)[1].get("flags", [])
    return words


def uses_modules(det, target):
    """True where each native image of target is a module of its own (the
    family's 'modules': AdaptiveCpp's omp flow compiles one ISA per binary)."""
    return bool((det.family.vendor_caps(target.vendor) or {}).get("modules"))


def module_compile_flags(det, target, image):
    """Compile flags of one native image's module, e.g. ['-std=c++17',
    '--acpp-targets=omp', '-march=x86-64-v4']: its own compile of the device
    sources."""
    _check(det)
    _module_check(det, target, image)
    return [*det.family.data["flags"].get("compile", []), *_device_words(det, target, None, "compile", image)]


def module_link_flags(det, target, image):
    """Link flags of one native image's module (a shared object)."""
    _check(det)
    _module_check(det, target, image)
    return [*_device_words(det, target, None, "link", image), *det.family.data["flags"].get("link", [])]


def _module_check(det, target, image):
    if not uses_modules(det, target):
        raise SyclforgeError(f"{det.name} builds {target.vendor} images into the binary itself, not as modules")
    spec = det.family.image_spec(target.vendor, image)
    if spec is None or spec[0] != "native" or not det.can_produce(target.vendor, image):
        raise SyclforgeError(f"{det.name} makes no {image} module for {target.name}: its {target.vendor} "
                             f"modules are {', '.join(det.capabilities.get(target.vendor, [])) or 'none'}")


def device_flags(det, target, *, images=None):
    """Every device flag for target (as given at link time), e.g.
    ['-fsycl', '-fsycl-targets=nvidia_gpu_sm_90,nvidia_gpu_sm_80'] or
    ['--acpp-targets=cuda:sm_90,sm_80']."""
    _check(det)
    return _device_words(det, target, images, "link")


def compile_flags(det, target, *, images=None):
    """The family's compile flags and device flags for target (what a
    builder adds to CXXFLAGS with the driver as CXX)."""
    _check(det)
    return [*det.family.data["flags"].get("compile", []), *_device_words(det, target, images, "compile")]


def link_flags(det, target, *, images=None):
    """The device flags and the family's link flags (LINKFLAGS)."""
    _check(det)
    return [*_device_words(det, target, images, "link"), *det.family.data["flags"].get("link", [])]


def compile_command(det, target, src, obj, *, includes=(), defines=(), extra=(), images=None):
    """argv compiling one source file to an object holding device code for target."""
    return ([det.path, *compile_flags(det, target, images=images),
             *[f"-I{i}" for i in includes], *[f"-D{d}" for d in defines], *map(str, extra),
             "-c", str(src), "-o", str(obj)])


def link_command(det, target, objs, out, *, shared=False, libdirs=(), libs=(), rpaths=(),
                 extra=(), images=None):
    """argv linking objects into the fat binary (or shared library) for target."""
    return ([det.path, *(["-shared"] if shared else []), *link_flags(det, target, images=images),
             *map(str, objs), "-o", str(out),
             *[f"-L{d}" for d in libdirs], *[f"-Wl,-rpath,{r}" for r in rpaths],
             *[f"-l{lib}" for lib in libs], *map(str, extra)])
