"""Make site_scons importable so tests can `from syclforge import ...`
without SCons (the modules there import no SCons)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "site_scons"))
