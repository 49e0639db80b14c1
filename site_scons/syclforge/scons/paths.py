"""Where syclforge's own files are: its SCons tools, the fat-binary runtime
(C++) and the oneapi-pip helper programs, and the toolchain family files.

In a checkout the families are the top-level toolchains/ folder; an
installed distribution carries them as package data (pyproject.toml maps
toolchains/ to syclforge/families). Imports no SCons.
"""
import os

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(PACKAGE, "scons", "tools")
RUNTIME = os.path.join(PACKAGE, "runtime")
RUNTIME_INCLUDE = os.path.join(RUNTIME, "include")


def families_dir():
    """The toolchain family files: the package's copy when installed, else
    the checkout's toolchains/ (site_scons/syclforge -> ../../toolchains)."""
    for cand in (os.path.join(PACKAGE, "families"),
                 os.path.join(os.path.dirname(os.path.dirname(PACKAGE)), "toolchains")):
        if os.path.isfile(os.path.join(cand, "family.schema.json")):
            return cand
    raise FileNotFoundError(f"syclforge's toolchain family files are missing (looked in {PACKAGE}/families "
                            "and the checkout's toolchains/): reinstall syclforge")


def helper(name):
    """A oneapi-pip helper program's source (sf-devc.cpp, sf-aot.cpp)."""
    return os.path.join(families_dir(), "oneapi_pip", name)
