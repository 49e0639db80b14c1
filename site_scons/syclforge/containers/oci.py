"""Deterministic container image assembly: layer tarballs and a docker-archive.

A Dockerfile build on the engine we have (20.10) stamps the build time into
the image, so two builds of the same inputs get different image IDs. Here an
image is assembled instead: every layer is a tar written in a fixed way
(entries sorted by path, mtime fixed to SOURCE_DATE_EPOCH, numeric owners,
no user/group names, permission bits only, no xattrs), the image config is
canonical JSON with a fixed `created`, and `docker load` of the archive keeps
the image ID = sha256 of that config. Same inputs, same bytes, same ID.

Pure Python, no SCons and no Docker import: unit-tested directly.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from datetime import datetime, timezone

# Read and hash in 1 MiB pieces.
CHUNK = 1 << 20


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes (sha256) and counts what goes through."""

    def __init__(self, raw):
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.size += len(b)
        self.raw.write(b)
        return len(b)


def _sort_key(path: str) -> bytes:
    """Entries are ordered by the bytes of their path (as `tar --sort=name`)."""
    return path.encode("utf-8", "surrogateescape")


def rfc3339(epoch: int) -> str:
    """SOURCE_DATE_EPOCH as the RFC 3339 UTC time OCI's `created` uses."""
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(obj) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class LayerWriter:
    """Write one layer tar whose bytes depend only on what is added.

    Entries are buffered as (path, source) and written sorted by path on
    close(), so the order of add_* calls does not matter either. Every entry
    gets mtime = epoch, uname/gname = "", and the owner given (or found on
    disk); modes keep the permission bits (setuid included) only.
    """

    def __init__(self, path, epoch: int):
        self.path = str(path)
        self.epoch = int(epoch)
        self._entries = {}          # arcname -> (TarInfo, source path or bytes)
        self.diff_id = None
        self.size = None

    # -- adding ------------------------------------------------------------

    def add_bytes(self, arcname, data: bytes, *, mode=0o644, uid=0, gid=0):
        info = self._info(arcname, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        self._entries[info.name] = (info, bytes(data))

    def add_dir(self, arcname, *, mode=0o755, uid=0, gid=0):
        info = self._info(arcname, tarfile.DIRTYPE, mode, uid, gid)
        self._entries[info.name] = (info, None)

    def add_symlink(self, arcname, target, *, uid=0, gid=0):
        info = self._info(arcname, tarfile.SYMTYPE, 0o777, uid, gid)
        info.linkname = target
        self._entries[info.name] = (info, None)

    def add_tree(self, root, arcroot="", *, exclude=None, owner=None):
        """Add everything under directory root as arcroot/...

        exclude(relpath) -> True drops an entry (and, for a directory, what
        is below it); relpath uses '/' and has no leading './'. owner=(uid,
        gid) overrides the owners found on disk. Hard links inside the tree
        stay hard links (to the first path in sorted order); sockets are
        dropped; device nodes and fifos are kept as such.
        """
        root = os.fspath(root)
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            keep = []
            for d in sorted(dirnames):
                rel = f"{rel_dir}/{d}" if rel_dir else d
                if exclude and exclude(rel):
                    continue
                full = os.path.join(dirpath, d)
                if os.path.islink(full):      # os.walk lists dir symlinks as dirs
                    found.append((rel, full))
                    continue
                keep.append(d)
                found.append((rel, full))
            dirnames[:] = keep
            for f in filenames:
                rel = f"{rel_dir}/{f}" if rel_dir else f
                if exclude and exclude(rel):
                    continue
                found.append((rel, os.path.join(dirpath, f)))
        # Hard links: the first path (in sorted order) carries the data.
        first_of_inode = {}
        for rel, full in sorted(found, key=lambda e: _sort_key(e[0])):
            st = os.lstat(full)
            arc = f"{arcroot.strip('/')}/{rel}" if arcroot.strip("/") else rel
            uid, gid = owner if owner else (st.st_uid, st.st_gid)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                self.add_dir(arc, mode=mode, uid=uid, gid=gid)
            elif stat.S_ISLNK(st.st_mode):
                self.add_symlink(arc, os.readlink(full), uid=uid, gid=gid)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in first_of_inode:
                    info = self._info(arc, tarfile.LNKTYPE, mode, uid, gid)
                    info.linkname = first_of_inode[key]
                    self._entries[info.name] = (info, None)
                    continue
                if st.st_nlink > 1:
                    first_of_inode[key] = self._clean(arc)
                info = self._info(arc, tarfile.REGTYPE, mode, uid, gid)
                info.size = st.st_size
                self._entries[info.name] = (info, full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info = self._info(arc, kind, mode, uid, gid)
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self._entries[info.name] = (info, None)
            elif stat.S_ISFIFO(st.st_mode):
                info = self._info(arc, tarfile.FIFOTYPE, mode, uid, gid)
                self._entries[info.name] = (info, None)
            # sockets: dropped (they cannot live in an image)

    # -- writing -----------------------------------------------------------

    def close(self):
        """Write the tar (to path + '.tmp', then rename); return diff_id,
        the 'sha256:<hex>' of the uncompressed tar, as image configs name it."""
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as raw:
            hw = _HashingWriter(raw)
            with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT,
                              encoding="utf-8") as tar:
                for name in sorted(self._entries, key=_sort_key):
                    info, src = self._entries[name]
                    if info.type == tarfile.REGTYPE:
                        if isinstance(src, bytes):
                            tar.addfile(info, io.BytesIO(src))
                        else:
                            with open(src, "rb") as f:
                                tar.addfile(info, f)
                    else:
                        tar.addfile(info)
        os.replace(tmp, self.path)
        self.diff_id = "sha256:" + hw.sha.hexdigest()
        self.size = hw.size
        return self.diff_id

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _clean(arcname):
        name = arcname.replace(os.sep, "/").lstrip("/")
        while name.startswith("./"):
            name = name[2:]
        return name.rstrip("/")

    def _info(self, arcname, kind, mode, uid, gid):
        name = self._clean(arcname)
        if not name or name == ".":
            raise ValueError("a layer entry needs a path below the root")
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode & 0o7777
        info.uid, info.gid = int(uid), int(gid)
        info.uname = info.gname = ""
        info.mtime = self.epoch
        return info


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def image_config(diff_ids, *, created: str, config: dict, history=None,
                 architecture="amd64", os_name="linux") -> bytes:
    """The image config JSON (canonical bytes). Its sha256 is the image ID.

    history: one {'created_by': ..., 'comment': ...} per layer, in order;
    each gets `created` so the whole stays reproducible.
    """
    hist = []
    for i, _ in enumerate(diff_ids):
        entry = dict((history or [{}] * len(diff_ids))[i])
        entry["created"] = created
        hist.append(entry)
    doc = {
        "architecture": architecture,
        "os": os_name,
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": hist,
    }
    return canonical_json(doc)


def image_id(config_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def _tar_member(name, size, epoch, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, int(epoch)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def iter_docker_archive(config_bytes: bytes, layer_paths, repo_tags=(), *, epoch=0,
                        chunk=CHUNK):
    """Yield the bytes of a docker-archive (what `docker save` writes and
    `docker load` reads): <diff>/layer.tar per layer, <id>.json, manifest.json.

    The tar is written by hand (header, data, padding) so that layer files
    are streamed in chunks: nothing as large as a layer is held in memory.
    layer_paths are uncompressed layer tars, bottom first.
    """
    cfg_hex = hashlib.sha256(config_bytes).hexdigest()
    diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    if len(diff_ids) != len(layer_paths):
        raise ValueError(f"config names {len(diff_ids)} layers, {len(layer_paths)} given")
    layer_names = [f"{d.split(':', 1)[1]}/layer.tar" for d in diff_ids]
    manifest = canonical_json([{"Config": f"{cfg_hex}.json",
                                "RepoTags": list(repo_tags),
                                "Layers": layer_names}])
    total = 0

    def header(info):
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def padding(size):
        return b"\0" * (-size % tarfile.BLOCKSIZE)

    seen_dirs = set()
    for name, path in zip(layer_names, layer_paths):
        d = name.split("/")[0]
        if d not in seen_dirs:
            seen_dirs.add(d)
            info = _tar_member(d, 0, epoch, 0o755)
            info.type = tarfile.DIRTYPE
            piece = header(info)
            total += len(piece)
            yield piece
        size = os.path.getsize(path)
        piece = header(_tar_member(name, size, epoch))
        total += len(piece)
        yield piece
        copied = 0
        with open(path, "rb") as f:
            while True:
                block = f.read(chunk)
                if not block:
                    break
                copied += len(block)
                yield block
        if copied != size:
            raise OSError(f"{path} changed size while being read")
        piece = padding(size)
        total += size + len(piece)
        yield piece
    for name, data in ((f"{cfg_hex}.json", config_bytes), ("manifest.json", manifest)):
        piece = header(_tar_member(name, len(data), epoch)) + data + padding(len(data))
        total += len(piece)
        yield piece
    # End of archive: two zero blocks, then zeros up to a whole record, as
    # tarfile (and GNU tar) write it.
    end = 2 * tarfile.BLOCKSIZE
    end += -(total + end) % tarfile.RECORDSIZE
    yield b"\0" * end


def write_docker_archive(out_path, config_bytes, layer_paths, repo_tags=(), *, epoch=0):
    """iter_docker_archive into a file (temporary name, then renamed)."""
    tmp = str(out_path) + ".tmp"
    with open(tmp, "wb") as f:
        for piece in iter_docker_archive(config_bytes, layer_paths, repo_tags, epoch=epoch):
            f.write(piece)
    os.replace(tmp, out_path)
    return str(out_path)
