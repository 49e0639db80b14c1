"""Plain data shared by config, detection and resolution."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Image:
    """One device image of a target: native code for an ISA/arch, or a
    portable IR (spirv, ptx) that a runtime finishes for the device."""
    id: str          # what SYCLFORGE_IMAGE names: 'avx2', 'sm_90', 'spirv'
    kind: str        # 'native' or 'portable'


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    vendor: str      # 'x86', 'intel', 'nvidia', 'amd'
    device: str      # 'cpu' or 'gpu'
    images: tuple    # tuple[Image]: native ones best first, then portable
    line: int = 0    # where it is declared in targets.yaml

    @property
    def native(self):
        return [i.id for i in self.images if i.kind == "native"]

    @property
    def portable(self):
        return [i.id for i in self.images if i.kind == "portable"]
