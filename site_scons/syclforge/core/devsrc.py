"""Device sources for the runtime compiler (oneapi-pip's sf-devc).

The runtime compiler reads no files: every header a kernel source includes
must be handed to it as (name, text), the name as the compiler will look it
up. It resolves a quoted include against the including file's own (virtual)
folder, so a header found as "ops/gemm.hpp" that includes "common.hpp" is
looked up as "ops/common.hpp". This walks the same way over real folders:
the source's folder, then the include path (CPPPATH).
"""
import os
import re

_QUOTED = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def virtual_includes(source, include_dirs):
    """[(virtual name, real path)] of every header that `source` reaches
    through quoted includes, each once, in the order first met. Angle
    includes (<sycl/sycl.hpp>) belong to the compiler and are left alone;
    a quoted include found nowhere is left for the compiler to report."""
    found, seen = [], set()
    dirs = [os.path.dirname(os.path.abspath(source))] + [os.path.abspath(d) for d in include_dirs]

    def walk(path, vdir):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        here = os.path.dirname(path)
        for inc in _QUOTED.findall(text):
            # Relative to the including file first (virtual name beside it),
            # then each include folder (virtual name as written).
            cands = [(os.path.join(here, inc), os.path.normpath(os.path.join(vdir, inc)) if vdir else inc)]
            cands += [(os.path.join(d, inc), inc) for d in dirs]
            for real, vname in cands:
                if os.path.isfile(real):
                    vname = vname.replace(os.sep, "/")
                    if vname not in seen:
                        seen.add(vname)
                        found.append((vname, os.path.normpath(real)))
                        walk(real, os.path.dirname(vname))
                    break

    walk(os.path.abspath(source), "")
    return found
