"""Byte-level tokenizer of the mini-LLM.

Token ids 0..255 are the bytes of the UTF-8 text, 256 is BOS (begin of a
text), 257 is EOS (end of a text); the vocabulary has 258 entries. There is
nothing to learn: any byte string round-trips exactly.

It is saved beside the weights as ``tokenizer.json``, small enough for a C++
program to read with any JSON parser::

    {"type": "byte-level", "vocab_size": 258, "bos_id": 256, "eos_id": 257,
     "byte_offset": 0, "num_bytes": 256, "version": 1}

Token ``i`` with ``byte_offset <= i < byte_offset + num_bytes`` stands for
byte ``i - byte_offset``; here the offset is 0, so token ``i < 256`` is byte
``i``. Ids other than those and BOS/EOS do not occur.

No third-party imports: the NumPy reference, the tests and the exporters all
use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TYPE = "byte-level"
FORMAT_VERSION = 1
NUM_BYTES = 256
BOS_ID = 256
EOS_ID = 257
VOCAB_SIZE = 258
FILENAME = "tokenizer.json"


class TokenizerError(ValueError):
    """A tokenizer.json that is missing, malformed or inconsistent."""


class ByteTokenizer:
    def __init__(self, bos_id: int = BOS_ID, eos_id: int = EOS_ID,
                 vocab_size: int = VOCAB_SIZE):
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.vocab_size = vocab_size

    # -- text <-> ids ------------------------------------------------------
    def encode(self, text: str | bytes, bos: bool = True, eos: bool = False) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids = list(data)
        if bos:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode_bytes(self, ids) -> bytes:
        """The bytes of the byte tokens of ``ids``; BOS/EOS are dropped."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if 0 <= i < NUM_BYTES:
                out.append(i)
            elif i in (self.bos_id, self.eos_id):
                continue
            else:
                raise ValueError(f"token id {i} is outside the vocabulary (0..{self.vocab_size - 1})")
        return bytes(out)

    def decode(self, ids) -> str:
        # A model may stop in the middle of a multi-byte UTF-8 sequence.
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_text(self, i: int) -> str:
        """A printable name for one token (for dumps and GGUF vocabularies)."""
        if i == self.bos_id:
            return "<s>"
        if i == self.eos_id:
            return "</s>"
        return f"<0x{i:02X}>"

    # -- file --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "type": TYPE,
            "version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "byte_offset": 0,
            "num_bytes": NUM_BYTES,
        }

    def save(self, model_dir: str | os.PathLike) -> Path:
        path = Path(model_dir) / FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> "ByteTokenizer":
        path = Path(model_dir)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise TokenizerError(f"{path}: file not found (the byte-level tokenizer description)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise TokenizerError(f"{path}: not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise TokenizerError(f"{path}: expected a JSON object")
        for key in ("type", "vocab_size", "bos_id", "eos_id"):
            if key not in d:
                raise TokenizerError(f"{path}: missing key '{key}'")
        if d["type"] != TYPE:
            raise TokenizerError(f"{path}: key 'type' is {d['type']!r}, only {TYPE!r} is supported")
        for key in ("vocab_size", "bos_id", "eos_id"):
            if not isinstance(d[key], int) or isinstance(d[key], bool):
                raise TokenizerError(f"{path}: key '{key}' must be an integer, got {d[key]!r}")
        if d.get("byte_offset", 0) != 0 or d.get("num_bytes", NUM_BYTES) != NUM_BYTES:
            raise TokenizerError(f"{path}: keys 'byte_offset'/'num_bytes' must be 0/{NUM_BYTES}")
        vs, bos, eos = d["vocab_size"], d["bos_id"], d["eos_id"]
        for key, v in (("bos_id", bos), ("eos_id", eos)):
            if not NUM_BYTES <= v < vs:
                raise TokenizerError(f"{path}: key '{key}' = {v} must lie in {NUM_BYTES}..{vs - 1} "
                                     f"(after the byte tokens, inside vocab_size {vs})")
        if bos == eos:
            raise TokenizerError(f"{path}: keys 'bos_id' and 'eos_id' are both {bos}")
        return cls(bos_id=bos, eos_id=eos, vocab_size=vs)
