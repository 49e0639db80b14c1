"""syclforge: pure build logic (no SCons imports), unit-tested directly.

SCons glue lives in site_scons/site_tools and the SConscripts; everything here
can be imported by plain Python (tests, tools) without SCons.
"""

# The project's version: release bundles are named <name>-<version>-<target>.
__version__ = "0.1.0"
