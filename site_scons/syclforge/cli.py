"""The `syclforge` command, and the verbs it shares with SCons.

    syclforge toolchains [--json] [--top DIR]   what is installed, what it can target
    syclforge explain TARGET [--toolchain T]    why each toolchain was accepted or refused
    syclforge verify BUNDLE...                  check release bundles
    syclforge numerics merge DIR... [--out D]   merge numerics reports of other machines
    syclforge init DIR                          a new project that builds with `scons`

`scons toolchains`, `scons explain`, `scons verify` and `scons numerics
merge=` call the same functions (syclforge.scons.Project). Imports no SCons.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from syclforge.errors import SyclforgeError


@dataclass
class Context:
    """A project's targets, the detected toolchains and the plans."""
    top: str
    targets: dict
    chosen: list
    detected: list
    plans: list

    @classmethod
    def load(cls, top, *, targets="targets.yaml", toolchains=None, target="all", pin=None):
        from syclforge.core import config, resolve
        targets_path = os.path.join(top, targets)
        if not os.path.isfile(targets_path):
            raise SyclforgeError(f"{targets_path}: no such file: a project declares its device targets in "
                                 "targets.yaml (`syclforge init DIR` writes one)")
        families = load_families(top, toolchains)
        detected = detect(families)
        all_targets = config.load_targets(targets_path)
        chosen = config.select_targets(all_targets, target)
        pins = resolve.parse_pins(pin, detected)
        if pins and chosen:   # an unknown name is an error before anything is built
            for name in pins:
                resolve.resolve(chosen[0], detected, pin=name)
        plans = [r for t in chosen
                 for r in resolve.resolve_variants(t, detected, pins, every=(pin or "").strip() == "all")]
        return cls(top, all_targets, chosen, detected, plans)


def load_families(top, toolchains=None):
    """syclforge's toolchain families, overridden or extended by the
    project's own (toolchains=DIR, default: its toolchains/ if any)."""
    from syclforge.core import toolchains as tc
    from syclforge.scons import paths
    packaged = paths.families_dir()
    families = {f.name: f for f in tc.load_families(packaged)}
    extra = os.path.join(top, toolchains or "toolchains")
    if os.path.isdir(extra) and os.path.realpath(extra) != os.path.realpath(packaged) and \
            any(Path(extra).glob("*.yaml")):
        schema = os.path.join(extra, tc.SCHEMA_NAME)
        if not os.path.isfile(schema):   # the project's files, checked against syclforge's schema
            import shutil
            import tempfile
            tmp = tempfile.mkdtemp(prefix="syclforge-families-")
            for f in Path(extra).glob("*.yaml"):
                shutil.copy(f, tmp)
            shutil.copy(os.path.join(packaged, tc.SCHEMA_NAME), tmp)
            extra = tmp
        families.update({f.name: f for f in tc.load_families(extra)})
    return sorted(families.values(), key=lambda f: (f.preference, f.name))


_DETECTED = {}


def detect(families):
    """Detection, once per process and set of families (tools' exists() asks too)."""
    from syclforge.core import toolchains as tc
    key = tuple(f.path for f in families)
    if key not in _DETECTED:
        _DETECTED[key] = tc.detect(families)
    return _DETECTED[key]


def toolchains_text(ctx, as_json=False):
    from syclforge.core import toolchains as tc
    targets = list(ctx.targets.values())
    if as_json:
        return json.dumps([d.to_json(targets) for d in ctx.detected], indent=2)
    return tc.format_table(ctx.detected, targets)


def explain_text(ctx):
    from syclforge.core import resolve
    return "\n\n".join(resolve.explain(p) for p in ctx.plans)


def verify(bundles):
    from syclforge.release import verify as bundle_verify
    return bundle_verify.main([str(b) for b in bundles])


# --------------------------------------------------------------------------
# init: a project from nothing

INIT_FILES = {
    "SConstruct": '''\
# Built with syclforge: `scons` builds every target of targets.yaml this
# machine's SYCL toolchains can serve; `scons -h` lists the variables.
import syclforge.scons as sf

project = sf.Project(name="{name}", version="0.1.0")
for env in project.envs():
    app = env.SyclProgram("{name}", ["main.cpp"], device=["device.cpp"])
    project.release(env, programs=app)
project.finish()
''',
    "targets.yaml": '''\
# Device targets: what each needs, not which compiler (syclforge resolves it).
version: 1
targets:
  cpu-x86:
    description: x86-64 CPUs, one native image per ISA (best first) plus SPIR-V
    vendor: x86
    device: cpu
    isas: [avx512, avx2, sse4.2]
    portable: spirv
''',
    "device.cpp": '''\
// Device code: free-function kernels (what every toolchain family builds;
// the runtime-compiler family oneapi-pip accepts only these).
#include <sycl/sycl.hpp>

namespace syclexp = sycl::ext::oneapi::experimental;

extern "C" SYCL_EXT_ONEAPI_FUNCTION_PROPERTY((syclexp::nd_range_kernel<1>))
void saxpy(float a, const float *x, float *y, unsigned long n) {
  size_t i = sycl::ext::oneapi::this_work_item::get_nd_item<1>().get_global_id(0);
  if (i < n) y[i] = a * x[i] + y[i];
}
''',
    "main.cpp": '''\
// Host code: the best device image of this binary runs the kernel.
#include <cstdio>
#include <vector>

#include <syclforge/fatbin.hpp>

int main() try {
  syclforge::Program p;              // honours SYCLFORGE_IMAGE, SYCLFORGE_VERBOSE
  sycl::queue &q = p.queue();
  const unsigned long n = 1000;
  float *x = sycl::malloc_shared<float>(n, q), *y = sycl::malloc_shared<float>(n, q);
  for (unsigned long i = 0; i < n; ++i) x[i] = float(i), y[i] = 1.0f;
  sycl::kernel k = p.kernel("saxpy");
  q.submit([&](sycl::handler &h) {
     h.set_args(2.0f, x, y, n);
     h.parallel_for(sycl::nd_range<1>{1024, 64}, k);
   }).wait();
  std::printf("image %s: y[999] = %g (want 1999)\\n", p.image().c_str(), y[999]);
  bool ok = y[999] == 1999.0f;
  sycl::free(x, q);
  sycl::free(y, q);
  return ok ? 0 : 1;
} catch (const std::exception &e) {
  std::fprintf(stderr, "error: %s\\n", e.what());
  return 2;
}
''',
    ".gitignore": "/build/\n/dist/\n/.sconsign*.dblite\n/compile_commands.json\n",
}


def init(directory):
    """Write a new project into directory (which must be empty or absent)."""
    d = Path(directory)
    if d.exists() and any(d.iterdir()):
        raise SyclforgeError(f"{d}: not empty; `syclforge init` writes a new project into an empty folder")
    name = "".join(c if c.isalnum() else "-" for c in d.resolve().name).strip("-") or "app"
    d.mkdir(parents=True, exist_ok=True)
    for rel, text in INIT_FILES.items():
        (d / rel).write_text(text.replace("{name}", name), encoding="utf-8")
    return name


# --------------------------------------------------------------------------
# The command

def main(argv=None):
    ap = argparse.ArgumentParser(prog="syclforge", description="Build SYCL code for every vendor's devices "
                                 "(the build itself: `scons` in a project; `scons -h`).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("toolchains", help="list the SYCL toolchain families found on this machine")
    p.add_argument("--json", action="store_true", help="one JSON object per family")
    p.add_argument("--top", default=".", help="the project folder (targets.yaml), default: here")
    p = sub.add_parser("explain", help="why each toolchain was accepted or refused for a target")
    p.add_argument("target", help="a target of targets.yaml, a comma list, or 'all'")
    p.add_argument("--toolchain", default=None,
                   help="pin toolchain families, as toolchain= does: NAME, NAME,NAME or all")
    p.add_argument("--top", default=".", help="the project folder (targets.yaml), default: here")
    p = sub.add_parser("verify", help="check release bundles: checksums, manifest, SBOM")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE")
    p = sub.add_parser("numerics", help="numerics reports: `numerics merge DIR...`")
    nsub = p.add_subparsers(dest="numerics_cmd", required=True)
    m = nsub.add_parser("merge", help="merge build/numerics folders of other machines into one report")
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("--out", default="build/numerics")
    m.add_argument("--plugin", default=None, help="the project's numerics plugin (default: the one the "
                                                  "reports name)")
    p = sub.add_parser("init", help="write a new project (SConstruct, targets.yaml, a kernel, main.cpp)")
    p.add_argument("dir")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "toolchains":
            print(toolchains_text(Context.load(os.path.abspath(a.top)), as_json=a.json))
        elif a.cmd == "explain":
            print(explain_text(Context.load(os.path.abspath(a.top), target=a.target, pin=a.toolchain)))
        elif a.cmd == "verify":
            return verify(a.bundles)
        elif a.cmd == "numerics":
            from syclforge import numerics
            return numerics.main(["merge", *a.dirs, "--out", a.out] + (["--plugin", a.plugin] if a.plugin else []))
        elif a.cmd == "init":
            name = init(a.dir)
            print(f"syclforge: wrote project {name!r} in {a.dir}; next: cd {a.dir} && scons")
        return 0
    except SyclforgeError as e:
        print(f"syclforge: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
