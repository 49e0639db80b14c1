"""syclforge: a Bazel-style build orchestrator on SCons for SYCL code.

core/ (targets, detection, resolution, command lines), release/,
containers/, numerics.py and cli.py are plain Python that imports no SCons
and is unit-tested directly; scons/ is the thin SCons layer (Project and the
family tools) that a project's SConstruct uses; runtime/ is the C++ built
into users' binaries. README.md, "Use syclforge in your project".
"""

# The project's version: release bundles are named <name>-<version>-<target>.
__version__ = "0.1.0"
