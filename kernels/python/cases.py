"""The kernel cases of the cross-device numerics report (`scons numerics`).

Every op of the C ABI (kernels/include/syclforge/kl_c.h) at several shapes,
odd ones (not multiples of any tile) and the mini-LLM's own among them. A
case is data: the op, a label, and how to make its inputs. Inputs are named
as the op's arguments in reference.py, syclforge_kl.Runtime and tolerance.py
(x, w, weight, q, k_cache, ...), so one dict drives all three:

    got = getattr(runtime, case.op)(**inputs)
    ref = getattr(reference, case.op)(**inputs)
    tolerance.compare(case.op, got, ref, **inputs)

Inputs are made from a seed derived from the case's id, so every machine
(host, container, CI runner) computes on the same numbers; the report keeps
their digest to prove it.
"""
import hashlib
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    op: str
    label: str          # the shape, as people read it
    make: object        # rng -> {argument name: array or scalar}

    @property
    def id(self):
        return f"{self.op}[{self.label}]"

    def inputs(self):
        return self.make(np.random.default_rng(zlib.crc32(self.id.encode())))


def _n(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _gemm(M, N, K):
    return Case("gemm", f"{M}x{N}x{K}", lambda r: {"x": _n(r, M, K), "w": _n(r, N, K, scale=0.5)})


def _gemv(N, K):
    return Case("gemv", f"{N}x{K}", lambda r: {"x": _n(r, K), "w": _n(r, N, K, scale=0.1)})


def _gemv_add(N, K):
    return Case("gemv_add", f"{N}x{K}", lambda r: {"x": _n(r, K), "w": _n(r, N, K, scale=0.1),
                                                   "residual": _n(r, N, scale=3.0)})


def _rmsnorm_gemv(N, K, scale=3.0, tag=""):
    return Case("rmsnorm_gemv", f"{N}x{K}{tag}", lambda r: {"x": _n(r, K, scale=scale), "weight": _n(r, K),
                                                           "w": _n(r, N, K, scale=0.1), "eps": 1e-5})


def _rmsnorm_gemv_swiglu(N, K, scale=3.0, tag=""):
    return Case("rmsnorm_gemv_swiglu", f"{N}x{K}{tag}",
                lambda r: {"x": _n(r, K, scale=scale), "weight": _n(r, K), "w": _n(r, 2 * N, K, scale=0.1),
                           "eps": 1e-5})


def _norm(op, rows, dim, scale=3.0, tag=""):
    def make(r):
        d = {"x": _n(r, rows, dim, scale=scale), "weight": _n(r, dim), "eps": 1e-5}
        if op == "layernorm":
            d["x"] += np.float32(2.0)          # a mean to subtract
            d["bias"] = _n(r, dim, scale=0.1)
        return d
    return Case(op, f"{rows}x{dim}{tag}", make)


def _softmax(rows, cols, causal=False, pos0=0, temperature=1.0, scale=3.0, offset=0.0, tag=""):
    label = f"{rows}x{cols}" + (f" causal@{pos0}" if causal else "") + \
        (f" T={temperature:g}" if temperature != 1.0 else "") + tag
    return Case("softmax", label, lambda r: {"x": _n(r, rows, cols, scale=scale) + np.float32(offset),
                                             "causal": causal, "pos0": pos0, "temperature": temperature})


def _rope(tokens, heads, head_dim, pos0, theta):
    return Case("rope", f"{tokens}x{heads}x{head_dim}@{pos0} theta={theta:g}",
                lambda r: {"x": _n(r, tokens, heads, head_dim), "pos0": pos0, "theta": theta})


def _rope_qkv(tokens, n_heads, n_kv, head_dim, pos0, theta):
    return Case("rope_qkv", f"{tokens}x({n_heads}+2x{n_kv})x{head_dim}@{pos0} theta={theta:g}",
                lambda r: {"qkv": _n(r, tokens, n_heads + 2 * n_kv, head_dim), "n_kv_heads": n_kv, "pos0": pos0,
                           "theta": theta})


def _unary(op, n, scale):
    return Case(op, f"{n}", lambda r: {"x": _n(r, n, scale=scale)})


def _binary(op, n):
    a, b = ("gate", "up") if op == "swiglu" else ("a", "b")
    return Case(op, f"{n}", lambda r: {a: _n(r, n, scale=3.0), b: _n(r, n)})


def _embedding(vocab, dim, n_ids):
    return Case("embedding", f"{vocab}x{dim} ids={n_ids}",
                lambda r: {"table": _n(r, vocab, dim), "ids": r.integers(0, vocab, n_ids).astype(np.int32)})


def _attention(tokens, n_heads, n_kv, head_dim, pos0, max_seq, qk_scale=1.0, tag=""):
    def make(r):
        k, v = _n(r, max_seq, n_kv, head_dim, scale=qk_scale), _n(r, max_seq, n_kv, head_dim)
        # Slots beyond the context are NaN: an op that reads them fails.
        k[pos0 + tokens:], v[pos0 + tokens:] = np.nan, np.nan
        return {"q": _n(r, tokens, n_heads, head_dim, scale=qk_scale), "k_cache": k, "v_cache": v, "pos0": pos0,
                "scale": float(1.0 / np.sqrt(head_dim))}
    return Case("attention", f"{tokens}x{n_heads}/{n_kv}x{head_dim}@{pos0}{tag}", make)


def _reduce(op, rows, cols, last_is_max=False):
    def make(r):
        x = _n(r, rows, cols, scale=2.0)
        if last_is_max:   # the row's maximum in its last column: a dropped tail shows
            x[:, -1] = np.abs(x).max(axis=1) + np.float32(1.0)
        return {"x": x}
    return Case(op, f"{rows}x{cols}" + (" max last" if last_is_max else ""), make)


CASES = [
    _gemm(7, 33, 65), _gemm(129, 65, 300), _gemm(64, 768, 288),
    _gemv(768, 288), _gemv(258, 288), _gemv(301, 1029),
    _gemv_add(288, 768), _gemv_add(288, 288), _gemv_add(301, 1029),
    _rmsnorm_gemv(480, 288), _rmsnorm_gemv(258, 288), _rmsnorm_gemv(301, 1029),
    _rmsnorm_gemv(77, 288, scale=3e-3, tag=" |x|~3e-3"),
    _rmsnorm_gemv_swiglu(768, 288), _rmsnorm_gemv_swiglu(301, 1029), _rmsnorm_gemv_swiglu(37, 288, scale=3e-3, tag=" |x|~3e-3"),
    _norm("rmsnorm", 1, 288), _norm("rmsnorm", 7, 300), _norm("rmsnorm", 33, 1029),
    _norm("layernorm", 1, 288), _norm("layernorm", 7, 300), _norm("layernorm", 33, 1029),
    # rows whose mean square is near eps: the eps itself is then measured
    _norm("rmsnorm", 4, 288, scale=3e-3, tag=" |x|~3e-3"), _norm("layernorm", 4, 288, scale=3e-3, tag=" |x|~3e-3"),
    _softmax(7, 33), _softmax(64, 258, causal=True), _softmax(3, 32000, temperature=0.8),
    _softmax(5, 300, scale=1e4, tag=" |x|~1e4"),
    # large logits with a spread of a few units: not one-hot, and the max must be subtracted
    _softmax(5, 300, offset=1e4, tag=" x~1e4+N(0,3)"),
    _rope(7, 6, 48, 0, 10000.0), _rope(1, 6, 48, 200, 10000.0), _rope(33, 4, 64, 5, 500000.0),
    _rope_qkv(1, 6, 2, 48, 200, 10000.0), _rope_qkv(1, 12, 4, 64, 1000, 10000.0), _rope_qkv(5, 4, 4, 30, 3, 500000.0),
    *(_unary(op, n, 4.0) for op in ("silu", "gelu_tanh", "gelu_erf") for n in (1, 1000, 65537)),
    *(_binary(op, n) for op in ("swiglu", "add", "mul") for n in (7, 65537)),
    _embedding(258, 288, 17), _embedding(1000, 65, 300),
    _attention(1, 6, 2, 48, 20, 256), _attention(16, 6, 2, 48, 0, 256), _attention(7, 4, 4, 64, 100, 129),
    # scores of +-hundreds: exp overflows unless the running max is subtracted
    _attention(5, 6, 2, 48, 3, 64, qk_scale=12.0, tag=" |s|~100"),
    *(_reduce(op, rows, cols) for op in ("sum", "max", "argmax") for rows, cols in ((7, 33), (3, 32000), (64, 300))),
    *(_reduce(op, 5, 301, last_is_max=True) for op in ("max", "argmax")),
]


def ops():
    """The ops the cases cover, in case order."""
    return list(dict.fromkeys(c.op for c in CASES))


def digest(inputs):
    """sha256 over the inputs' names, dtypes, shapes and bytes (scalars by repr)."""
    h = hashlib.sha256()
    for name in sorted(inputs):
        v = inputs[name]
        if isinstance(v, np.ndarray):
            h.update(f"{name}:{v.dtype.str}:{v.shape}:".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        else:
            h.update(f"{name}={v!r};".encode())
    return h.hexdigest()


def run(runtime, case, inputs):
    """The op on the runtime's device and image."""
    return np.asarray(getattr(runtime, case.op)(**inputs))


def reference(case, inputs):
    """The float64 reference (reference.py from this folder)."""
    import reference as R
    return getattr(R, case.op)(**inputs)
