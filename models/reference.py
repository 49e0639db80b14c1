#!/usr/bin/env python3
"""NumPy float64 reference of the mini-LLM (a Hugging Face Llama).

Reads the files that models/train.py writes -- ``config.json``,
``model.safetensors`` (read with NumPy alone) and ``tokenizer.json`` -- and
runs the model in float64, one function per layer op, so that the SYCL
runner can be compared with it token for token::

    from models import reference
    m = reference.load("models/tiny-fortunes")
    cache = m.new_cache()
    logits = m.forward(tokens, pos0=0, kv_cache=cache)     # [len(tokens), vocab]
    out = m.generate("The ", 64)                           # greedy
    out.tokens, out.text

CLI::

    python models/reference.py -m models/tiny-fortunes -p "The " -n 64 [--json]

The math, as in transformers' LlamaForCausalLM:

    x = embed[tokens]
    for each layer:
        h = rmsnorm(x) * input_layernorm            rmsnorm(x) = x / sqrt(mean(x^2) + eps)
        q, k, v = h Wq^T, h Wk^T, h Wv^T             split into heads of head_dim
        q, k = rope(q, pos), rope(k, pos)            "rotate half": element i pairs with
                                                     i + head_dim/2, angle pos * theta^(-2i/head_dim)
        query head j attends (causally) over key/value head j // (n_heads / n_kv_heads)
        x = x + attention Wo^T
        h = rmsnorm(x) * post_attention_layernorm
        x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
    logits = (rmsnorm(x) * norm) lm_head^T           lm_head = embed when tied

Generation feeds BOS + the prompt's UTF-8 bytes, picks the arg-max token at
temperature 0 (the lowest id on an exact tie) and stops after EOS, after n
tokens, or at max_position_embeddings. Temperature > 0 samples from
softmax(logits / temperature), optionally restricted to the top_k tokens,
with numpy.random.default_rng(seed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:  # imported as models.reference
    from . import safetensors_np
    from .tokenizer import ByteTokenizer, TokenizerError
except ImportError:  # run as a script: python models/reference.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import safetensors_np  # type: ignore[no-redef]
    from tokenizer import ByteTokenizer, TokenizerError  # type: ignore[no-redef]


class ModelFileError(ValueError):
    """A model directory whose files are missing or inconsistent; the
    message names the file and the key or tensor."""


# config.json keys this implementation reads, with their JSON types
_REQUIRED_KEYS = {
    "model_type": str,
    "hidden_size": int,
    "intermediate_size": int,
    "num_hidden_layers": int,
    "num_attention_heads": int,
    "num_key_value_heads": int,
    "max_position_embeddings": int,
    "rms_norm_eps": (int, float),
    "rope_theta": (int, float),
    "vocab_size": int,
    "tie_word_embeddings": bool,
    "bos_token_id": int,
    "eos_token_id": int,
    "hidden_act": str,
}


@dataclass
class Config:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int
    tie_word_embeddings: bool
    bos_token_id: int
    eos_token_id: int


def read_config(path: Path) -> Config:
    if not path.is_file():
        raise ModelFileError(f"{path}: file not found (the model configuration)")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    for key, typ in _REQUIRED_KEYS.items():
        if key not in d:
            raise ModelFileError(f"{path}: missing key '{key}'")
        v = d[key]
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise ModelFileError(f"{path}: key '{key}' has the wrong type: {v!r}")
    if d["model_type"] != "llama":
        raise ModelFileError(f"{path}: key 'model_type' is {d['model_type']!r}, only 'llama' is supported")
    if "architectures" in d and d["architectures"] != ["LlamaForCausalLM"]:
        raise ModelFileError(f"{path}: key 'architectures' is {d['architectures']!r}, "
                             "expected ['LlamaForCausalLM']")
    if d["hidden_act"] != "silu":
        raise ModelFileError(f"{path}: key 'hidden_act' is {d['hidden_act']!r}, only 'silu' is supported")
    for key in ("rope_scaling",):
        if d.get(key) is not None:
            raise ModelFileError(f"{path}: key '{key}' = {d[key]!r} is not supported (must be null)")
    for key in ("attention_bias", "mlp_bias"):
        if d.get(key):
            raise ModelFileError(f"{path}: key '{key}' is true; biases are not supported")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "vocab_size"):
        if d[key] <= 0:
            raise ModelFileError(f"{path}: key '{key}' must be positive, got {d[key]}")
    h, kv = d["num_attention_heads"], d["num_key_value_heads"]
    if d["hidden_size"] % h:
        raise ModelFileError(f"{path}: key 'hidden_size' ({d['hidden_size']}) is not a multiple of "
                             f"'num_attention_heads' ({h})")
    head_dim = d.get("head_dim", d["hidden_size"] // h)
    if head_dim != d["hidden_size"] // h:
        raise ModelFileError(f"{path}: key 'head_dim' ({head_dim}) is not hidden_size / num_attention_heads "
                             f"({d['hidden_size'] // h}); not supported")
    if head_dim % 2:
        raise ModelFileError(f"{path}: head_dim {head_dim} is odd; RoPE needs it even")
    if h % kv:
        raise ModelFileError(f"{path}: key 'num_attention_heads' ({h}) is not a multiple of "
                             f"'num_key_value_heads' ({kv})")
    if d["rms_norm_eps"] <= 0 or d["rope_theta"] <= 0:
        raise ModelFileError(f"{path}: keys 'rms_norm_eps' and 'rope_theta' must be positive")
    for key in ("bos_token_id", "eos_token_id"):
        if not 0 <= d[key] < d["vocab_size"]:
            raise ModelFileError(f"{path}: key '{key}' ({d[key]}) is outside vocab_size {d['vocab_size']}")
    if d.get("torch_dtype", "float32") not in ("float32", "float16", "bfloat16"):
        raise ModelFileError(f"{path}: key 'torch_dtype' is {d['torch_dtype']!r}")
    return Config(d["hidden_size"], d["intermediate_size"], d["num_hidden_layers"], h, kv, head_dim,
                  d["max_position_embeddings"], float(d["rms_norm_eps"]), float(d["rope_theta"]),
                  d["vocab_size"], d["tie_word_embeddings"], d["bos_token_id"], d["eos_token_id"])


def expected_shapes(c: Config) -> dict[str, tuple[int, ...]]:
    """The Hugging Face tensor names and [out, in] shapes of a Llama."""
    d, f, hd = c.hidden_size, c.intermediate_size, c.head_dim
    s = {"model.embed_tokens.weight": (c.vocab_size, d), "model.norm.weight": (d,)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        s[p + "self_attn.q_proj.weight"] = (c.num_attention_heads * hd, d)
        s[p + "self_attn.k_proj.weight"] = (c.num_key_value_heads * hd, d)
        s[p + "self_attn.v_proj.weight"] = (c.num_key_value_heads * hd, d)
        s[p + "self_attn.o_proj.weight"] = (d, c.num_attention_heads * hd)
        s[p + "mlp.gate_proj.weight"] = (f, d)
        s[p + "mlp.up_proj.weight"] = (f, d)
        s[p + "mlp.down_proj.weight"] = (d, f)
        s[p + "input_layernorm.weight"] = (d,)
        s[p + "post_attention_layernorm.weight"] = (d,)
    if not c.tie_word_embeddings:
        s["lm_head.weight"] = (c.vocab_size, d)
    return s


# ---------------------------------------------------------------------------
# the layer ops (float64, x is [tokens, features])
# ---------------------------------------------------------------------------

def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    return theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """x: [tokens, heads, head_dim]; rotate-half pairs (i, i + head_dim/2)."""
    half = x.shape[-1] // 2
    ang = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [tokens, half]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * cos - x1 * sin, x1 * cos + x0 * sin], axis=-1)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, q_pos0: int) -> np.ndarray:
    """Causal grouped-query attention.

    q: [T, H, hd] at positions q_pos0 .. q_pos0+T-1; k, v: [S, KV, hd] at
    positions 0 .. S-1 (S = q_pos0 + T). Query head h uses kv head h // (H/KV).
    Returns [T, H, hd]."""
    T, H, hd = q.shape
    S, KV, _ = k.shape
    rep = H // KV
    qg = q.reshape(T, KV, rep, hd)
    scores = np.einsum("tgrd,sgd->grts", qg, k) / math.sqrt(hd)  # [KV, rep, T, S]
    q_positions = q_pos0 + np.arange(T)
    mask = np.arange(S)[None, :] > q_positions[:, None]  # [T, S]: key after query
    scores = np.where(mask, -np.inf, scores)
    p = softmax(scores, axis=-1)
    out = np.einsum("grts,sgd->tgrd", p, v)
    return out.reshape(T, H, hd)


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

@dataclass
class KVCache:
    """Keys (after RoPE) and values of every layer: [layers, max_seq, n_kv, head_dim]."""
    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @property
    def max_seq(self) -> int:
        return self.k.shape[1]


@dataclass
class Generation:
    prompt: str
    prompt_tokens: list[int]
    tokens: list[int]
    text: str
    stop: str  # "eos", "length" (n tokens) or "context" (max_position_embeddings)
    logits: list[np.ndarray] = field(default_factory=list, repr=False)
    hidden: list[np.ndarray] = field(default_factory=list, repr=False)  # final normed state per kept step

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "tokens": self.tokens,
                "text": self.text, "stop": self.stop}


class Model:
    def __init__(self, config: Config, weights: dict[str, np.ndarray], tokenizer: ByteTokenizer,
                 model_dir: Path | None = None):
        self.config = config
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        self.w = weights  # float64
        c = config
        self.inv_freq = rope_inv_freq(c.head_dim, c.rope_theta)
        self.lm_head = self.w["model.embed_tokens.weight"] if c.tie_word_embeddings else self.w["lm_head.weight"]

    def new_cache(self, max_seq: int | None = None) -> KVCache:
        c = self.config
        n = c.max_position_embeddings if max_seq is None else max_seq
        shape = (c.num_hidden_layers, n, c.num_key_value_heads, c.head_dim)
        return KVCache(np.zeros(shape), np.zeros(shape))

    def forward(self, tokens, pos0: int = 0, kv_cache: KVCache | None = None) -> np.ndarray:
        """Logits [len(tokens), vocab] (float64) of tokens at positions pos0...

        With a cache, the tokens' keys and values are stored at pos0.. and
        attention covers cache positions 0..pos0+len(tokens)-1 (so pos0 must
        not leave a gap: pos0 <= kv_cache.length). Without one, attention
        covers only these tokens (pos0 then only shifts RoPE)."""
        c, w = self.config, self.w
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        T = len(tokens)
        if T == 0:
            raise ValueError("forward: no tokens")
        if tokens.min() < 0 or tokens.max() >= c.vocab_size:
            raise ValueError(f"forward: token ids must lie in 0..{c.vocab_size - 1}")
        if pos0 < 0 or pos0 + T > c.max_position_embeddings:
            raise ValueError(f"forward: positions {pos0}..{pos0 + T - 1} exceed max_position_embeddings "
                             f"{c.max_position_embeddings}")
        if kv_cache is not None:
            if pos0 > kv_cache.length:
                raise ValueError(f"forward: pos0 {pos0} leaves a gap after the {kv_cache.length} cached positions")
            if pos0 + T > kv_cache.max_seq:
                raise ValueError(f"forward: positions up to {pos0 + T - 1} do not fit a cache of {kv_cache.max_seq}")
        H, KV, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        positions = pos0 + np.arange(T)

        x = w["model.embed_tokens.weight"][tokens]  # [T, d]
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rmsnorm(x, w[p + "input_layernorm.weight"], c.rms_norm_eps)
            q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
            q = rope(q, positions, self.inv_freq)
            k = rope(k, positions, self.inv_freq)
            if kv_cache is not None:
                kv_cache.k[i, pos0:pos0 + T] = k
                kv_cache.v[i, pos0:pos0 + T] = v
                a = attention(q, kv_cache.k[i, :pos0 + T], kv_cache.v[i, :pos0 + T], pos0)
            else:
                a = attention(q, k, v, 0)
            x = x + a.reshape(T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
            h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            up = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
        if kv_cache is not None:
            kv_cache.length = pos0 + T
        x = rmsnorm(x, w["model.norm.weight"], c.rms_norm_eps)
        self.last_hidden = x  # the logits' terms: their tolerance is scaled by |x| @ |lm_head|^T
        return x @ self.lm_head.T

    def generate(self, prompt: str, n: int, temperature: float = 0.0, top_k: int | None = None,
                 seed: int | None = None, stop_at_eos: bool = True, keep_logits: bool = False) -> Generation:
        """BOS + prompt, then up to n new tokens (see the module docstring)."""
        if n < 0:
            raise ValueError("generate: n must be >= 0")
        if temperature < 0:
            raise ValueError("generate: temperature must be >= 0")
        if top_k is not None and top_k < 1:
            raise ValueError("generate: top_k must be >= 1")
        c, tok = self.config, self.tokenizer
        prompt_tokens = tok.encode(prompt, bos=True)
        if len(prompt_tokens) > c.max_position_embeddings:
            raise ValueError(f"generate: the prompt is {len(prompt_tokens)} tokens, more than "
                             f"max_position_embeddings {c.max_position_embeddings}")
        rng = np.random.default_rng(seed)
        cache = self.new_cache()
        logits = self.forward(prompt_tokens, 0, cache)[-1]
        hidden = self.last_hidden[-1]
        out, kept, kept_hidden, stop = [], [], [], "length"
        pos = len(prompt_tokens)
        for step in range(n):
            if keep_logits:
                kept.append(logits.copy())
                kept_hidden.append(hidden.copy())
            nxt = self._pick(logits, temperature, top_k, rng)
            out.append(nxt)
            if stop_at_eos and nxt == c.eos_token_id:
                stop = "eos"
                break
            if step == n - 1:
                break
            if pos >= c.max_position_embeddings:
                stop = "context"
                break
            logits = self.forward([nxt], pos, cache)[-1]
            hidden = self.last_hidden[-1]
            pos += 1
        return Generation(prompt, prompt_tokens, out, tok.decode(out), stop, kept, kept_hidden)

    @staticmethod
    def _pick(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> int:
        if temperature == 0:
            return int(np.argmax(logits))  # first (lowest) id on a tie
        z = logits / temperature
        if top_k is not None and top_k < len(z):
            kth = np.sort(z)[-top_k]
            z = np.where(z >= kth, z, -np.inf)
        p = softmax(z)
        return int(rng.choice(len(p), p=p))


def load(model_dir) -> Model:
    """Read config.json, model.safetensors and tokenizer.json of model_dir;
    weights are converted to float64. Raises ModelFileError naming the file
    and key/tensor when something is missing or inconsistent."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFileError(f"{model_dir}: model directory not found")
    config = read_config(model_dir / "config.json")
    try:
        tok = ByteTokenizer.load(model_dir / "tokenizer.json")
    except TokenizerError as e:
        raise ModelFileError(str(e)) from None
    cfg_path = model_dir / "config.json"
    if tok.vocab_size != config.vocab_size:
        raise ModelFileError(f"{cfg_path}: key 'vocab_size' ({config.vocab_size}) differs from "
                             f"{model_dir / 'tokenizer.json'} vocab_size ({tok.vocab_size})")
    for key, tv in (("bos_token_id", tok.bos_id), ("eos_token_id", tok.eos_id)):
        if getattr(config, key) != tv:
            raise ModelFileError(f"{cfg_path}: key '{key}' ({getattr(config, key)}) differs from "
                                 f"{model_dir / 'tokenizer.json'} ({tv})")
    st_path = model_dir / "model.safetensors"
    try:
        raw = safetensors_np.load_file(st_path)
    except safetensors_np.SafetensorsError as e:
        raise ModelFileError(str(e)) from None
    want = expected_shapes(config)
    if config.tie_word_embeddings and "lm_head.weight" in raw:
        raise ModelFileError(f"{st_path}: tensor 'lm_head.weight' present but {cfg_path} key "
                             "'tie_word_embeddings' is true")
    missing = [k for k in want if k not in raw]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModelFileError(f"{st_path}: missing tensor '{missing[0]}'{more}")
    extra = sorted(set(raw) - set(want))
    if extra:
        raise ModelFileError(f"{st_path}: unexpected tensor '{extra[0]}' for the configuration in {cfg_path}")
    weights = {}
    for name, shape in want.items():
        a = raw[name]
        if tuple(a.shape) != shape:
            raise ModelFileError(f"{st_path}: tensor '{name}' has shape {list(a.shape)}, "
                                 f"{cfg_path} implies {list(shape)}")
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f"{st_path}: tensor '{name}' holds NaN or Inf")
        weights[name] = a
    return Model(config, weights, tok, model_dir)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate text with the NumPy float64 reference of the mini-LLM.")
    ap.add_argument("-m", "--model", default=str(Path(__file__).resolve().parent / "tiny-fortunes"),
                    help="model directory (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("-p", "--prompt", default="")
    ap.add_argument("-n", "--n-tokens", type=int, default=64, help="tokens to generate (at most)")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--no-stop", action="store_true", help="do not stop at EOS")
    ap.add_argument("--json", action="store_true",
                    help="print {prompt, prompt_tokens, tokens, text, stop} (text: the continuation)")
    args = ap.parse_args(argv)
    try:
        m = load(args.model)
        g = m.generate(args.prompt, args.n_tokens, args.temperature, args.top_k, args.seed,
                       stop_at_eos=not args.no_stop)
    except (ModelFileError, ValueError) as e:
        print(f"reference.py: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(g.to_json(), ensure_ascii=False))
    else:
        print(args.prompt + g.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
