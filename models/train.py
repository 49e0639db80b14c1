#!/usr/bin/env python3
"""Train the mini-LLM: a small Llama-architecture decoder on fortune cookies.

An offline step, not part of the build: it needs PyTorch (the CPU build works, a CUDA build is faster),
which is deliberately not in requirements.txt. The trained files are
committed, and everything else (the NumPy reference, the GGUF export, the
SYCL runner) only reads them.

Get the corpus (Debian's fortune-cookie files, BSD licence, see README.md)::

    apt-get install -y fortunes-min fortunes     # -> /usr/share/games/fortunes/
    .venv/bin/pip install torch==2.13.0          # CPU wheel

Train. The defaults reproduce the committed model (20.5 M tokens, 2500 steps
of 32 x 256): 100 s on one H100 with ``--device cuda`` (a PyTorch CUDA
build), hours on 2 CPU cores. ``--batch 8 --steps 1100`` is the CPU-sized
run (2.25 M tokens, about 15 minutes on 2 idle cores; validation loss 1.67
instead of 1.38, and visibly worse greedy text)::

    .venv/bin/python models/train.py /usr/share/games/fortunes -o models/tiny-fortunes --device cuda
    .venv/bin/python models/train.py /usr/share/games/fortunes -o /tmp/tiny-cpu --batch 8 --steps 1100

Writes into a temporary directory beside ``-o`` and renames it on success:

- ``config.json``       Hugging Face LlamaForCausalLM configuration
- ``model.safetensors`` fp32 weights with the Hugging Face tensor names
- ``tokenizer.json``    the byte-level tokenizer (models/tokenizer.py)
- ``check_logits.npy``  float32 logits of this PyTorch model for the prompt
                        of ``check.json`` (a fixture for torch-free tests)
- ``check.json``        that prompt, its tokens and the greedy continuation
- ``train_log.json``    hyper-parameters, corpus digest, losses, timings

The model is the Hugging Face Llama: pre-norm RMSNorm, rotary embeddings in
the "rotate half" convention, grouped-query attention (query head h uses
key/value head h // (n_heads / n_kv_heads)), SwiGLU MLP, optionally tied
input/output embeddings. Deterministic for a given seed, device and thread
count: on CUDA, TF32 is off and the math attention kernels are used (a
repeated H100 run gave byte-identical weights).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from safetensors_np import save_file  # noqa: E402
from tokenizer import ByteTokenizer  # noqa: E402

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("train.py needs PyTorch: .venv/bin/pip install torch==2.13.0 (CPU wheel); "
             "it is an offline step and not in requirements.txt")

CHECK_PROMPT = "A fortune: "
SAMPLE_PROMPTS = ["The ", "Q: What do you call"]


# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------

def read_fortunes(corpus: Path) -> tuple[list[bytes], list[str]]:
    """Every fortune of every fortune file in ``corpus`` (a directory of
    strfile sources, fortunes separated by lines holding a single '%', or
    one such file). The index files (*.dat) and the *.u8 links are skipped.
    Overstrike sequences (char, backspace) are removed, other control bytes
    but tab and newline too; surrounding blank lines are trimmed."""
    if corpus.is_dir():
        files = sorted(p for p in corpus.iterdir()
                       if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))
    elif corpus.is_file():
        files = [corpus]
    else:
        sys.exit(f"train.py: corpus {corpus} not found; apt-get install -y fortunes-min fortunes "
                 "gives /usr/share/games/fortunes")
    if not files:
        sys.exit(f"train.py: no fortune files in {corpus}")
    overstrike = re.compile(rb"[^\x08]\x08")
    control = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
    fortunes = []
    for p in files:
        data = p.read_bytes().replace(b"\r\n", b"\n")
        data = overstrike.sub(b"", data)
        data = control.sub(b"", data)
        for chunk in re.split(rb"(?m)^%[ \t]*$\n?", data):
            text = chunk.strip(b"\n").rstrip()
            if text.strip():
                fortunes.append(text)
    return fortunes, [p.name for p in files]


def build_streams(fortunes: list[bytes], tok: ByteTokenizer, seed: int, val_frac: float):
    """Shuffle the fortunes, hold out val_frac of them, and concatenate each
    part as BOS text EOS BOS text EOS ..."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(fortunes))
    n_val = max(1, int(len(fortunes) * val_frac))
    parts = []
    for ids in (order[n_val:], order[:n_val]):
        toks = []
        for i in ids:
            toks.extend(tok.encode(fortunes[i], bos=True, eos=True))
        parts.append(torch.tensor(toks, dtype=torch.long))
    return parts[0], parts[1]


# ---------------------------------------------------------------------------
# model (module names give the Hugging Face state-dict names)
# ---------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cos_sin(positions, head_dim: int, theta: float, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device)
                                / head_dim))
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)  # [T, head_dim]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.n_heads, self.n_kv, self.head_dim = h, kv, d // h
        self.q_proj = nn.Linear(d, h * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(h * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.n_heads // self.n_kv
        k = k.repeat_interleave(rep, dim=1)  # query head h -> kv head h // rep
        v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        self.tied = bool(cfg["tie_word_embeddings"])
        if not self.tied:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)

    def init_weights(self, std: float = 0.02):
        # GPT-2 style: N(0, std), residual outputs scaled by 1/sqrt(2 n_layers)
        resid_std = std / math.sqrt(2 * self.cfg["num_hidden_layers"])
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, 0.0, resid_std)
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens, pos0: int = 0):
        T = tokens.shape[1]
        x = self.model.embed_tokens(tokens)
        head_dim = self.cfg["hidden_size"] // self.cfg["num_attention_heads"]
        cos, sin = rope_cos_sin(torch.arange(pos0, pos0 + T, device=x.device), head_dim,
                                self.cfg["rope_theta"], x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        return F.linear(x, w)

    def hf_state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.detach().to(torch.float32).contiguous().numpy()
                for k, v in self.state_dict().items()}


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def greedy(model, tok: ByteTokenizer, prompt: str, n: int) -> list[int]:
    """Greedy continuation (full recompute each step; the model is tiny)."""
    ids = tok.encode(prompt, bos=True)
    out = []
    for _ in range(n):
        logits = model(torch.tensor([ids[-model.cfg["max_position_embeddings"]:]], device=_device(model)))
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        ids.append(nxt)
        if nxt == tok.eos_id:
            break
    return out


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------

def lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float = 0.1) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def evaluate(model, stream, seq_len: int, batch: int, n_batches: int) -> float:
    model.eval()
    losses = []
    n_windows = (len(stream) - 1) // seq_len
    starts = torch.arange(min(n_windows, n_batches * batch)) * seq_len
    for i in range(0, len(starts), batch):
        s = starts[i:i + batch].tolist()
        x = torch.stack([stream[j:j + seq_len] for j in s])
        y = torch.stack([stream[j + 1:j + seq_len + 1] for j in s])
        logits = model(x)
        losses.append(F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item())
    model.train()
    return float(np.mean(losses))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="fortune directory (e.g. /usr/share/games/fortunes) or one file")
    ap.add_argument("-o", "--out", type=Path, default=HERE / "tiny-fortunes")
    ap.add_argument("--dim", type=int, default=288)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=768, help="SwiGLU intermediate size")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--untied", action="store_true", help="separate lm_head instead of tied embeddings")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--val-frac", type=float, default=0.02)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda); the check "
                    "fixture is always computed on the CPU in float32")
    args = ap.parse_args(argv)

    if args.dim % args.heads or (args.dim // args.heads) % 2 or args.heads % args.kv_heads:
        ap.error("need dim divisible by heads, an even head_dim, heads divisible by kv-heads")

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32, as on the CPU
        torch.backends.cudnn.allow_tf32 = False
        # the math attention kernels: the memory-efficient backward is not deterministic
        torch.backends.cuda.enable_flash_sdp(False)
        torch.backends.cuda.enable_mem_efficient_sdp(False)
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = torch.device(args.device)

    tok = ByteTokenizer()
    fortunes, files = read_fortunes(args.corpus)
    train_s, val_s = build_streams(fortunes, tok, args.seed, args.val_frac)
    digest = hashlib.sha256(b"".join(f + b"\0" for f in fortunes)).hexdigest()
    print(f"corpus: {len(files)} files, {len(fortunes)} fortunes, {len(train_s)} train / "
          f"{len(val_s)} val tokens, sha256 {digest[:16]}", flush=True)

    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.dim,
        "intermediate_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.dim // args.heads,
        "max_position_embeddings": args.seq_len,
        "rms_norm_eps": args.eps,
        "rope_theta": args.rope_theta,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "vocab_size": tok.vocab_size,
        "tie_word_embeddings": not args.untied,
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eos_id,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "torch_dtype": "float32",
    }
    model = LlamaForCausalLM(cfg)
    model.init_weights(cfg["initializer_range"])  # on the CPU, so the init does not depend on the device
    model.to(device)
    train_s, val_s = train_s.to(device), val_s.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, config {json.dumps({k: cfg[k] for k in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'tie_word_embeddings')})}",
          flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    T, B = args.seq_len, args.batch
    offsets = torch.arange(T + 1)
    log = {"steps": [], "evals": []}
    t0 = time.time()
    smooth = None
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        starts = torch.randint(0, len(train_s) - T - 1, (B,), generator=gen)
        window = train_s[(starts[:, None] + offsets).to(device)]  # [B, T + 1]
        x, y = window[:, :-1], window[:, 1:]
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
        opt.step()
        lv = loss.item()
        smooth = lv if smooth is None else 0.95 * smooth + 0.05 * lv
        log["steps"].append([step, round(lv, 5)])
        if step % 25 == 0 or step == args.steps - 1:
            el = time.time() - t0
            print(f"step {step:5d}  loss {lv:.4f}  (smoothed {smooth:.4f})  lr {opt.param_groups[0]['lr']:.2e}  "
                  f"gnorm {gnorm:.2f}  {el:6.0f}s  {(step + 1) * B * T / el:,.0f} tok/s", flush=True)
        if (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            vl = evaluate(model, val_s, T, B, 4)
            log["evals"].append([step + 1, round(vl, 5)])
            print(f"  val loss {vl:.4f}", flush=True)
    train_time = time.time() - t0
    model.eval()
    # everything after training (samples, fixture, files) on the CPU in float32
    model.to("cpu")
    train_s, val_s = train_s.cpu(), val_s.cpu()
    val_loss = evaluate(model, val_s, T, B, 16)
    log["evals"].append([args.steps, round(val_loss, 5)])
    final_train = float(np.mean([l for _, l in log["steps"][-50:]]))
    print(f"done: {train_time:.0f}s, train loss (mean of last 50 steps) {final_train:.4f}, "
          f"val loss {val_loss:.4f} ({val_loss / math.log(2):.3f} bits/byte)", flush=True)

    samples = {}
    for p in SAMPLE_PROMPTS:
        ids = greedy(model, tok, p, 64)
        samples[p] = p + tok.decode(ids)
        print(f"--- greedy {p!r}:\n{samples[p]}\n", flush=True)

    # -- write everything to a temporary directory, then rename -------------
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        save_file(model.hf_state_dict(), tmp / "model.safetensors",
                  metadata={"format": "pt", "source": "syclforge models/train.py"})
        tok.save(tmp)
        with torch.no_grad():
            check_ids = tok.encode(CHECK_PROMPT, bos=True)
            check_logits = model(torch.tensor([check_ids]))[0].numpy().astype(np.float32)
            check_greedy = greedy(model, tok, CHECK_PROMPT, 64)
        np.save(tmp / "check_logits.npy", check_logits)
        (tmp / "check.json").write_text(json.dumps({
            "prompt": CHECK_PROMPT,
            "prompt_tokens": check_ids,
            "logits_file": "check_logits.npy",
            "logits_shape": list(check_logits.shape),
            "logits_dtype": "float32",
            "logits_from": f"PyTorch {torch.__version__} float32 forward of this model, all prompt positions",
            "greedy_tokens": check_greedy,
            "greedy_text": tok.decode(check_greedy),
        }, indent=2) + "\n")
        (tmp / "train_log.json").write_text(json.dumps({
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "torch": torch.__version__,
            "corpus": {"files": files, "fortunes": len(fortunes), "sha256": digest,
                       "train_tokens": len(train_s), "val_tokens": len(val_s)},
            "parameters": n_params,
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                      f" ({args.threads} threads)"),
            "train_seconds": round(train_time, 1),
            "tokens_seen": args.steps * B * T,
            "final_train_loss": round(final_train, 4),
            "final_val_loss": round(val_loss, 4),
            "samples_greedy_64": samples,
            "loss_curve": log,
        }, indent=1) + "\n")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
