"""The shipped device targets as plain Target objects, for unit tests that
must not depend on targets.yaml's parsing (test_config checks that the file
yields exactly these)."""
from syclforge.core.model import Image, Target

CPU_X86 = Target("cpu-x86", "x86 CPUs", "x86", "cpu",
                 (Image("avx512", "native"), Image("avx2", "native"),
                  Image("sse4.2", "native"), Image("spirv", "portable")))
INTEL_GPU = Target("intel-gpu", "Intel GPUs", "intel", "gpu",
                   (Image("pvc", "native"), Image("dg2", "native"), Image("spirv", "portable")))
NVIDIA = Target("nvidia", "NVIDIA GPUs", "nvidia", "gpu",
                (Image("sm_90", "native"), Image("sm_80", "native"), Image("ptx", "portable")))
AMD = Target("amd", "AMD GPUs", "amd", "gpu", (Image("gfx942", "native"), Image("gfx90a", "native")))
TARGETS = [CPU_X86, INTEL_GPU, NVIDIA, AMD]
