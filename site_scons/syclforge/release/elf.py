"""Just enough ELF to relocate a release bundle: read a 64-bit little-endian
file's dynamic section (NEEDED, SONAME, RPATH/RUNPATH, the versions it needs)
and rewrite its RPATH/RUNPATH and NEEDED strings in place.

In-place means the new string must fit where the old one was (it is padded
with NULs), and no other reference into the dynamic string table may point
inside the old string (linkers share string tails): both are checked, and
a rewrite that cannot be done safely raises ElfError. This is what chrpath
does; nothing moves, so file offsets stay valid.

Imports no SCons.
"""
import struct

DT_NULL, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 14, 15, 29
_STRING_TAGS = {DT_NEEDED: "NEEDED", DT_SONAME: "SONAME", DT_RPATH: "RPATH", DT_RUNPATH: "RUNPATH",
                0x7ffffffd: "AUXILIARY", 0x7fffffff: "FILTER"}
SHT_DYNAMIC, SHT_DYNSYM = 6, 11
SHT_GNU_VERDEF, SHT_GNU_VERNEED = 0x6ffffffd, 0x6ffffffe
_MACHINES = {3: "x86", 62: "x86-64", 183: "aarch64", 243: "riscv64", 20: "ppc", 21: "ppc64"}


class ElfError(ValueError):
    pass


def is_elf(data):
    return data[:4] == b"\x7fELF"


def machine_name(data):
    """'x86-64' etc. for an ELF header (32 or 64 bit), None if not ELF."""
    if not is_elf(data) or len(data) < 20:
        return None
    endian = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(endian + "H", data, 18)
    return _MACHINES.get(machine, f"machine {machine}")


class Elf:
    """A parsed ELF64 LE image held in a bytearray (edits change .data)."""

    def __init__(self, data, name="file"):
        self.name = name
        self.data = bytearray(data)
        d = self.data
        if not is_elf(d):
            raise ElfError(f"{name}: not an ELF file")
        if d[4] != 2 or d[5] != 1:
            raise ElfError(f"{name}: only 64-bit little-endian ELF is supported")
        try:
            (_, self.type, self.machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
             _) = struct.unpack_from("<16sHHIQQQIHHHHHH", d, 0)
            self.sections = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize)
                             for i in range(shnum)]
        except struct.error:
            raise ElfError(f"{name}: truncated ELF header or section table") from None
        self.dynamic = None
        self.entries = []           # [(tag, value, file offset of the entry)]
        dyn = [s for s in self.sections if s[1] == SHT_DYNAMIC]
        if not dyn:
            return                  # static: nothing to relocate
        self.dynamic = dyn[0]
        strsec = self.sections[self.dynamic[6]]
        self.dynstr = (strsec[4], strsec[5])            # offset, size
        off, size = self.dynamic[4], self.dynamic[5]
        for pos in range(off, off + size, 16):
            tag, val = struct.unpack_from("<qQ", d, pos)
            if tag == DT_NULL:
                break
            self.entries.append((tag, val, pos))

    # -- reading -----------------------------------------------------------

    def _string(self, index):
        start = self.dynstr[0] + index
        end = self.data.index(b"\0", start)
        return self.data[start:end].decode("utf-8", "surrogateescape")

    def strings(self, tag):
        return [self._string(v) for t, v, _ in self.entries if t == tag]

    @property
    def needed(self):
        return self.strings(DT_NEEDED)

    @property
    def soname(self):
        s = self.strings(DT_SONAME)
        return s[0] if s else None

    @property
    def rpath(self):
        """(tag name, value) of RPATH or RUNPATH, or None."""
        for tag in (DT_RPATH, DT_RUNPATH):
            s = self.strings(tag)
            if s:
                return _STRING_TAGS[tag], s[0]
        return None

    def version_needs(self):
        """{library: [version names]} from .gnu.version_r, e.g.
        {'libc.so.6': ['GLIBC_2.34', ...]}."""
        out = {}
        for sec in self.sections:
            if sec[1] != SHT_GNU_VERNEED:
                continue
            pos = sec[4]
            for _ in range(sec[7]):                       # sh_info: entry count
                _, cnt, file_, aux, nxt = struct.unpack_from("<HHIII", self.data, pos)
                names, apos = [], pos + aux
                for _ in range(cnt):
                    _, _, _, name, anext = struct.unpack_from("<IHHII", self.data, apos)
                    names.append(self._string(name))
                    apos += anext
                out[self._string(file_)] = sorted(names, key=_version_key)
                if not nxt:
                    break
                pos += nxt
        return out

    def _references(self):
        """Every offset into .dynstr that something in the file holds."""
        refs = [v for t, v, _ in self.entries if t in _STRING_TAGS]
        strtab_index = self.dynamic[6]
        for sec in self.sections:
            if sec[6] != strtab_index:
                continue
            off, size, entsize = sec[4], sec[5], sec[9]
            if sec[1] == SHT_DYNSYM:
                refs += [struct.unpack_from("<I", self.data, p)[0]
                         for p in range(off, off + size, entsize or 24)]
            elif sec[1] == SHT_GNU_VERNEED:
                pos = off
                for _ in range(sec[7]):
                    _, cnt, file_, aux, nxt = struct.unpack_from("<HHIII", self.data, pos)
                    refs.append(file_)
                    apos = pos + aux
                    for _ in range(cnt):
                        _, _, _, name, anext = struct.unpack_from("<IHHII", self.data, apos)
                        refs.append(name)
                        apos += anext
                    if not nxt:
                        break
                    pos += nxt
            elif sec[1] == SHT_GNU_VERDEF:
                pos = off
                for _ in range(sec[7]):
                    _, _, _, cnt, _, aux, nxt = struct.unpack_from("<HHHHIII", self.data, pos)
                    apos = pos + aux
                    for _ in range(cnt):
                        name, anext = struct.unpack_from("<II", self.data, apos)
                        refs.append(name)
                        apos += anext
                    if not nxt:
                        break
                    pos += nxt
        return refs

    # -- editing -----------------------------------------------------------

    def _replace_string(self, index, new, what):
        old = self._string(index)
        raw = new.encode()
        if len(raw) > len(old.encode()):
            raise ElfError(f"{self.name}: new {what} {new!r} is longer than the old {old!r}")
        inside = [r for r in self._references() if index < r <= index + len(old.encode())]
        if inside:
            raise ElfError(f"{self.name}: the {what} string {old!r} shares its bytes with another "
                           f"dynamic string; cannot rewrite it in place")
        start = self.dynstr[0] + index
        self.data[start:start + len(old.encode()) + 1] = raw + b"\0" * (len(old.encode()) - len(raw) + 1)

    def set_rpath(self, value):
        """Rewrite the RPATH or RUNPATH (the kind stays); raises if none."""
        for t, v, _ in self.entries:
            if t in (DT_RPATH, DT_RUNPATH):
                self._replace_string(v, value, _STRING_TAGS[t])
                return
        raise ElfError(f"{self.name}: has no RPATH or RUNPATH to rewrite")

    def set_needed(self, old, new):
        for t, v, _ in self.entries:
            if t == DT_NEEDED and self._string(v) == old:
                self._replace_string(v, new, "NEEDED")
                return
        raise ElfError(f"{self.name}: needs no {old!r}")


def _version_key(name):
    head, _, tail = name.partition("_")
    parts = []
    for p in tail.split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return head, parts


def newest_versions(needs):
    """{'GLIBC': 'GLIBC_2.34', 'GLIBCXX': 'GLIBCXX_3.4.30', ...}: the newest
    symbol version asked for per family, i.e. the oldest system that runs it."""
    best = {}
    for names in needs.values():
        for n in names:
            fam = n.partition("_")[0]
            if not n.partition("_")[2][:1].isdigit():
                continue
            if fam not in best or _version_key(n) > _version_key(best[fam]):
                best[fam] = n
    return dict(sorted(best.items()))
