"""ctypes binding of the syclforge kernel library's C ABI
(kernels/include/syclforge/kl_c.h, the contract, semantics included).

    from syclforge_kl import Runtime
    rt = Runtime()                      # the loader's image choice; Runtime("spirv") forces one
    y = rt.gemm(x, w)                   # numpy float32 in, numpy out
    print(rt.image, rt.device_name)

Each op helper takes NumPy arrays (converted to contiguous float32), allocates
device buffers, copies in, enqueues the op, waits, copies out and returns a
new NumPy array. For timing without copies, use the device-level layer:
rt.to_device(), rt.empty(), rt.call("kl_gemm", ...), rt.wait(); in a loop,
rt.bind("kl_gemm", ...) once, then call what it returns (the arguments are
converted to C once: a 16-float add waited for costs ~1.5 us less).

Errors: a -1 from the library raises KLError carrying kl_last_error(); an op
whose symbol the library lacks (not implemented yet, or a stale build) raises
MissingOpError, a KLError, when it is first called. Symbols are looked up
lazily, so a missing op fails only where it is used.

Shapes are checked here only as far as the arrays must agree for the sizes
passed to C to be consistent (x[M,K] against w[N,K]); everything that the
header's semantics forbid (an id out of range, head counts that do not
divide, an odd head_dim, temperature <= 0, ...) is passed through for the
library to refuse, so that its own argument checking is what gets exercised.
"""
import ctypes
import os
import weakref
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LIB = REPO / "build" / "cpu-x86" / "lib" / "libsyclforge_kl.so"

_P, _S, _F, _I = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_float, ctypes.c_int

# Every op of kl_c.h: the argument types after `kl_runtime *rt`; all return int.
OPS = {
    "kl_gemm": (_P, _P, _P, _S, _S, _S),
    "kl_gemv": (_P, _P, _P, _S, _S),
    "kl_gemv_add": (_P, _P, _P, _P, _S, _S),
    "kl_rmsnorm_gemv": (_P, _P, _P, _P, _S, _S, _F),
    "kl_rmsnorm_gemv_swiglu": (_P, _P, _P, _P, _S, _S, _F),
    "kl_rmsnorm": (_P, _P, _P, _S, _S, _F),
    "kl_layernorm": (_P, _P, _P, _P, _S, _S, _F),
    "kl_softmax": (_P, _P, _S, _S, _I, _S, _F),
    "kl_rope": (_P, _S, _S, _S, _S, _F),
    "kl_rope_qkv": (_P, _P, _P, _S, _S, _S, _S, _S, _S, _F),
    "kl_silu": (_P, _P, _S),
    "kl_gelu_tanh": (_P, _P, _S),
    "kl_gelu_erf": (_P, _P, _S),
    "kl_swiglu": (_P, _P, _P, _S),
    "kl_add": (_P, _P, _P, _S),
    "kl_mul": (_P, _P, _P, _S),
    "kl_embedding": (_P, _P, _P, _S, _S, _S),
    "kl_attention": (_P, _P, _P, _P, _S, _S, _S, _S, _S, _S, _F),
    "kl_sum": (_P, _P, _S, _S),
    "kl_max": (_P, _P, _S, _S),
    "kl_argmax": (_P, _P, _S, _S),
}

# The runtime part of the ABI: name -> (restype, argtypes).
RUNTIME = {
    "kl_create": (_P, (ctypes.c_char_p,)),
    "kl_destroy": (None, (_P,)),
    "kl_last_error": (ctypes.c_char_p, ()),
    "kl_device_name": (ctypes.c_char_p, (_P,)),
    "kl_image": (ctypes.c_char_p, (_P,)),
    "kl_target": (ctypes.c_char_p, ()),
    "kl_toolchain": (ctypes.c_char_p, ()),
    "kl_faults": (ctypes.c_char_p, ()),
    "kl_alloc": (_P, (_P, _S)),
    "kl_free": (None, (_P, _P)),
    "kl_to_device": (_I, (_P, _P, _P, _S)),
    "kl_to_host": (_I, (_P, _P, _P, _S)),
    "kl_wait": (_I, (_P,)),
}


class KLError(RuntimeError):
    """The library refused or failed: .function is the C function, .message
    is kl_last_error() (or why the call could not be made)."""

    def __init__(self, function, message):
        self.function = function
        self.message = message
        # The library's messages already start with the op ("gemm: ..."); add
        # the function's name only where they do not.
        named = message.startswith(function) or message.startswith(function.removeprefix("kl_") + ":")
        super().__init__(message if named else f"{function}: {message}")


class MissingOpError(KLError):
    """The library has no such symbol (not implemented yet, or a stale build)."""


_libs = {}


def load_library(lib=None):
    """The CDLL for lib (default: build/cpu-x86/lib/libsyclforge_kl.so), once per path."""
    path = Path(lib or os.environ.get("SYCLFORGE_KL_LIB") or DEFAULT_LIB).resolve()
    if path not in _libs:
        if not path.exists():
            raise KLError("load", f"{path} does not exist (build it: .venv/bin/scons -Q target=cpu-x86)")
        _libs[path] = ctypes.CDLL(str(path))
    return _libs[path]


def faults(lib=None):
    """The test-only faults the library knows ({name: defect}), which a
    process switches on with KL_FAULTS=name,... before it creates a runtime
    (the mutation tests, tests/test_mutants.py)."""
    fn = load_library(lib).kl_faults
    fn.restype, fn.argtypes = ctypes.c_char_p, ()
    return dict(line.split("\t", 1) for line in fn().decode().splitlines())


def _f32(a, name, ndim=None):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


class Buffer:
    """A device allocation from kl_alloc, with the shape/dtype it holds."""

    def __init__(self, rt, ptr, nbytes, shape, dtype):
        self._rt = rt
        self.ptr = ptr
        self.nbytes = nbytes
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def ptr(self):
        return self._ptr

    @ptr.setter
    def ptr(self, p):
        # ctypes passes a Buffer as void * through _as_parameter_: a plain
        # attribute made once, not a property building a c_void_p each call
        # (~0.5 us an argument, measured in a Python loop of launches)
        self._ptr = p
        self._as_parameter_ = ctypes.c_void_p(p)

    def to_host(self):
        return self._rt.to_host(self)

    def free(self):
        if self.ptr and self._rt._h:
            self._rt._c("kl_free")(self._rt._h, ctypes.c_void_p(self.ptr))
        self.ptr = None

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class Runtime:
    """One kl_runtime: a device, its in-order queue and the chosen image.

    image: None or "" for the loader's choice, else an image id ('avx2',
    'sse4.2', 'spirv', ...), as SYCLFORGE_IMAGE. lib: the library path.
    poison: fill every output buffer with NaN (-2**31 + 7 for int32) before
    the op runs, so an element the op fails to write cannot pass as a stale
    right answer (for tests).

    Threads may share a Runtime: the C ABI takes a lock per runtime, so
    their calls run one at a time (kl_wait holds it until the device is
    done). Threads that should run ops at the same time make one each.
    """

    def __init__(self, image=None, lib=None, poison=False):
        self._lib = load_library(lib)
        self._fns = {}
        self._h = None
        self._buffers = weakref.WeakSet()
        self.poison = poison
        h = self._c("kl_create")(image.encode() if image else None)
        if not h:
            raise KLError("kl_create", self.last_error() or "returned NULL")
        self._h = h

    # -- the ABI, looked up lazily --------------------------------------
    def _c(self, name):
        fn = self._fns.get(name)
        if fn is None:
            try:
                fn = getattr(self._lib, name)
            except AttributeError:
                raise MissingOpError(name, f"the library has no symbol {name} (not implemented yet, "
                                           f"or a stale build: .venv/bin/scons -Q target=cpu-x86)") from None
            if name in OPS:
                fn.restype, fn.argtypes = _I, (_P,) + OPS[name]
            else:
                fn.restype, fn.argtypes = RUNTIME[name][0], RUNTIME[name][1]
            self._fns[name] = fn
        return fn

    def has_op(self, name):
        name = name if name.startswith("kl_") else "kl_" + name
        try:
            self._c(name)
            return True
        except MissingOpError:
            return False

    def last_error(self):
        s = self._c("kl_last_error")()
        return s.decode(errors="replace") if s else ""

    def _check(self, name, rc):
        if rc != 0:
            raise KLError(name, self.last_error() or f"returned {rc} with no kl_last_error()")

    def _handle(self):
        if not self._h:
            raise KLError("runtime", "this Runtime is closed")
        return self._h

    # -- facts --------------------------------------------------------------
    @property
    def image(self):
        return self._c("kl_image")(self._handle()).decode()

    @property
    def device_name(self):
        return self._c("kl_device_name")(self._handle()).decode()

    @property
    def target(self):
        return self._c("kl_target")().decode()

    @property
    def toolchain(self):
        return self._c("kl_toolchain")().decode()

    # -- memory -------------------------------------------------------------
    def alloc(self, nbytes, shape=None, dtype=np.float32):
        p = self._c("kl_alloc")(self._handle(), max(int(nbytes), 1))
        if not p:
            raise KLError("kl_alloc", self.last_error() or f"cannot allocate {nbytes} bytes")
        b = Buffer(self, p, int(nbytes), shape if shape is not None else (int(nbytes) // 4,), dtype)
        self._buffers.add(b)
        return b

    def empty(self, shape, dtype=np.float32):
        shape = tuple(int(s) for s in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
        dtype = np.dtype(dtype)
        b = self.alloc(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, shape, dtype)
        if self.poison and b.nbytes:
            fill = np.nan if dtype.kind == "f" else -(2 ** 31) + 7
            self.copy_in(b, np.full(shape, fill, dtype))
        return b

    def copy_in(self, buf, a):
        a = np.ascontiguousarray(a)
        if a.nbytes > buf.nbytes:
            raise ValueError(f"{a.nbytes} bytes do not fit a {buf.nbytes}-byte buffer")
        if a.nbytes:
            self._check("kl_to_device", self._c("kl_to_device")(self._handle(), buf, a.ctypes.data, a.nbytes))
        return buf

    def to_device(self, a, dtype=np.float32):
        a = np.ascontiguousarray(a, dtype=dtype)
        return self.copy_in(self.alloc(a.nbytes, a.shape, a.dtype), a)

    def to_host(self, buf):
        out = np.empty(buf.shape, buf.dtype)
        self.wait()
        if out.nbytes:
            self._check("kl_to_host", self._c("kl_to_host")(self._handle(), out.ctypes.data, buf, out.nbytes))
        self.wait()
        return out

    def wait(self):
        rc = self._c("kl_wait")(self._handle())
        if rc != 0:
            self._check("kl_wait", rc)

    def bind(self, name, *args):
        """Op `name` with its arguments bound: a function of no arguments
        that enqueues it as call() does (raises KLError on -1; does not
        wait). The arguments are converted to their C types once, here, so
        a loop of launches pays ctypes' conversions once: a 16-float add
        waited for costs ~1.5 us less than call() + wait() (measured
        interleaved in one process, 8.9-9.2 -> 7.6 us).
        The function holds its Buffers (they live as long as it does) and
        their addresses: free none of them while it is in use."""
        name = name if name.startswith("kl_") else "kl_" + name
        fn = self._c(name)
        types = fn.argtypes[1:]
        if len(args) != len(types):
            raise TypeError(f"{name} takes {len(types)} arguments after the runtime, got {len(args)}")
        cargs = tuple(a._as_parameter_ if isinstance(a, Buffer) else a if isinstance(a, t) else t(a)
                      for a, t in zip(args, types))
        self._handle()
        check = self._check

        def enqueue():
            rc = fn(self._h, *cargs)
            if rc != 0:
                check(name, rc)
        enqueue.args = args          # the Buffers live as long as the function
        return enqueue

    def call(self, name, *args):
        """Enqueue op `name` ('kl_gemm' or 'gemm') on device arguments (Buffers,
        ints, floats, raw pointers), after rt; raises KLError on -1. Does not wait."""
        name = name if name.startswith("kl_") else "kl_" + name
        self._check(name, self._c(name)(self._handle(), *args))

    # -- lifetime -----------------------------------------------------------
    def close(self):
        if self._h:
            for b in list(self._buffers):
                b.free()
            self._c("kl_destroy")(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if not self._h:
            return "<syclforge_kl.Runtime closed>"
        return f"<syclforge_kl.Runtime image={self.image} device={self.device_name!r}>"

    # -- ops: NumPy in, NumPy out -------------------------------------------
    def _run(self, name, ins, out_shape, *sizes, out_dtype=np.float32, inplace=None):
        """Copy `ins` to the device, run `name`(ins..., out, *sizes), wait, return out."""
        bufs = [self.to_device(a) for a in ins]
        if inplace is not None:
            out = bufs[inplace]
            args = bufs
        else:
            out = self.empty(out_shape, out_dtype)
            args = bufs + [out]
        try:
            self.call(name, *args, *sizes)
            self.wait()
            return self.to_host(out)
        finally:
            for b in bufs + [out]:
                b.free()

    def gemm(self, x, w):
        """y[M,N] = x[M,K] . w[N,K]^T."""
        x, w = _f32(x, "x", 2), _f32(w, "w", 2)
        (M, K), (N, K2) = x.shape, w.shape
        if K != K2:
            raise ValueError(f"gemm: x is [M={M}, K={K}] but w is [N={N}, K={K2}]")
        return self._run("kl_gemm", [x, w], (M, N), M, N, K)

    def gemv(self, x, w):
        """y[N] = w[N,K] . x[K]."""
        x, w = _f32(x, "x", 1), _f32(w, "w", 2)
        if w.shape[1] != x.shape[0]:
            raise ValueError(f"gemv: w is {w.shape} but x has {x.shape[0]} elements")
        N, K = w.shape
        return self._run("kl_gemv", [x, w], (N,), N, K)

    def gemv_add(self, x, w, residual):
        """y[N] = residual[N] + w[N,K] . x[K] (in place on the residual's device copy)."""
        x, w, residual = _f32(x, "x", 1), _f32(w, "w", 2), _f32(residual, "residual", 1)
        if w.shape[1] != x.shape[0] or residual.shape[0] != w.shape[0]:
            raise ValueError(f"gemv_add: w is {w.shape}, x has {x.shape[0]} elements, residual {residual.shape[0]}")
        N, K = w.shape
        bufs = [self.to_device(a) for a in (x, w, residual)]
        try:
            self.call("kl_gemv_add", *bufs, bufs[2], N, K)
            self.wait()
            return self.to_host(bufs[2])
        finally:
            for b in bufs:
                b.free()

    def rmsnorm_gemv(self, x, weight, w, eps=1e-5):
        """y[N] = w[N,K] . rmsnorm(x[K]; weight, eps)."""
        x, weight, w = _f32(x, "x", 1), _f32(weight, "weight", 1), _f32(w, "w", 2)
        if w.shape[1] != x.shape[0] or weight.shape[0] != x.shape[0]:
            raise ValueError(f"rmsnorm_gemv: w is {w.shape}, x has {x.shape[0]} elements, weight "
                             f"{weight.shape[0]}")
        N, K = w.shape
        return self._run("kl_rmsnorm_gemv", [x, weight, w], (N,), N, K, float(eps))

    def rmsnorm_gemv_swiglu(self, x, weight, w, eps=1e-5):
        """y[N] = silu(g) * u with g, u = w[:N], w[N:] . rmsnorm(x[K]; weight, eps); w is [2N, K]."""
        x, weight, w = _f32(x, "x", 1), _f32(weight, "weight", 1), _f32(w, "w", 2)
        if w.shape[1] != x.shape[0] or weight.shape[0] != x.shape[0] or w.shape[0] % 2:
            raise ValueError(f"rmsnorm_gemv_swiglu: w is {w.shape} (2N rows of K), x has {x.shape[0]} elements, "
                             f"weight {weight.shape[0]}")
        N, K = w.shape[0] // 2, w.shape[1]
        return self._run("kl_rmsnorm_gemv_swiglu", [x, weight, w], (N,), N, K, float(eps))

    def rmsnorm(self, x, weight, eps=1e-5):
        """Per row (last axis) of x: x / sqrt(mean(x^2) + eps) * weight."""
        x, weight = _f32(x, "x"), _f32(weight, "weight", 1)
        dim = x.shape[-1] if x.ndim else 1
        if weight.shape[0] != dim:
            raise ValueError(f"rmsnorm: weight has {weight.shape[0]} elements, rows have {dim}")
        rows = x.size // dim if dim else (int(np.prod(x.shape[:-1])) if x.ndim else 0)
        return self._run("kl_rmsnorm", [x, weight], x.shape, rows, dim, float(eps))

    def layernorm(self, x, weight, bias, eps=1e-5):
        """Per row: (x - mean) / sqrt(var + eps) * weight + bias."""
        x, weight, bias = _f32(x, "x"), _f32(weight, "weight", 1), _f32(bias, "bias", 1)
        dim = x.shape[-1] if x.ndim else 1
        if weight.shape[0] != dim or bias.shape[0] != dim:
            raise ValueError(f"layernorm: weight {weight.shape} and bias {bias.shape} must have {dim} elements")
        rows = x.size // dim if dim else (int(np.prod(x.shape[:-1])) if x.ndim else 0)
        return self._run("kl_layernorm", [x, weight, bias], x.shape, rows, dim, float(eps))

    def softmax(self, x, causal=False, pos0=0, temperature=1.0):
        """Row-wise softmax of x[rows, cols] / temperature; causal: row r sees c <= pos0 + r."""
        x = _f32(x, "x", 2)
        rows, cols = x.shape
        return self._run("kl_softmax", [x], x.shape, rows, cols, int(bool(causal)), int(pos0), float(temperature))

    def rope(self, x, pos0=0, theta=10000.0):
        """RoPE of x[tokens, heads, head_dim] (HF Llama rotate-half); returns a new array."""
        x = _f32(x, "x", 3)
        tokens, heads, head_dim = x.shape
        return self._run("kl_rope", [x], None, tokens, heads, head_dim, int(pos0), float(theta), inplace=0)

    def rope_qkv(self, qkv, n_kv_heads, pos0=0, theta=10000.0):
        """kl_rope_qkv on qkv[tokens, n_heads + 2 n_kv_heads, head_dim]: returns
        [q rotated | k rotated | v] as read back from qkv (q) and from the
        cache rows pos0.. (k, v). The caches start as NaN, so rows the op
        failed to write come back NaN."""
        qkv = _f32(qkv, "qkv", 3)
        tokens, heads, head_dim = qkv.shape
        n_heads = heads - 2 * int(n_kv_heads)
        if n_heads < 0:
            raise ValueError(f"rope_qkv: {heads} heads cannot hold 2 x {n_kv_heads} kv heads")
        max_seq = int(pos0) + tokens + 1          # a row past the stored ones stays NaN
        nan = np.full((max_seq, int(n_kv_heads), head_dim), np.nan, np.float32)
        bufs = [self.to_device(qkv), self.to_device(nan), self.to_device(nan)]
        try:
            self.call("kl_rope_qkv", *bufs, tokens, n_heads, int(n_kv_heads), head_dim, int(pos0), max_seq,
                      float(theta))
            self.wait()
            q_out, k, v = (self.to_host(b) for b in bufs)
        finally:
            for b in bufs:
                b.free()
        rows = slice(int(pos0), int(pos0) + tokens)
        return np.concatenate([q_out[:, :n_heads], k[rows], v[rows]], axis=1)

    def _unary(self, name, x):
        x = _f32(x, "x")
        return self._run(name, [x], x.shape, x.size)

    def silu(self, x):
        return self._unary("kl_silu", x)

    def gelu_tanh(self, x):
        return self._unary("kl_gelu_tanh", x)

    def gelu_erf(self, x):
        return self._unary("kl_gelu_erf", x)

    def _binary(self, name, a, b):
        a, b = _f32(a, "a"), _f32(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} differ")
        return self._run(name, [a, b], a.shape, a.size)

    def swiglu(self, gate, up):
        return self._binary("kl_swiglu", gate, up)

    def add(self, a, b):
        return self._binary("kl_add", a, b)

    def mul(self, a, b):
        return self._binary("kl_mul", a, b)

    def embedding(self, table, ids):
        """y[i, :] = table[ids[i], :]; the library range-checks ids (they stay on the host)."""
        table = _f32(table, "table", 2)
        ids64 = np.asarray(ids).reshape(-1)
        if ids64.size and not np.issubdtype(ids64.dtype, np.integer):
            raise ValueError(f"embedding: ids must be integers, got {ids64.dtype}")
        if ids64.size and (ids64.min() < -2 ** 31 or ids64.max() >= 2 ** 31):
            raise ValueError("embedding: ids must fit int32")
        ids32 = np.ascontiguousarray(ids64, dtype=np.int32)
        vocab, dim = table.shape
        tb = self.to_device(table)
        out = self.empty((ids32.size, dim))
        try:
            self.call("kl_embedding", tb, ids32.ctypes.data_as(ctypes.c_void_p), out, ids32.size, dim, vocab)
            self.wait()
            return self.to_host(out)
        finally:
            tb.free()
            out.free()

    def attention(self, q, k_cache, v_cache, pos0=0, scale=None):
        """Causal GQA: q[tokens, n_heads, head_dim], k_cache/v_cache[max_seq, n_kv_heads,
        head_dim] holding positions 0..pos0+tokens-1; out[tokens, n_heads, head_dim].
        scale defaults to 1/sqrt(head_dim)."""
        q, k, v = _f32(q, "q", 3), _f32(k_cache, "k_cache", 3), _f32(v_cache, "v_cache", 3)
        tokens, n_heads, head_dim = q.shape
        max_seq, n_kv_heads, kd = k.shape
        if v.shape != k.shape:
            raise ValueError(f"attention: k_cache {k.shape} and v_cache {v.shape} differ")
        if kd != head_dim:
            raise ValueError(f"attention: q has head_dim {head_dim}, the cache {kd}")
        if scale is None:
            scale = 1.0 / np.sqrt(head_dim) if head_dim else 1.0
        return self._run("kl_attention", [q, k, v], (tokens, n_heads, head_dim),
                         tokens, n_heads, n_kv_heads, head_dim, int(pos0), max_seq, float(scale))

    def _reduce(self, name, x, out_dtype=np.float32):
        x = _f32(x, "x", 2)
        rows, cols = x.shape
        return self._run(name, [x], (rows,), rows, cols, out_dtype=out_dtype)

    def sum(self, x):
        """Row sums of x[rows, cols]."""
        return self._reduce("kl_sum", x)

    def max(self, x):
        """Row max of x[rows, cols]; NaN if the row holds one."""
        return self._reduce("kl_max", x)

    def argmax(self, x):
        """Row argmax (int32): the first NaN, else the first maximum."""
        return self._reduce("kl_argmax", x, out_dtype=np.int32)

