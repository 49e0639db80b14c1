"""Toolchain resolution, Bazel style: which detected toolchain builds a target.

A target names constraints (its vendor and the images it needs: native ones
best first, then a portable one); a toolchain declares what it can produce
(its family file, narrowed by detection: a missing plugin removes a vendor).
Only toolchains of role 'sycl' are considered, in preference order: the
`preference` field of toolchains/*.yaml, lower first, ties by name. As
shipped:

    icpx (10), intel-llvm (20), acpp (30), oneapi-pip (40)

(single-source AOT compilers first, because they make native images for
GPUs ahead of time; the PyPI runtime compiler last, as the CPU toolchain
that is always there). Rules:

1. The first available toolchain that produces EVERY image of the target in
   one binary is selected.
2. If none does, the first available toolchain that serves the target in
   part is selected: it makes every NATIVE image, but leaves some out of the
   binary: natives beyond its family's max_native_per_binary (DPC++ holds one
   spir64_x86_64 image), or a portable image its family lists in not_made
   with the reason (AdaptiveCpp makes no SPIR-V). The Resolution's
   images/dropped say what it builds and the verdict says why. A toolchain
   that cannot make some native image never serves the target.
   So a complete toolchain always wins over a partial one of higher
   preference (oneapi-pip over acpp for cpu-x86); pin toolchain=NAME to
   build with the partial one.
3. Otherwise the target is skipped, and skip_reason says why each toolchain
   was refused.

Every SYCL toolchain gets a Verdict: 'accepted: ...' for the selected one,
'not selected: X preferred' for later ones that could serve, 'refused: why'
for the rest; with a pin, the others are 'not considered'. explain() prints
them, like bazel --toolchain_resolution_debug.

Imports no SCons.
"""
import difflib
from dataclasses import dataclass, field
from typing import Optional

from syclforge.errors import SyclforgeError
from syclforge.core.model import Target
from syclforge.core.toolchains import Detected


@dataclass
class Verdict:
    toolchain: str
    accepted: bool       # True only for the selected toolchain
    reason: str          # 'accepted: ...', 'not selected: ...', 'refused: ...', 'not considered: ...'

    @property
    def status(self):
        return self.reason.split(":", 1)[0]


@dataclass
class Resolution:
    target: Target
    toolchain: Optional[Detected]
    verdicts: list
    pinned: Optional[str] = None
    images: tuple = ()       # image ids the selected toolchain puts in the binary
    dropped: tuple = ()      # images of the target it leaves out of that binary
    note: Optional[str] = field(default=None, repr=False)   # why dropped
    # "" for the toolchain resolution picks unpinned (built in build/<target>/),
    # else the toolchain's name (build/<target>/<toolchain>/): several
    # toolchains of one target build side by side.
    variant: str = ""

    @property
    def build_dir(self):
        """Where this (target, toolchain) builds, relative to the top."""
        return "build/" + self.target.name + (f"/{self.variant}" if self.variant else "")

    @property
    def label(self):
        """'cpu-x86', or 'cpu-x86/acpp' for a variant (summary, bundle names)."""
        return self.target.name + (f"/{self.variant}" if self.variant else "")

    @property
    def ok(self):
        return self.toolchain is not None

    @property
    def skip_reason(self):
        """One line saying why the target cannot be built; None when ok."""
        if self.ok:
            return None
        name = self.target.name
        if self.pinned:
            why = next((v.reason for v in self.verdicts if v.toolchain == self.pinned), "")
            return f"toolchain={self.pinned} was pinned but cannot serve {name}: {_bare(why)}"
        refused = [f"{v.toolchain}: {_bare(v.reason)}" for v in self.verdicts]
        if not refused:
            return f"no toolchain can build {name}: no SYCL toolchain families are loaded"
        return f"no toolchain can build {name}: " + "; ".join(refused)


    @property
    def brief_reason(self):
        """skip_reason in a table cell: each refusal's first clause, toolchains
        with the same one grouped; `scons explain` gives the rest."""
        if self.ok:
            return None
        if self.pinned:
            why = next((v.reason for v in self.verdicts if v.toolchain == self.pinned), "")
            return f"toolchain={self.pinned} cannot serve it: {_bare(why).split(': ', 1)[0]}"
        groups = {}
        for v in self.verdicts:
            groups.setdefault(_bare(v.reason).split(": ", 1)[0], []).append(v.toolchain)
        parts = [f"{', '.join(names)}: {why}" for why, names in groups.items()]
        return "; ".join(parts) or "no SYCL toolchain families are loaded"


def _bare(reason):
    """'refused: not installed: ...' -> 'not installed: ...'."""
    return reason.split(": ", 1)[1] if reason.startswith("refused: ") else reason


def _sycl_toolchains(detected):
    return sorted((d for d in detected if d.family.role == "sycl"),
                  key=lambda d: (d.family.preference, d.name))


def resolve(target, detected, pin=None):
    """Resolve target against the detected toolchains (see the module doc).
    pin=NAME considers only that toolchain; an unknown name (or a host
    compiler) raises SyclforgeError listing the SYCL toolchains."""
    candidates = _sycl_toolchains(detected)
    if pin is not None:
        known = [d.name for d in candidates]
        if pin not in known:
            hosts = [d.name for d in detected if d.family.role != "sycl"]
            if pin in hosts:
                why = f"{pin} is a host C++ compiler, not a SYCL toolchain"
            else:
                close = difflib.get_close_matches(pin, known, n=1)
                why = "unknown toolchain" + (f" (did you mean {close[0]}?)" if close else "")
            raise SyclforgeError(f"toolchain={pin}: {why}; known SYCL toolchains: "
                                 f"{', '.join(known) or 'none'}")

    plans = {}
    for d in candidates:
        if pin is not None and d.name != pin:
            continue
        why = d.why_not(target)
        plans[d.name] = (why, d.plan(target) if why is None else None)

    def able(complete):
        return [d for d in candidates if d.name in plans and plans[d.name][0] is None
                and plans[d.name][1].complete == complete]

    full, partial = able(True), able(False)
    chosen = (full or partial or [None])[0]

    verdicts = []
    for d in candidates:
        if d.name not in plans:
            verdicts.append(Verdict(d.name, False, f"not considered: toolchain={pin} pinned"))
            continue
        why, plan = plans[d.name]
        if why is not None:
            verdicts.append(Verdict(d.name, False, f"refused: {why}"))
        elif d is chosen:
            verdicts.append(Verdict(d.name, True, "accepted: " + _builds(plan)))
        elif plan.complete or not full:
            verdicts.append(Verdict(d.name, False, f"not selected: {chosen.name} preferred"))
        else:
            verdicts.append(Verdict(
                d.name, False,
                f"not selected: {chosen.name} builds all of {', '.join(_full_ids(target))} in "
                f"one binary; {d.name} would build only {', '.join(plan.images)} "
                f"(pin toolchain={d.name} to build with it)"))
    if chosen is None:
        return Resolution(target, None, verdicts, pinned=pin)
    plan = plans[chosen.name][1]
    return Resolution(target, chosen, verdicts, pinned=pin, images=plan.images,
                      dropped=plan.dropped, note=plan.note)


def parse_pins(text, detected):
    """toolchain= as given: None (resolution picks), or a list of SYCL
    toolchain names: 'a,b', or 'all' (every available SYCL toolchain)."""
    text = (text or "").strip()
    if not text:
        return None
    if text == "all":
        return [d.name for d in _sycl_toolchains(detected) if d.available]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise SyclforgeError(f"toolchain={text}: a toolchain is named twice")
    return names


def resolve_variants(target, detected, pins, every=False):
    """One Resolution per toolchain that builds target: the resolver's pick
    with pins None; else one per pinned toolchain. Each knows its variant:
    "" for the toolchain the resolver would pick unpinned (build/<target>/),
    the toolchain's name for any other (build/<target>/<toolchain>/). With
    every=True (toolchain=all), toolchains that cannot serve the target are
    left out (unless none can: then the plain resolution says why); a
    toolchain named in a list that cannot serve it is SKIPPED with the reason."""
    default = resolve(target, detected)
    if pins is None:
        return [default]
    out = []
    for pin in pins:
        r = resolve(target, detected, pin=pin)
        if r.ok and (not default.ok or r.toolchain.name != default.toolchain.name):
            r.variant = pin
        out.append(r)
    if every:
        out = [r for r in out if r.ok] or [default]
    return out


def _full_ids(target):
    return [image.id for image in target.images]


def _builds(plan):
    text = f"builds {', '.join(plan.images)}"
    if plan.dropped:
        text += f" (leaves out {', '.join(plan.dropped)}: {plan.note})"
    return text


def explain(resolution):
    """Multi-line account of a resolution, like bazel --toolchain_resolution_debug."""
    t = resolution.target
    images = ", ".join(f"{i.id}" + (" (portable)" if i.kind == "portable" else "")
                       for i in t.images)
    lines = [f"Toolchain resolution for target {t.name} (vendor {t.vendor}, {t.device}; "
             f"images {images})"]
    if resolution.pinned:
        lines.append(f"  toolchain={resolution.pinned} pinned: no other toolchain is considered")
    width = max((len(v.toolchain) for v in resolution.verdicts), default=0)
    for v in resolution.verdicts:
        status, _, why = v.reason.partition(": ")
        lines.append(f"  {v.toolchain.ljust(width)}  {status.upper() if v.accepted else status}: {why}")
    if resolution.ok:
        d = resolution.toolchain
        lines.append(f"Selected {d.name} {d.version or ''} ({d.path}): "
                     f"images {', '.join(resolution.images)}")
        if resolution.dropped:
            lines.append(f"  not in this binary: {', '.join(resolution.dropped)} ({resolution.note})")
    else:
        lines.append(f"No toolchain selected for {resolution.target.name}: {resolution.brief_reason}")
    return "\n".join(lines)
