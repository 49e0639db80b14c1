"""The one source fix AdaptiveCpp 24.06 (develop 49544a48) needs for its
CUDA flow with clang 19 (../shared/ENVIRONMENT.md, "SYCL on an NVIDIA H200:
AdaptiveCpp's CUDA flow"); ./install.sh --acpp-cuda applies it to the
extracted source before configuring.

include/hipSYCL/sycl/libkernel/group.hpp: group::operator== reads
_group_id, _local_range and _num_groups, which do not exist when
HIPSYCL_ONDEMAND_ITERATION_SPACE_INFO is defined (the cuda flow); clang 19
rejects it ("no member named '_num_groups'"). Under that macro it now
compares get_group_id(), get_local_range() and get_group_range().

    python3 patch_group_eq.py SOURCE_ROOT

Idempotent (an already patched file is left as it is); fails, naming the
file, when neither the original nor the patched text is there.
"""
import sys
from pathlib import Path

REL = "include/hipSYCL/sycl/libkernel/group.hpp"

ORIGINAL = """\
  friend bool operator==(const group<Dimensions>& lhs, const group<Dimensions>& rhs){
    return lhs._group_id == rhs._group_id &&
           lhs._local_range == rhs._local_range &&
           lhs._num_groups == rhs._num_groups;
  }
"""

PATCHED = """\
  friend bool operator==(const group<Dimensions>& lhs, const group<Dimensions>& rhs){
#ifdef HIPSYCL_ONDEMAND_ITERATION_SPACE_INFO
    // syclforge (toolchains/acpp-cuda/patch_group_eq.py): no stored members here
    return lhs.get_group_id() == rhs.get_group_id() &&
           lhs.get_local_range() == rhs.get_local_range() &&
           lhs.get_group_range() == rhs.get_group_range();
#else
    return lhs._group_id == rhs._group_id &&
           lhs._local_range == rhs._local_range &&
           lhs._num_groups == rhs._num_groups;
#endif
  }
"""


def patch(root):
    path = Path(root) / REL
    try:
        text = path.read_text()
    except OSError as e:
        raise SystemExit(f"patch_group_eq.py: cannot read {path}: {e.strerror}")
    if PATCHED in text:
        return "already patched"
    if text.count(ORIGINAL) != 1:
        raise SystemExit(f"patch_group_eq.py: {path}: group::operator== is not as in AdaptiveCpp "
                         f"24.06 (found {text.count(ORIGINAL)} times); the fix does not apply")
    path.write_text(text.replace(ORIGINAL, PATCHED))
    return "patched"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: patch_group_eq.py SOURCE_ROOT")
    print(f"patch_group_eq.py: {REL}: {patch(sys.argv[1])}")
