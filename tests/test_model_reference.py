"""The mini-LLM's NumPy float64 reference (models/reference.py), its files
(models/tiny-fortunes/), the byte-level tokenizer and the GGUF export.

Torch is not needed for most: the comparison with PyTorch uses the logits
that models/train.py saved from its own float32 forward (check_logits.npy).
Where torch is installed (`./install.sh --hf`, as .ci/run does), the trainer's
model itself (models/train.py) is run in float64 against reference.py too. The
independent reference, transformers' LlamaForCausalLM, is
tests/test_hf_reference.py."""
import json
import math
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models import reference, safetensors_np  # noqa: E402
from models.reference import ModelFileError  # noqa: E402
from models.tokenizer import ByteTokenizer  # noqa: E402

MODEL = REPO / "models" / "tiny-fortunes"
PROMPTS = ["The ", "Q: What do you call"]


@pytest.fixture(scope="module")
def model():
    return reference.load(MODEL)


@pytest.fixture(scope="module")
def check():
    return json.loads((MODEL / "check.json").read_text())


def copy_model(tmp_path) -> Path:
    dst = tmp_path / "m"
    shutil.copytree(MODEL, dst)
    return dst


def edit_config(d: Path, **changes):
    cfg = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is KeyError:
            del cfg[k]
        else:
            cfg[k] = v
    (d / "config.json").write_text(json.dumps(cfg))


def tiny_model_dir(tmp_path, tied: bool, seed: int = 0) -> Path:
    """A random 2-layer model written with the same file formats."""
    rng = np.random.default_rng(seed)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
           "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "vocab_size": 258, "tie_word_embeddings": tied, "bos_token_id": 256,
           "eos_token_id": 257, "hidden_act": "silu", "torch_dtype": "float32"}
    d = tmp_path / f"tiny-{'tied' if tied else 'untied'}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    ByteTokenizer().save(d)
    c = reference.read_config(d / "config.json")
    tensors = {name: (rng.standard_normal(shape) * 0.3 + (1.0 if len(shape) == 1 else 0.0)).astype(np.float32)
               for name, shape in reference.expected_shapes(c).items()}
    safetensors_np.save_file(tensors, d / "model.safetensors")
    return d


# ---------------------------------------------------------------------------
# the committed model
# ---------------------------------------------------------------------------

def test_committed_model_files(model):
    c = model.config
    cfg = json.loads((MODEL / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    assert cfg["hidden_act"] == "silu" and cfg["torch_dtype"] == "float32"
    assert c.vocab_size == 258 and c.bos_token_id == 256 and c.eos_token_id == 257
    assert c.num_attention_heads % c.num_key_value_heads == 0 and c.num_key_value_heads < c.num_attention_heads
    n_params = sum(a.size for a in model.w.values())
    assert 3_000_000 <= n_params <= 10_000_000
    assert (MODEL / "model.safetensors").stat().st_size < 24 * 1024 * 1024  # "about 20 MB"
    header, _, _ = safetensors_np.read_header(MODEL / "model.safetensors")
    assert {e["dtype"] for e in header.values()} == {"F32"}
    assert set(header) == set(reference.expected_shapes(c))
    tok = json.loads((MODEL / "tokenizer.json").read_text())
    assert tok["type"] == "byte-level" and tok["vocab_size"] == 258
    assert (tok["bos_id"], tok["eos_id"]) == (256, 257)


def test_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "Fortune: caf\u00e9 \u2603 \U0001F600\n\tend"
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == 256 and ids[-1] == 257 and all(0 <= i < 256 for i in ids[1:-1])
    assert ids[1:-1] == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.decode([0xE2, 0x98]) == "\ufffd"  # a cut multi-byte sequence does not raise
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([258])


def printable(text: str) -> bool:
    return all(ch in "\n\t" or unicodedata.category(ch)[0] != "C" for ch in text) and "\ufffd" not in text


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_is_deterministic_and_printable(model, prompt):
    a = model.generate(prompt, 64)
    b = model.generate(prompt, 64)
    assert a.tokens == b.tokens and a.text == b.text
    assert a.prompt_tokens == [256] + list(prompt.encode())
    assert 0 < len(a.tokens) <= 64 and a.stop in ("eos", "length")
    assert a.stop == "length" or a.tokens[-1] == 257
    assert printable(a.text), repr(a.text)
    words = [w for w in a.text.split() if w.isalpha()]
    assert len(words) >= 3, f"no words in {a.text!r}"


def test_sampling_is_seeded(model):
    a = model.generate("The ", 32, temperature=0.8, top_k=20, seed=7)
    b = model.generate("The ", 32, temperature=0.8, top_k=20, seed=7)
    assert a.tokens == b.tokens
    with pytest.raises(ValueError):
        model.generate("x", 4, temperature=-1)


def test_kv_cache_token_by_token_equals_full_sequence(model):
    tokens = model.tokenizer.encode("A fortune: You will be hungry again in one hour.\n")
    full = model.forward(tokens, 0, None)
    cache = model.new_cache()
    step = np.concatenate([model.forward([t], i, cache) for i, t in enumerate(tokens)])
    assert cache.length == len(tokens)
    assert np.max(np.abs(full - step)) < 1e-9
    cache = model.new_cache()
    chunked = np.concatenate([model.forward(tokens[:20], 0, cache), model.forward(tokens[20:], 20, cache)])
    assert np.max(np.abs(full - chunked)) < 1e-9
    prefilled = model.forward(tokens, 0, model.new_cache())
    assert np.max(np.abs(full - prefilled)) < 1e-9


def test_generate_uses_the_cache_consistently(model):
    g = model.generate("The ", 24, keep_logits=True)
    seq = g.prompt_tokens + g.tokens[:-1]
    full = model.forward(seq, 0, None)
    n = len(g.prompt_tokens)
    assert np.max(np.abs(np.stack(g.logits) - full[n - 1:])) < 1e-9
    assert list(np.argmax(full[n - 1:], axis=-1)) == g.tokens


def test_forward_rejects_bad_positions(model):
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.forward([1], model.config.max_position_embeddings, None)
    cache = model.new_cache()
    with pytest.raises(ValueError, match="gap"):
        model.forward([1], 3, cache)
    with pytest.raises(ValueError, match="token ids"):
        model.forward([258], 0, None)


def test_matches_pytorch_logits_fixture(model, check):
    """check_logits.npy: PyTorch's float32 forward at training time."""
    want = np.load(MODEL / check["logits_file"])
    assert list(want.shape) == check["logits_shape"] == [len(check["prompt_tokens"]), 258]
    assert check["prompt_tokens"] == model.tokenizer.encode(check["prompt"])
    got = model.forward(check["prompt_tokens"], 0, model.new_cache())
    assert np.max(np.abs(got - want)) < 1e-4
    assert (np.argmax(got, -1) == np.argmax(want, -1)).all()


def test_greedy_matches_pytorch_token_for_token(model, check):
    g = model.generate(check["prompt"], len(check["greedy_tokens"]))
    assert g.tokens == check["greedy_tokens"]
    assert g.text == check["greedy_text"]


def test_the_trainers_model_is_the_reference_in_float64(model):
    """models/train.py's own PyTorch model (what trains the weights; not an
    independent reference: tests/test_hf_reference.py is) computes what
    reference.py computes, to float64 rounding: a trainer that drifted from
    the architecture the weights are served with would train weights for
    another model."""
    torch = pytest.importorskip("torch", reason="needs torch: ./install.sh --hf installs it "
                                "(requirements-reference.txt)", exc_type=ImportError)
    from models import train
    cfg = json.loads((MODEL / "config.json").read_text())
    m = train.LlamaForCausalLM(cfg)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in safetensors_np.load_file(MODEL / "model.safetensors").items()}
    m.load_state_dict(sd, strict=True)
    m = m.double().eval()
    tokens = model.tokenizer.encode("Q: Why did the chicken cross the road?\nA: ")
    with torch.no_grad():
        want = m(torch.tensor([tokens]))[0].numpy()
    got = model.forward(tokens, 0, None)
    assert np.max(np.abs(got - want)) < 1e-9


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------

def test_cli_json(model):
    proc = subprocess.run([sys.executable, str(REPO / "models" / "reference.py"), "-m", str(MODEL),
                           "-p", "The ", "-n", "16", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    g = model.generate("The ", 16)
    assert out["prompt_tokens"] == g.prompt_tokens and out["tokens"] == g.tokens and out["text"] == g.text
    plain = subprocess.run([sys.executable, str(REPO / "models" / "reference.py"), "-m", str(MODEL),
                            "-p", "The ", "-n", "16"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stdout == "The " + g.text + "\n"


def test_cli_reports_a_missing_model(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "models" / "reference.py"), "-m", str(tmp_path / "nope"),
                           "-p", "x", "-n", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model directory not found" in proc.stderr and "nope" in proc.stderr


# ---------------------------------------------------------------------------
# bad files give errors that name the file and the key or tensor
# ---------------------------------------------------------------------------

def _drop_tensor(d):
    t = safetensors_np.load_file(d / "model.safetensors")
    del t["model.layers.3.mlp.up_proj.weight"]
    safetensors_np.save_file({k: np.array(v) for k, v in t.items()}, d / "model.safetensors")


def _reshape_tensor(d):
    t = {k: np.array(v) for k, v in safetensors_np.load_file(d / "model.safetensors").items()}
    t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:-1]
    safetensors_np.save_file(t, d / "model.safetensors")


def _add_lm_head(d):
    t = {k: np.array(v) for k, v in safetensors_np.load_file(d / "model.safetensors").items()}
    t["lm_head.weight"] = t["model.embed_tokens.weight"].copy()
    safetensors_np.save_file(t, d / "model.safetensors")


def _truncate(d):
    p = d / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-1000])


def _write(name, text):
    def f(d):
        (d / name).write_text(text)
    return f


BAD = [
    ("no config", lambda d: (d / "config.json").unlink(), ["config.json", "not found"]),
    ("no tokenizer", lambda d: (d / "tokenizer.json").unlink(), ["tokenizer.json", "not found"]),
    ("no weights", lambda d: (d / "model.safetensors").unlink(), ["model.safetensors", "not found"]),
    ("config not json", _write("config.json", "{ not json"), ["config.json", "not valid JSON"]),
    ("missing key", lambda d: edit_config(d, num_key_value_heads=KeyError),
     ["config.json", "missing key 'num_key_value_heads'"]),
    ("wrong type", lambda d: edit_config(d, hidden_size="288"), ["config.json", "'hidden_size'"]),
    ("heads do not divide", lambda d: edit_config(d, num_attention_heads=5),
     ["config.json", "'num_attention_heads'"]),
    ("gqa groups", lambda d: edit_config(d, num_key_value_heads=4), ["config.json", "'num_key_value_heads'"]),
    ("not llama", lambda d: edit_config(d, model_type="gpt2"), ["config.json", "'model_type'"]),
    ("activation", lambda d: edit_config(d, hidden_act="gelu"), ["config.json", "'hidden_act'"]),
    ("rope scaling", lambda d: edit_config(d, rope_scaling={"type": "linear", "factor": 2.0}),
     ["config.json", "'rope_scaling'"]),
    ("vocab mismatch", lambda d: edit_config(d, vocab_size=300), ["'vocab_size'", "tokenizer.json"]),
    ("eos mismatch", lambda d: edit_config(d, eos_token_id=0), ["'eos_token_id'", "tokenizer.json"]),
    ("tokenizer type", _write("tokenizer.json", '{"type": "bpe", "vocab_size": 258, "bos_id": 256, "eos_id": 257}'),
     ["tokenizer.json", "'type'"]),
    ("tokenizer key", _write("tokenizer.json", '{"type": "byte-level", "vocab_size": 258, "bos_id": 256}'),
     ["tokenizer.json", "missing key 'eos_id'"]),
    ("missing tensor", _drop_tensor, ["model.safetensors", "model.layers.3.mlp.up_proj.weight"]),
    ("wrong shape", _reshape_tensor, ["model.safetensors", "model.layers.0.self_attn.k_proj.weight", "shape"]),
    ("untied head with tied config", _add_lm_head, ["lm_head.weight", "tie_word_embeddings"]),
    ("truncated weights", _truncate, ["model.safetensors", "truncated"]),
    ("not safetensors", _write("model.safetensors", "hello"), ["model.safetensors"]),
]


@pytest.mark.parametrize("case,breakit,words", BAD, ids=[b[0] for b in BAD])
def test_bad_model_files_give_clear_errors(tmp_path, case, breakit, words):
    d = copy_model(tmp_path)
    breakit(d)
    with pytest.raises(ModelFileError) as e:
        reference.load(d)
    for w in words:
        assert w in str(e.value), f"{w!r} not in {e.value}"


def test_untied_model_uses_lm_head(tmp_path):
    d = tiny_model_dir(tmp_path, tied=False)
    m = reference.load(d)
    assert m.lm_head is m.w["lm_head.weight"]
    logits = m.forward([256, 72, 105], 0, None)
    assert logits.shape == (3, 258) and np.isfinite(logits).all()


def test_safetensors_round_trip(tmp_path):
    t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1.5], dtype=np.float64),
         "i": np.array([[1, -2]], dtype=np.int64)}
    safetensors_np.save_file(t, tmp_path / "x.safetensors", metadata={"k": "v"})
    header, meta, start = safetensors_np.read_header(tmp_path / "x.safetensors")
    assert meta == {"k": "v"} and start % 8 == 0 and list(header) == ["a", "b", "i"]
    back = safetensors_np.load_file(tmp_path / "x.safetensors")
    for k, v in t.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v)


# ---------------------------------------------------------------------------
# GGUF export
# ---------------------------------------------------------------------------

def _field(reader, key):
    f = reader.fields[key]
    return f.contents()


def test_gguf_export_reads_back(tmp_path, model):
    import gguf
    from models import export_gguf
    out = export_gguf.export(MODEL, tmp_path / "m.gguf")
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    r = gguf.GGUFReader(out)
    c = model.config
    meta = {
        "general.architecture": "llama",
        "general.file_type": int(gguf.LlamaFileType.ALL_F32),
        "llama.context_length": c.max_position_embeddings,
        "llama.embedding_length": c.hidden_size,
        "llama.block_count": c.num_hidden_layers,
        "llama.feed_forward_length": c.intermediate_size,
        "llama.attention.head_count": c.num_attention_heads,
        "llama.attention.head_count_kv": c.num_key_value_heads,
        "llama.rope.dimension_count": c.head_dim,
        "llama.vocab_size": c.vocab_size,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": 256,
        "tokenizer.ggml.eos_token_id": 257,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
        "tokenizer.ggml.add_space_prefix": False,
    }
    for k, v in meta.items():
        assert _field(r, k) == v, k
    assert math.isclose(_field(r, "llama.rope.freq_base"), c.rope_theta, rel_tol=1e-7)
    assert math.isclose(_field(r, "llama.attention.layer_norm_rms_epsilon"), c.rms_norm_eps, rel_tol=1e-6)
    tokens = _field(r, "tokenizer.ggml.tokens")
    types = _field(r, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == len(_field(r, "tokenizer.ggml.scores")) == 258
    assert tokens[0x41] == "<0x41>" and types[0x41] == gguf.TokenType.BYTE
    assert tokens[0x20] == "\u2581" and types[0x20] == gguf.TokenType.NORMAL
    assert tokens[256:] == ["<s>", "</s>"] and types[256:] == [gguf.TokenType.CONTROL] * 2
    assert len(set(tokens)) == 258

    tensors = {t.name: t for t in r.tensors}
    assert len(tensors) == 2 + 9 * c.num_hidden_layers  # tied: no output.weight
    assert "output.weight" not in tensors
    hd, d, f = c.head_dim, c.hidden_size, c.intermediate_size
    want_shapes = {  # ggml order: [columns, rows]
        "token_embd.weight": [d, c.vocab_size], "output_norm.weight": [d],
        "blk.0.attn_norm.weight": [d], "blk.0.ffn_norm.weight": [d],
        "blk.0.attn_q.weight": [d, c.num_attention_heads * hd],
        "blk.0.attn_k.weight": [d, c.num_key_value_heads * hd],
        "blk.0.attn_v.weight": [d, c.num_key_value_heads * hd],
        "blk.0.attn_output.weight": [c.num_attention_heads * hd, d],
        "blk.0.ffn_gate.weight": [d, f], "blk.0.ffn_up.weight": [d, f], "blk.0.ffn_down.weight": [f, d],
    }
    for name, shape in want_shapes.items():
        assert tensors[name].shape.tolist() == shape, name
        assert tensors[name].tensor_type == gguf.GGMLQuantizationType.F32
    last = c.num_hidden_layers - 1
    for name, hf in [("token_embd.weight", "model.embed_tokens.weight"),
                     (f"blk.{last}.ffn_down.weight", f"model.layers.{last}.mlp.down_proj.weight"),
                     (f"blk.{last}.attn_v.weight", f"model.layers.{last}.self_attn.v_proj.weight")]:
        assert np.array_equal(np.asarray(tensors[name].data), model.w[hf].astype(np.float32)), name
    q = np.asarray(tensors[f"blk.{last}.attn_q.weight"].data)
    k = np.asarray(tensors[f"blk.{last}.attn_k.weight"].data)
    p = f"model.layers.{last}.self_attn."
    assert not np.array_equal(q, model.w[p + "q_proj.weight"].astype(np.float32))
    assert np.array_equal(export_gguf.unpermute_rope_rows(q, c.num_attention_heads),
                          model.w[p + "q_proj.weight"].astype(np.float32))
    assert np.array_equal(export_gguf.unpermute_rope_rows(k, c.num_key_value_heads),
                          model.w[p + "k_proj.weight"].astype(np.float32))


def test_gguf_untied_model_has_output_tensor(tmp_path):
    import gguf
    from models import export_gguf
    d = tiny_model_dir(tmp_path, tied=False)
    r = gguf.GGUFReader(export_gguf.export(d, tmp_path / "u.gguf"))
    names = [t.name for t in r.tensors]
    assert "output.weight" in names and len(names) == 2 + 9 * 2 + 1


def test_gguf_rope_permutation_turns_rotate_half_into_adjacent_pairs():
    """What llama.cpp computes (LLAMA_ROPE_TYPE_NORM: pairs (2i, 2i+1)) on the
    permuted rows equals the Hugging Face rotate-half RoPE on the original
    rows, in the permuted order."""
    from models import export_gguf
    rng = np.random.default_rng(3)
    n_head, hd, dim = 3, 8, 5
    w = rng.standard_normal((n_head * hd, dim))
    x = rng.standard_normal(dim)
    pos = 7
    inv = reference.rope_inv_freq(hd, 10000.0)
    hf = reference.rope((w @ x).reshape(1, n_head, hd), np.array([pos]), inv)[0]  # [n_head, hd]
    qp = (export_gguf.permute_rope_rows(w, n_head) @ x).reshape(n_head, hd)
    ang = pos * inv
    a, b = qp[:, 0::2], qp[:, 1::2]
    adj = np.empty_like(qp)
    adj[:, 0::2] = a * np.cos(ang) - b * np.sin(ang)
    adj[:, 1::2] = b * np.cos(ang) + a * np.sin(ang)
    # adjacent pair i of the permuted head is the pair (i, i + hd/2) of the HF head
    assert np.allclose(adj[:, 0::2], hf[:, :hd // 2], atol=1e-12)
    assert np.allclose(adj[:, 1::2], hf[:, hd // 2:], atol=1e-12)
    assert np.array_equal(export_gguf.unpermute_rope_rows(export_gguf.permute_rope_rows(w, n_head), n_head), w)


def test_gguf_export_refuses_bad_model(tmp_path):
    from models import export_gguf
    d = copy_model(tmp_path)
    edit_config(d, num_hidden_layers=KeyError)
    with pytest.raises(ModelFileError, match="num_hidden_layers"):
        export_gguf.export(d, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
