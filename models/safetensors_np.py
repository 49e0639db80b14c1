"""Read and write safetensors files with NumPy alone.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
unsigned header length N, N bytes of UTF-8 JSON, then the raw tensor bytes.
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin,
end]} (offsets relative to the end of the header, C order, little-endian);
the optional key "__metadata__" maps strings to strings.

Only what the mini-LLM needs is supported: F32, F64, F16, BF16 (read, as
float32), I32, I64. Errors name the file and the tensor.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read as one."""


def save_file(tensors: dict[str, np.ndarray], path: str | os.PathLike,
              metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> array) to ``path``, names sorted, 8-byte
    aligned header (as the reference implementation does)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        key = next((k for k, v in _DTYPES.items() if v == dt), None)
        if key is None:
            raise SafetensorsError(f"{path}: tensor '{name}': dtype {a.dtype} is not supported")
        raw = a.astype(_DTYPES[key], copy=False).tobytes()
        header[name] = {"dtype": key, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in blobs:
            f.write(raw)


def read_header(path: str | os.PathLike) -> tuple[dict, dict, int]:
    """(tensor entries, metadata, data start) of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise SafetensorsError(f"{path}: file not found")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: too short for a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise SafetensorsError(f"{path}: header length {n} does not fit the file ({size} bytes); "
                                   "not a safetensors file?")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_len = size - 8 - n
    for name, e in header.items():
        if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= set(e):
            raise SafetensorsError(f"{path}: tensor '{name}': entry needs dtype, shape and data_offsets")
        if e["dtype"] not in _DTYPES and e["dtype"] != "BF16":
            raise SafetensorsError(f"{path}: tensor '{name}': dtype {e['dtype']!r} is not supported")
        b, end = e["data_offsets"]
        itemsize = 2 if e["dtype"] == "BF16" else _DTYPES[e["dtype"]].itemsize
        want = int(np.prod(e["shape"], dtype=np.int64)) * itemsize
        if not (0 <= b <= end <= data_len) or end - b != want:
            raise SafetensorsError(f"{path}: tensor '{name}': data_offsets {e['data_offsets']} do not match "
                                   f"shape {e['shape']} x {e['dtype']} within {data_len} data bytes "
                                   "(truncated file?)")
    return header, metadata, 8 + n


def load_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """name -> array (a read-only memory map of the file; BF16 is widened to float32)."""
    header, _, start = read_header(path)
    if not header:
        return {}
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = mm[start + b:start + end]
        if e["dtype"] == "BF16":
            a = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = raw.view(_DTYPES[e["dtype"]])
        out[name] = a.reshape(e["shape"])
    return out
