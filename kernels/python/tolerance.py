"""Compare a kernel's output to the float64 reference with the metric and the
threshold that kernels/tolerances.yaml gives its op.

Pure: NumPy and PyYAML, no SCons, no device. The tests and the cross-device
numerics report call

    res = tolerance.compare("gemm", got, ref, x=x, w=w)
    assert res.ok, res          # str(res) says metric, value, worst element, why

Inputs are passed by their names in kl_c.h (x, w, weight, bias, q, k_cache,
v_cache, ...) plus the op's scalar arguments (pos0, theta, temperature,
scale, ...); from them this module derives, per op, the arrays that the
`scale` expressions use and the sizes that the `threshold` expressions use.
"""
import ast
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "tolerances.yaml"
METRICS = ("exact", "ulp", "eps_scaled")
_F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103   # the smallest value that rounds to float32 Inf

_FUNCS = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "log2": np.log2,
          "maximum": np.maximum, "minimum": np.minimum}


class ToleranceError(Exception):
    """tolerances.yaml is malformed, or an op/variable is unknown."""


@dataclass(frozen=True)
class Spec:
    op: str
    metric: str
    threshold: str          # an expression (a number is one too)
    why: str
    scale: str = ""         # eps_scaled only


@dataclass
class Result:
    op: str
    metric: str
    value: float            # the metric (for exact: elements that differ)
    threshold: float
    ok: bool
    why: str
    n: int = 0              # elements compared
    nonfinite_mismatches: int = 0
    worst: dict = field(default_factory=dict)   # index, got, ref (and scale)

    def __str__(self):
        w = ""
        if self.worst:
            w = "; worst at " + ", ".join(f"{k}={v}" for k, v in self.worst.items())
        nf = f"; {self.nonfinite_mismatches} NaN/Inf mismatches" if self.nonfinite_mismatches else ""
        return (f"{self.op}: {self.metric} = {self.value:.4g} "
                f"{'<=' if self.ok else '>'} threshold {self.threshold:.4g} over {self.n} elements"
                f"{nf}{w}\n  why this threshold: {self.why}")


# --------------------------------------------------------------------------
# loading

_specs_cache = {}


def load(path=None):
    """{op: Spec} from tolerances.yaml, validated. Cached per path."""
    path = Path(path or DEFAULT_PATH)
    key = (str(path), path.stat().st_mtime_ns)
    if key in _specs_cache:
        return _specs_cache[key]
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("ops"), dict):
        raise ToleranceError(f"{path}: expected a mapping with 'ops'")
    defaults = data.get("defaults") or {}
    specs = {}
    for op, d in data["ops"].items():
        if not isinstance(d, dict):
            raise ToleranceError(f"{path}: ops.{op}: expected a mapping")
        for key_ in ("metric", "threshold", "why"):
            if key_ not in d:
                raise ToleranceError(f"{path}: ops.{op}: missing '{key_}'")
        if d["metric"] not in METRICS:
            raise ToleranceError(f"{path}: ops.{op}.metric: '{d['metric']}' is not one of {METRICS}")
        if d["metric"] == "eps_scaled" and not d.get("scale"):
            raise ToleranceError(f"{path}: ops.{op}: eps_scaled needs 'scale'")
        if not str(d["why"]).strip():
            raise ToleranceError(f"{path}: ops.{op}.why is empty")
        unknown = set(d) - {"metric", "threshold", "why", "scale"}
        if unknown:
            raise ToleranceError(f"{path}: ops.{op}: unknown key(s) {sorted(unknown)}")
        specs[op] = Spec(op, d["metric"], str(d["threshold"]), " ".join(str(d["why"]).split()),
                         str(d.get("scale", "")))
    pairwise = data.get("pairwise") or {}
    if not isinstance(pairwise, dict) or "factor" not in pairwise or not str(pairwise.get("why", "")).strip():
        raise ToleranceError(f"{path}: pairwise: expected a mapping with 'factor' and 'why'")
    specs = {"__defaults__": {"eps": float(defaults.get("eps", 2.0 ** -23)),
                              "tiny": float(defaults.get("tiny", 2.0 ** -103)),
                              "pairwise_factor": float(pairwise["factor"]),
                              "pairwise_why": " ".join(str(pairwise["why"]).split())}, **specs}
    _specs_cache[key] = specs
    return specs


def spec(op, path=None):
    specs = load(path)
    if op not in specs or op.startswith("__"):
        raise ToleranceError(f"no tolerance for op '{op}' in {path or DEFAULT_PATH}")
    return specs[op]


# --------------------------------------------------------------------------
# expressions: arithmetic over names and a few functions, nothing else

_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def evaluate(expr, names):
    """Evaluate a tolerances.yaml expression with `names` (arrays or numbers)."""
    tree = ast.parse(str(expr), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ToleranceError(f"'{expr}': {type(node).__name__} is not allowed")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ToleranceError(f"'{expr}': only {sorted(_FUNCS)} may be called")
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCS:
            raise ToleranceError(f"'{expr}': unknown name '{node.id}' (have: {sorted(names)})")
    with np.errstate(all="ignore"):
        return eval(compile(tree, "<tolerances.yaml>", "eval"), {"__builtins__": {}}, {**_FUNCS, **names})


# --------------------------------------------------------------------------
# per-op variables: sizes for thresholds, arrays for scales

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _reference():
    """reference.py from this folder, whether or not it is on sys.path."""
    try:
        import reference
        return reference
    except ImportError:
        import importlib.util
        import sys
        spec_ = importlib.util.spec_from_file_location("reference", Path(__file__).with_name("reference.py"))
        mod = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(mod)
        sys.modules["reference"] = mod
        return mod


def _finite0(a):
    """NaN/Inf -> 0 so that a scale stays finite where the metric looks."""
    a = _f64(a)
    return np.where(np.isfinite(a), a, 0.0)


def _dot_abs(x, w):
    return np.abs(_finite0(x)) @ np.abs(_finite0(w)).T


def variables(op, ref, inputs):
    """(sizes, arrays) for op; `inputs` are the op's arguments by name."""
    g = dict(inputs)
    sizes = {k: float(v) for k, v in g.items() if np.isscalar(v) and not isinstance(v, (str, bool))}
    # Scales matter only where got and ref are both finite: NaN/Inf -> 0
    # keeps a NaN elsewhere in a row from poisoning them.
    arrays = {k: _finite0(v) for k, v in g.items() if isinstance(v, np.ndarray)}
    arrays["ref"] = _finite0(ref)
    if op == "gemm":
        x, w = _f64(g["x"]), _f64(g["w"])
        sizes.update(M=x.shape[0], N=w.shape[0], K=x.shape[1])
        arrays["dot_abs"] = _dot_abs(x, w)
    elif op in ("gemv", "gemv_add"):
        x, w = _f64(g["x"]), _f64(g["w"])
        sizes.update(N=w.shape[0], K=x.shape[0])
        arrays["dot_abs"] = _dot_abs(x[None, :], w)[0]
    elif op == "rmsnorm_gemv":
        x, w = _f64(g["x"]), _f64(g["w"])
        sizes.update(N=w.shape[0], K=x.shape[0])
        h = _reference().rmsnorm(_finite0(x)[None, :], g["weight"], g.get("eps", 0.0))[0]
        arrays["dot_abs"] = _dot_abs(h[None, :], w)[0]     # sum_k |w_nk| |rmsnorm(x)_k|
        for name in ("x", "weight", "w"):
            arrays.pop(name, None)
    elif op == "rmsnorm_gemv_swiglu":
        x, w = _f64(g["x"]), _f64(g["w"])
        n = w.shape[0] // 2
        sizes.update(N=n, K=x.shape[0])
        h = _reference().rmsnorm(_finite0(x)[None, :], g["weight"], g.get("eps", 0.0))[0]
        dot_abs = _dot_abs(h[None, :], _finite0(w))[0]
        with np.errstate(all="ignore"):
            gu = _finite0(_finite0(w) @ _finite0(h))
            gate, up = gu[:n], gu[n:]
            sig = 1.0 / (1.0 + np.exp(-gate))
            # d silu / d gate = sig (1 + gate (1 - sig)), at most 1.1 in size
            arrays["gate_slope"] = _finite0(np.abs(sig * (1.0 + gate * (1.0 - sig))))
            arrays["silu_abs"] = _finite0(np.abs(gate * sig))
        arrays.update(up_abs=np.abs(up), gate_dot_abs=dot_abs[:n], up_dot_abs=dot_abs[n:])
        for name in ("x", "weight", "w"):
            arrays.pop(name, None)
    elif op in ("rmsnorm", "layernorm"):
        x = _f64(g["x"])
        sizes.update(rows=x.shape[0], dim=x.shape[-1])
        if op == "layernorm" and x.shape[-1]:
            xf = _finite0(x)
            mean = xf.mean(axis=-1, keepdims=True)
            var = ((xf - mean) ** 2).mean(axis=-1, keepdims=True)
            arrays["mean_abs"] = np.abs(xf).mean(axis=-1, keepdims=True)
            arrays["std"] = np.sqrt(var + float(np.float32(g.get("eps", 0.0))))
    elif op == "softmax":
        x = _f64(g["x"])
        rows, cols = x.shape
        sizes.update(rows=rows, cols=cols)
        t = float(np.float32(g.get("temperature", 1.0)))
        z = _finite0(x) / t
        # x / t is exact when t is a power of two (1 included): only then
        # can the exponent carry no rounding error of |z| and |m|.
        sizes["t_inexact"] = 0.0 if t > 0 and math.frexp(t)[0] == 0.5 else 1.0
        if g.get("causal"):
            seen = np.arange(cols)[None, :] <= (int(g.get("pos0", 0)) + np.arange(rows))[:, None]
        else:
            seen = np.ones((rows, cols), bool)
        m = np.max(np.where(seen, z, -np.inf), axis=1, keepdims=True) if cols else np.zeros((rows, 1))
        arrays.update(z=z, m=np.where(np.isfinite(m), m, 0.0))
    elif op in ("rope", "rope_qkv"):
        x = _f64(g["x"] if op == "rope" else g["qkv"])
        tokens, heads, head_dim = x.shape
        sizes.update(tokens=tokens, heads=heads, head_dim=head_dim, theta=float(np.float32(g["theta"])))
        half = head_dim // 2
        arrays["x_partner"] = np.concatenate([x[..., half:], x[..., :half]], axis=-1)
        i = np.arange(half, dtype=np.float64)
        inv = float(np.float32(g["theta"])) ** (-2.0 * i / head_dim) if head_dim else i
        ang = (int(g.get("pos0", 0)) + np.arange(tokens, dtype=np.float64))[:, None] * inv[None, :]
        arrays["angle"] = np.concatenate([ang, ang], axis=-1)[:, None, :]
        arrays["x"] = _finite0(x)
        arrays["x_partner"] = _finite0(arrays["x_partner"])
        if op == "rope_qkv":    # the v heads are copied: no partner, no angle
            v = slice(heads - int(g["n_kv_heads"]), heads)
            arrays["angle"] = np.repeat(arrays["angle"], heads, axis=1)
            arrays["angle"][:, v], arrays["x_partner"][:, v] = 0.0, 0.0
            arrays.pop("qkv", None)
    elif op in ("silu", "gelu_tanh", "gelu_erf"):
        sizes.update(n=np.size(g["x"]))
        arrays["x"] = _finite0(g["x"])
    elif op in ("swiglu", "add", "mul"):
        sizes.update(n=np.size(next(iter(arrays.values()))))
    elif op == "embedding":
        sizes.update(vocab=np.shape(g["table"])[0], dim=np.shape(g["table"])[1])
    elif op == "attention":
        q, k, v = _f64(g["q"]), _f64(g["k_cache"]), _f64(g["v_cache"])
        tokens, n_heads, head_dim = q.shape
        n_kv = k.shape[1]
        pos0 = int(g.get("pos0", 0))
        ctx = pos0 + tokens
        sizes.update(tokens=tokens, n_heads=n_heads, n_kv_heads=n_kv, head_dim=head_dim, ctx=ctx)
        group = n_heads // n_kv if n_kv else 1
        kk = np.repeat(_finite0(k[:ctx]), group, axis=1)
        vv = np.repeat(_finite0(v[:ctx]), group, axis=1)
        scale = abs(float(np.float32(g.get("scale", 1.0))))
        # s_abs[t, h, j] = scale * sum_d |q_thd| |k_jhd|  (0 beyond what t sees)
        s_abs = scale * np.einsum("thd,jhd->thj", np.abs(_finite0(q)), np.abs(kk))
        seen = np.arange(ctx)[None, :] <= (pos0 + np.arange(tokens))[:, None]     # [t, j]
        s_abs = np.where(seen[:, None, :], s_abs, 0.0)
        p = g.get("probs")
        if p is None:
            p = _reference().attention_probs(q, k, pos0, g.get("scale", 1.0))
        p = _finite0(p)
        arrays["pv_abs"] = np.einsum("thj,jhd->thd", p, np.abs(vv))
        arrays["smax"] = s_abs.max(axis=-1, keepdims=True) if ctx else np.zeros((tokens, n_heads, 1))
        for name in ("q", "k_cache", "v_cache", "probs"):
            arrays.pop(name, None)
    elif op == "model_logits":
        ref_f = _finite0(ref)
        sizes.update(steps=ref_f.shape[0] if ref_f.ndim else 1, vocab=ref_f.shape[-1] if ref_f.ndim else 1)
        arrays["row_max_abs"] = np.abs(ref_f).max(axis=-1, keepdims=True) if ref_f.size else ref_f
        # lm_abs[s, v] = sum_k |hidden_sk| |lm_head_vk|: the terms of each
        # logit, the product of the final normed hidden state and the LM head
        # (the reference's own, `hidden` and `lm_head` inputs)
        if "hidden" not in g or "lm_head" not in g:
            raise ValueError("model_logits is scaled by the reference's final hidden state and LM head: pass "
                             "hidden= (models/reference.py's Generation.hidden) and lm_head= (Model.lm_head)")
        arrays["lm_abs"] = _dot_abs(np.reshape(g["hidden"], (-1, np.shape(g["lm_head"])[1])), g["lm_head"])
        arrays["lm_abs"] = arrays["lm_abs"].reshape(ref_f.shape)
        for name in ("hidden", "lm_head"):
            arrays.pop(name, None)
    elif op in ("sum", "max", "argmax"):
        x = _f64(g["x"])
        sizes.update(rows=x.shape[0], cols=x.shape[1])
        if op == "sum":
            arrays["sum_abs"] = np.abs(_finite0(x)).sum(axis=1)
    return sizes, arrays


# --------------------------------------------------------------------------
# metrics

def ulp32(r):
    """The float32 spacing at |r|: 2^(floor(log2|r|) - 23), 2^-149 below FLT_MIN."""
    a = np.abs(_f64(r))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, -126.0)
    return np.where(a >= 2.0 ** -126, np.exp2(e - 23.0), 2.0 ** -149)


def _same_nonfinite(got, ref):
    """Element-wise: True where got and ref agree on being NaN / +Inf / -Inf,
    or are both finite."""
    gn, rn = np.isnan(got), np.isnan(ref)
    gi, ri = np.isinf(got), np.isinf(ref)
    same = (gn == rn) & (gi == ri)
    same &= ~(gi & ri & (np.sign(got) != np.sign(ref)))
    return same


def compare(op, got, ref, path=None, pairwise=False, **inputs):
    """Compare got (the kernel's output) with ref (the float64 reference);
    returns a Result whose .ok says whether op's tolerance holds.

    pairwise: ref is another device's output, not the exact result; the
    threshold is multiplied by the `pairwise` factor of tolerances.yaml."""
    s = spec(op, path)
    d = load(path)["__defaults__"]
    eps, tiny = d["eps"], d["tiny"]
    got_a, ref_a = np.asarray(got), np.asarray(ref)
    if got_a.shape != ref_a.shape:
        return Result(op, s.metric, math.inf, 0.0, False, s.why, got_a.size,
                      worst={"shape": f"got {got_a.shape}, ref {ref_a.shape}"})
    sizes, arrays = variables(op, ref_a, inputs)
    threshold = float(evaluate(s.threshold, sizes)) * (d["pairwise_factor"] if pairwise else 1.0)
    g, r = _f64(got_a), _f64(ref_a)
    # A float32 result rounds an exact value at or beyond FLT_MAX + half an ulp
    # to Inf: that is what the reference says in float32.
    with np.errstate(invalid="ignore"):
        r = np.where(np.abs(r) >= _F32_OVERFLOW, np.copysign(np.inf, r), r)
    n = g.size
    same = _same_nonfinite(g, r)
    nonfinite_bad = int((~same).sum())
    both = np.isfinite(g) & np.isfinite(r)
    worst = {}
    if s.metric == "exact":
        differ = ~same | (both & (g != r))
        value = float(differ.sum())
        if value:
            i = np.unravel_index(np.argmax(differ), differ.shape)
            worst = {"index": tuple(int(v) for v in i), "got": got_a[i], "ref": ref_a[i]}
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.where(both, np.abs(g - r), 0.0)
        if s.metric == "ulp":
            scale = ulp32(np.where(both, r, 1.0))
            ratio = err / scale
        else:
            names = {**sizes, **arrays}
            sc = np.broadcast_to(_f64(evaluate(s.scale, names)), r.shape)
            scale = np.maximum(np.abs(sc), tiny)
            ratio = err / (eps * scale)
        ratio = np.where(both, ratio, 0.0)
        value = float(ratio.max()) if ratio.size else 0.0
        if nonfinite_bad:
            i = np.unravel_index(np.argmax(~same), same.shape)
            worst = {"index": tuple(int(v) for v in i), "got": got_a[i], "ref": ref_a[i]}
            value = math.inf
        elif ratio.size and value > 0:
            i = np.unravel_index(np.argmax(ratio), ratio.shape)
            worst = {"index": tuple(int(v) for v in i), "got": got_a[i], "ref": r[i],
                     "abs_err": float(err[i]), "scale": float(np.broadcast_to(scale, r.shape)[i])}
    ok = value <= threshold and nonfinite_bad == 0
    why = s.why + (f" Pairwise: {d['pairwise_why']}" if pairwise else "")
    return Result(op, s.metric, value, threshold, ok, why, n, nonfinite_bad, worst)


def perturb(op, got, ref, factor=3.0, path=None, **inputs):
    """got with an error of `factor` times op's own threshold injected (the
    numerics harness's test that every op's violations are caught and named,
    SYCLFORGE_NUMERICS_PERTURB): every finite element is replaced by
    ref + factor * threshold * (its scale), rounded to got's dtype, so the
    error comes out at factor times the threshold, give or take the rounding
    (ulp: 1.5 ulp of ref rounds to 1-2 ulp, 2-4x the 0.5-ulp threshold). An
    exact op (threshold 0) gets one element changed: the smallest violation."""
    s = spec(op, path)
    d = load(path)["__defaults__"]
    got_a = np.array(got, copy=True)
    if not got_a.size:
        return got_a
    if s.metric == "exact":
        flat = got_a.reshape(-1)
        if flat.dtype.kind in "iu":
            flat[-1] += 1
        else:
            at = int(np.argmax(np.isfinite(flat)))
            flat[at] = np.nextafter(flat[at], np.inf)
        return got_a
    r = _f64(ref)
    sizes, arrays = variables(op, r, inputs)
    thr = float(evaluate(s.threshold, sizes))
    if s.metric == "ulp":
        delta = factor * thr * ulp32(r)
    else:
        sc = np.broadcast_to(_f64(evaluate(s.scale, {**sizes, **arrays})), r.shape)
        delta = factor * thr * d["eps"] * np.maximum(np.abs(sc), d["tiny"])
    with np.errstate(over="ignore", invalid="ignore"):
        new = (r + delta).astype(got_a.dtype)
    ok = np.isfinite(r) & np.isfinite(_f64(got_a)) & np.isfinite(new)
    return np.where(ok, new, got_a)


def table(path=None):
    """[(op, metric, scale, threshold, why)] for reports."""
    return [(s.op, s.metric, s.scale, s.threshold, s.why)
            for k, s in load(path).items() if not k.startswith("__")]
