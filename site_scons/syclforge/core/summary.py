"""The table `scons target=...` ends with: one row per target."""
from dataclasses import dataclass


@dataclass
class Row:
    target: str
    status: str          # BUILT, FAILED or SKIPPED
    toolchain: str = ""
    images: tuple = ()
    reason: str = ""
    note: str = ""       # BUILT: why images of the target were left out


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
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        r = rows[i - 2] if i >= 2 else None
        if r is not None and r.status == "BUILT" and r.note:
            out.append(" " * (sum(widths) + 6) + f"left out: {r.note}")
    return "\n".join(l.rstrip() for l in out)


def first_failure(build_dir, failures, inner=()):
    """The first (path, message) of failures that lies under build_dir
    (build/<target> or build/<target>/<toolchain>), but not under one of the
    inner folders (other toolchains' variants nested in build/<target>/)."""
    def under(path, d):
        prefix = d.rstrip("/") + "/"
        return path.startswith(prefix) or f"/{prefix}" in path
    for path, message in failures:
        path = path.replace("\\", "/")
        if under(path, build_dir) and not any(under(path, d) for d in inner):
            return path, message
    return None
