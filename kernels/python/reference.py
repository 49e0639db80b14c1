"""float64 NumPy reference of every op of the C ABI (kernels/include/syclforge/kl_c.h).

Each function follows the header's semantics to the letter, computes in
float64 from the (float32) inputs, and returns float64 (int64 for argmax).
NaN and Inf propagate as IEEE arithmetic of the written formula says, and the
row reductions follow NumPy (max of a row holding NaN is NaN; argmax is the
index of the first NaN, else of the first maximum).

No kernel code, no tolerances: tolerance.py compares a kernel's output to
what these return.
"""
import numpy as np

__all__ = ["gemm", "gemv", "gemv_add", "rmsnorm_gemv", "rmsnorm_gemv_swiglu", "rmsnorm", "layernorm", "softmax", "rope_inv_freq", "rope", "rope_qkv", "silu",
           "gelu_tanh", "gelu_erf", "swiglu", "add", "mul", "embedding", "attention_probs",
           "attention", "sum", "max", "argmax", "erf"]


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _matmul_nt(x, w):
    """x[M,K] . w[N,K]^T in float64. BLAS is exact enough for finite data;
    with a NaN or Inf anywhere, an explicit broadcast-and-sum gives IEEE
    results that no BLAS shortcut can skip (0 * Inf = NaN)."""
    if np.isfinite(x).all() and np.isfinite(w).all():
        return x @ w.T
    with np.errstate(invalid="ignore", over="ignore"):
        return (x[:, None, :] * w[None, :, :]).sum(axis=-1)


def gemm(x, w):
    """y[M,N] = x[M,K] . w[N,K]^T (w as a Hugging Face Linear: [out, in])."""
    x, w = _f64(x), _f64(w)
    return _matmul_nt(x, w)


def gemv(x, w):
    """y[N] = w[N,K] . x[K]."""
    x, w = _f64(x), _f64(w)
    return _matmul_nt(x[None, :], w)[0]


def gemv_add(x, w, residual):
    """y[N] = residual[N] + w[N,K] . x[K]."""
    return _f64(residual) + gemv(x, w)


def rmsnorm(x, weight, eps):
    """Per row of x[rows, dim]: x / sqrt(mean(x^2) + eps) * weight."""
    x, weight = _f64(x), _f64(weight)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ms = np.mean(x * x, axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,))
        return x / np.sqrt(ms + float(np.float32(eps))) * weight


def rmsnorm_gemv(x, weight, w, eps):
    """y[N] = w[N,K] . rmsnorm(x[K]; weight, eps)."""
    return gemv(rmsnorm(_f64(x)[None, :], weight, eps)[0], w)


def rmsnorm_gemv_swiglu(x, weight, w, eps):
    """y[N] = swiglu(g, u), [g; u] = w[2N,K] . rmsnorm(x[K]; weight, eps)."""
    gu = rmsnorm_gemv(x, weight, w, eps)
    n = gu.shape[0] // 2
    return swiglu(gu[:n], gu[n:])


def layernorm(x, weight, bias, eps):
    """Per row: (x - mean) / sqrt(var + eps) * weight + bias, biased variance."""
    x, weight, bias = _f64(x), _f64(weight), _f64(bias)
    if x.shape[-1] == 0:
        return x.copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.mean(x, axis=-1, keepdims=True)
        d = x - mean
        var = np.mean(d * d, axis=-1, keepdims=True)
        return d / np.sqrt(var + float(np.float32(eps))) * weight + bias


def causal_mask(rows, cols, pos0):
    """True where row r sees column c: c <= pos0 + r."""
    return np.arange(cols)[None, :] <= (pos0 + np.arange(rows))[:, None]


def softmax(x, causal=False, pos0=0, temperature=1.0):
    """Row-wise softmax of x[rows, cols] / temperature.

    causal: row r sees columns c <= pos0 + r only; the others get exactly 0
    and take no part in the row's max or sum (a NaN there does not leak).
    IEEE as the usual max-subtracted formula says: a visible NaN makes the
    visible row NaN, a visible +Inf too (Inf - Inf), a -Inf gets 0.
    """
    x = _f64(x)
    rows, cols = x.shape
    z = x / float(np.float32(temperature))
    seen = causal_mask(rows, cols, pos0) if causal else np.ones((rows, cols), bool)
    out = np.zeros_like(z)
    if rows == 0 or cols == 0:
        return out
    with np.errstate(invalid="ignore", over="ignore"):
        # np.max propagates NaN: a visible NaN makes m NaN and the row NaN;
        # a NaN the row does not see was replaced by -Inf first.
        m = np.max(np.where(seen, z, -np.inf), axis=1, keepdims=True)
        e = np.where(seen, np.exp(z - m), 0.0)
        s = np.sum(e, axis=1, keepdims=True)
        out = np.where(seen, e / s, 0.0)
    return out


def rope_inv_freq(head_dim, theta):
    """inv_freq[i] = theta^(-2i/head_dim), i < head_dim/2."""
    i = np.arange(head_dim // 2, dtype=np.float64)
    return float(np.float32(theta)) ** (-2.0 * i / head_dim)


def rope_angles(tokens, head_dim, pos0, theta):
    """angle[t, i] = (pos0 + t) * inv_freq[i]."""
    pos = (pos0 + np.arange(tokens, dtype=np.float64))[:, None]
    return pos * rope_inv_freq(head_dim, theta)[None, :]


def rope(x, pos0, theta):
    """Hugging Face Llama rotate-half RoPE of x[tokens, heads, head_dim]:
    x * cos(pos*inv_freq) + rotate_half(x) * sin(pos*inv_freq), with
    rotate_half(x) = concat(-x[half:], x[:half]) and cos/sin repeated over
    both halves (HF's emb = cat(freqs, freqs))."""
    x = _f64(x)
    tokens, heads, head_dim = x.shape
    if head_dim % 2:
        raise ValueError(f"head_dim {head_dim} is odd")
    half = head_dim // 2
    ang = rope_angles(tokens, head_dim, pos0, theta)
    ang = np.concatenate([ang, ang], axis=-1)[:, None, :]  # [tokens, 1, head_dim]
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):
        return x * np.cos(ang) + rot * np.sin(ang)


def rope_qkv(qkv, n_kv_heads, pos0, theta):
    """qkv[tokens, n_heads + 2 n_kv_heads, head_dim] -> [rope(q) | rope(k) | v]."""
    qkv = _f64(qkv)
    kv = int(n_kv_heads)
    n_heads = qkv.shape[1] - 2 * kv
    return np.concatenate([rope(qkv[:, :n_heads + kv], pos0, theta), qkv[:, n_heads + kv:]], axis=1)


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def silu(x):
    """x * sigmoid(x). IEEE: silu(-Inf) = -Inf * 0 = NaN, silu(+Inf) = +Inf."""
    x = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return x * _sigmoid(x)


def gelu_tanh(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); gelu_tanh(-Inf) = NaN."""
    x = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def erf(x):
    """erf in float64 without SciPy: math.erf element by element (exact to
    float64 rounding), NaN stays NaN, +-Inf give +-1."""
    import math
    x = _f64(x)
    flat = [math.erf(v) if not np.isnan(v) else np.nan for v in x.ravel().tolist()]
    return np.asarray(flat, dtype=np.float64).reshape(x.shape)


def gelu_erf(x):
    """0.5 x (1 + erf(x / sqrt(2))); gelu_erf(-Inf) = NaN."""
    x = _f64(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def swiglu(gate, up):
    """silu(gate) * up."""
    with np.errstate(invalid="ignore", over="ignore"):
        return silu(gate) * _f64(up)


def add(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        return _f64(a) + _f64(b)


def mul(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        return _f64(a) * _f64(b)


def embedding(table, ids):
    """y[i, :] = table[ids[i], :]; an id outside [0, vocab) is an error naming it."""
    table = _f64(table)
    ids = np.asarray(ids).astype(np.int64)
    for i in ids.tolist():
        if not 0 <= i < table.shape[0]:
            raise IndexError(f"id {i} is outside [0, {table.shape[0]})")
    return table[ids].reshape(len(ids), table.shape[1])


def attention_probs(q, k_cache, pos0, scale, n_kv_heads=None):
    """The attention weights p[tokens, n_heads, pos0 + tokens] (0 where a
    query may not look), per the header: query t sees positions 0..pos0+t,
    query head h reads kv head h // (n_heads / n_kv_heads)."""
    q, k = _f64(q), _f64(k_cache)
    tokens, n_heads, head_dim = q.shape
    n_kv = k.shape[1] if n_kv_heads is None else n_kv_heads
    if n_kv == 0 or n_heads % n_kv:
        raise ValueError(f"n_heads {n_heads} is not a multiple of n_kv_heads {n_kv}")
    group = n_heads // n_kv
    ctx = pos0 + tokens
    kv = np.repeat(k[:ctx], group, axis=1) if ctx else np.zeros((0, n_heads, head_dim))
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(q).all() and np.isfinite(kv).all():
            s = np.einsum("thd,jhd->thj", q, kv, optimize=False)
        else:
            s = (q[:, :, None, :] * kv.transpose(1, 0, 2)[None, :, :, :]).sum(-1)
    s = s * float(np.float32(scale))
    p = np.zeros_like(s)
    for t in range(tokens):
        p[t, :, :pos0 + t + 1] = softmax(s[t, :, :pos0 + t + 1])
    return p


def attention(q, k_cache, v_cache, pos0, scale, n_kv_heads=None):
    """Causal grouped-query attention over a KV cache; out[tokens, n_heads, head_dim].

    Only cache positions 0 .. pos0 + t are read for query t: whatever the
    cache holds beyond (NaN included) cannot reach the output."""
    q, v = _f64(q), _f64(v_cache)
    tokens, n_heads, head_dim = q.shape
    n_kv = v.shape[1] if n_kv_heads is None else n_kv_heads
    p = attention_probs(q, k_cache, pos0, scale, n_kv)
    group = n_heads // n_kv
    ctx = pos0 + tokens
    out = np.zeros((tokens, n_heads, head_dim))
    vv = np.repeat(v[:ctx], group, axis=1)  # [ctx, n_heads, head_dim]
    with np.errstate(invalid="ignore", over="ignore"):
        for t in range(tokens):
            n = pos0 + t + 1
            # p is exactly 0 beyond n; slicing keeps 0 * NaN out of the sum.
            out[t] = np.einsum("hj,jhd->hd", p[t, :, :n], vv[:n], optimize=False)
    return out


def sum(x):  # noqa: A001 - the op's name
    """Row sums of x[rows, cols] (cols >= 1)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.sum(_f64(x), axis=1)


def max(x):  # noqa: A001
    """Row max; NaN if the row holds a NaN (np.max)."""
    return np.max(_f64(x), axis=1)


def argmax(x):
    """Row argmax: index of the first NaN if any, else of the first maximum (np.argmax)."""
    return np.argmax(_f64(x), axis=1).astype(np.int64)
