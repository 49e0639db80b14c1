"""The table `scons target=...` ends with: one row per target."""
from dataclasses import dataclass


@dataclass
class Row:
    target: str
    status: str          # BUILT, FAILED or SKIPPED
    toolchain: str = ""
    images: tuple = ()
    reason: str = ""


def format_summary(rows):
    """A plain-text table; SKIPPED and FAILED rows carry their reason."""
    header = ("target", "status", "toolchain", "images / reason")
    body = []
    for r in rows:
        detail = ", ".join(r.images) if r.status == "BUILT" else r.reason
        body.append((r.target, r.status, r.toolchain or "-", detail))
    widths = [max(len(x[i]) for x in [header] + body) for i in range(3)]
    lines = []
    for cells in [header] + body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[3])
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[3]))
    return "\n".join(l.rstrip() for l in lines)


def first_failure(target, failures, build_root="build"):
    """The first (path, message) of failures that lies under build/<target>/."""
    prefix = f"{build_root}/{target}/"
    for path, message in failures:
        path = path.replace("\\", "/")
        if path.startswith(prefix) or f"/{prefix}" in path:
            return path, message
    return None
