#!/usr/bin/env python3
"""Export the mini-LLM to GGUF (f32) for llama.cpp.

    .venv/bin/python models/export_gguf.py models/tiny-fortunes -o build/tiny-fortunes-f32.gguf

Uses the ``gguf`` package (gguf-py from the llama.cpp repository, pinned in
requirements.txt) and does what llama.cpp's convert_hf_to_gguf.py does for a
LlamaForCausalLM, minus the torch and transformers dependencies:

Metadata (architecture "llama"): general.architecture, general.name,
general.file_type = 0 (ALL_F32), llama.context_length, .embedding_length,
.block_count, .feed_forward_length, .attention.head_count,
.attention.head_count_kv, .attention.layer_norm_rms_epsilon,
.rope.freq_base, .rope.dimension_count (= head_dim), .vocab_size.

Tensors (HF name -> GGUF name), all F32:
    model.embed_tokens.weight                 token_embd.weight
    model.layers.N.input_layernorm.weight     blk.N.attn_norm.weight
    model.layers.N.self_attn.q_proj.weight    blk.N.attn_q.weight       (permuted, see below)
    model.layers.N.self_attn.k_proj.weight    blk.N.attn_k.weight       (permuted)
    model.layers.N.self_attn.v_proj.weight    blk.N.attn_v.weight
    model.layers.N.self_attn.o_proj.weight    blk.N.attn_output.weight
    model.layers.N.post_attention_layernorm   blk.N.ffn_norm.weight
    model.layers.N.mlp.gate_proj.weight       blk.N.ffn_gate.weight
    model.layers.N.mlp.up_proj.weight         blk.N.ffn_up.weight
    model.layers.N.mlp.down_proj.weight       blk.N.ffn_down.weight
    model.norm.weight                         output_norm.weight
    lm_head.weight (untied only)              output.weight
With tied embeddings there is no output.weight: llama.cpp's llama loader
then uses token_embd.weight for the output projection.

RoPE layout. Hugging Face Llama checkpoints rotate pairs (i, i + head_dim/2)
("rotate half"); llama.cpp's LLAMA_ROPE_TYPE_NORM for the llama architecture
rotates adjacent pairs (2i, 2i+1), the original Meta layout. So, as
convert_hf_to_gguf.py's LlamaModel.permute does, the rows of q_proj and
k_proj are permuted within each head: reshape [heads, 2, head_dim/2, dim],
swap axes 1 and 2, reshape back (with the key/value head count for k_proj).
Row 2i of a head then holds HF row i and row 2i+1 holds HF row i+head_dim/2.

Tokenizer (tokenizer.ggml.model = "llama", llama.cpp's SPM tokenizer):
token i < 256 is "<0xXX>" of type BYTE, except byte 0x20 which is the
NORMAL token "\u2581": llama.cpp's SPM path escapes every space of the input
to U+2581 before matching the vocabulary, and would otherwise fall back to the
three bytes E2 96 81 of that character. Every other character is not in the
vocabulary and falls back to its UTF-8 byte tokens, so llama.cpp tokenizes
exactly as models/tokenizer.py does. 256 is "<s>" and 257 "</s>" (CONTROL),
bos/eos ids set, add_bos_token true, add_eos_token false,
add_space_prefix false, all scores 0. (The "gpt2" BPE model cannot be used:
llama.cpp requires tokenizer.ggml.merges and gguf-py cannot write an empty
array.) The unknown-token id keeps llama.cpp's SPM default 0, a byte token.
Known difference: a literal U+2581 in the input becomes a space token.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
try:
    from . import reference
except ImportError:
    sys.path.insert(0, str(HERE))
    import reference  # type: ignore[no-redef]

try:
    import gguf
except ImportError:  # pragma: no cover
    sys.exit("export_gguf.py needs the gguf package: .venv/bin/pip install -r requirements.txt")

SPACE_PIECE = "\u2581"


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp adjacent-pair rows (per head)."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))


def unpermute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute_rope_rows."""
    rows = w.shape[0]
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))


def gguf_vocab(tok) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = [], [], []
    for i in range(tok.vocab_size):
        if i == 0x20:
            tokens.append(SPACE_PIECE)
            types.append(int(gguf.TokenType.NORMAL))
        elif i < 256:
            tokens.append(f"<0x{i:02X}>")
            types.append(int(gguf.TokenType.BYTE))
        elif i == tok.bos_id:
            tokens.append("<s>")
            types.append(int(gguf.TokenType.CONTROL))
        elif i == tok.eos_id:
            tokens.append("</s>")
            types.append(int(gguf.TokenType.CONTROL))
        else:
            tokens.append(f"<unused{i}>")
            types.append(int(gguf.TokenType.UNUSED))
        scores.append(0.0)
    return tokens, scores, types


def gguf_tensors(m) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array in the HF [out, in] row-major shape)."""
    c, w = m.config, m.w

    def f32(name):
        return np.ascontiguousarray(w[name], dtype=np.float32)

    out = [("token_embd.weight", f32("model.embed_tokens.weight"))]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        out += [
            (f"blk.{i}.attn_norm.weight", f32(p + "input_layernorm.weight")),
            (f"blk.{i}.attn_q.weight", permute_rope_rows(f32(p + "self_attn.q_proj.weight"), c.num_attention_heads)),
            (f"blk.{i}.attn_k.weight", permute_rope_rows(f32(p + "self_attn.k_proj.weight"), c.num_key_value_heads)),
            (f"blk.{i}.attn_v.weight", f32(p + "self_attn.v_proj.weight")),
            (f"blk.{i}.attn_output.weight", f32(p + "self_attn.o_proj.weight")),
            (f"blk.{i}.ffn_norm.weight", f32(p + "post_attention_layernorm.weight")),
            (f"blk.{i}.ffn_gate.weight", f32(p + "mlp.gate_proj.weight")),
            (f"blk.{i}.ffn_up.weight", f32(p + "mlp.up_proj.weight")),
            (f"blk.{i}.ffn_down.weight", f32(p + "mlp.down_proj.weight")),
        ]
    out.append(("output_norm.weight", f32("model.norm.weight")))
    if not c.tie_word_embeddings:
        out.append(("output.weight", f32("lm_head.weight")))
    return [(n, np.ascontiguousarray(a)) for n, a in out]


def export(model_dir, out_path, name: str | None = None) -> Path:
    """Write model_dir as an f32 GGUF at out_path (via a temporary file in the
    same directory, renamed on success). Returns out_path."""
    m = reference.load(model_dir)
    c, tok = m.config, m.tokenizer
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        wr = gguf.GGUFWriter(tmp, arch="llama")
        wr.add_name(name or Path(model_dir).resolve().name)
        wr.add_description("syclforge mini-LLM: byte-level Llama trained on Debian fortune cookies")
        wr.add_file_type(gguf.LlamaFileType.ALL_F32)
        wr.add_context_length(c.max_position_embeddings)
        wr.add_embedding_length(c.hidden_size)
        wr.add_block_count(c.num_hidden_layers)
        wr.add_feed_forward_length(c.intermediate_size)
        wr.add_head_count(c.num_attention_heads)
        wr.add_head_count_kv(c.num_key_value_heads)
        wr.add_layer_norm_rms_eps(c.rms_norm_eps)
        wr.add_rope_freq_base(c.rope_theta)
        wr.add_rope_dimension_count(c.head_dim)
        wr.add_vocab_size(c.vocab_size)

        tokens, scores, types = gguf_vocab(tok)
        wr.add_tokenizer_model("llama")
        wr.add_token_list(tokens)
        wr.add_token_scores(scores)
        wr.add_token_types(types)
        wr.add_bos_token_id(tok.bos_id)
        wr.add_eos_token_id(tok.eos_id)
        wr.add_add_bos_token(True)
        wr.add_add_eos_token(False)
        wr.add_add_space_prefix(False)

        for tname, arr in gguf_tensors(m):
            wr.add_tensor(tname, arr)
        wr.write_header_to_file()
        wr.write_kv_data_to_file()
        wr.write_tensors_to_file()
        wr.close()
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Export the mini-LLM to an f32 GGUF for llama.cpp.")
    ap.add_argument("model_dir", nargs="?", default=str(HERE / "tiny-fortunes"))
    ap.add_argument("-o", "--out", default=None, help="output .gguf (default: build/<model>-f32.gguf)")
    ap.add_argument("--name", default=None, help="general.name (default: the directory name)")
    args = ap.parse_args(argv)
    out = args.out or str(HERE.parent / "build" / f"{Path(args.model_dir).resolve().name}-f32.gguf")
    try:
        p = export(args.model_dir, out, args.name)
    except reference.ModelFileError as e:
        print(f"export_gguf.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {p} ({p.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
