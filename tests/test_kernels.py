"""Every op of the C ABI (kernels/include/syclforge/kl_c.h), on every device
image of cpu-x86 this CPU can run, against the float64 reference
(kernels/python/reference.py) with the tolerances of kernels/tolerances.yaml.

The library is built once per session (scons target=cpu-x86); one Runtime per
image, forced by id. Output buffers are poisoned with NaN before each op, so
an element an op forgets to write (a tile's tail) cannot pass as a stale
right answer. Shapes are chosen off tile sizes (1, 7, 33, 65, 129, 300).
"""
import ctypes
import os
import re
import sys
import zlib

import numpy as np
import pytest

from helpers import REPO, best_image, cpu_isas, run, scons

sys.path.insert(0, str(REPO / "kernels" / "python"))
import reference as R  # noqa: E402
import tolerance  # noqa: E402
from syclforge_kl import OPS, KLError, MissingOpError, Runtime  # noqa: E402

# SYCLFORGE_TEST_TOOLCHAIN=acpp runs every test on the library AdaptiveCpp
# built (build/cpu-x86/acpp/, toolchain=acpp): tests/test_acpp.py does.
TOOLCHAIN = os.environ.get("SYCLFORGE_TEST_TOOLCHAIN", "oneapi-pip")
BUILD = REPO / "build" / "cpu-x86" / ("" if TOOLCHAIN == "oneapi-pip" else TOOLCHAIN)
LIB = BUILD / "lib" / "libsyclforge_kl.so"
HEADER = REPO / "kernels" / "include" / "syclforge" / "kl_c.h"



# The native ISAs this process may use: the CPU's, less what
# SYCLFORGE_CPU_ISAS leaves out (tests/test_isa_paths.py runs this file again
# as an AVX2 and an SSE4.2 host). Every image they allow runs every test; the
# others must be refused (test_image_the_cpu_lacks_is_refused).
ISAS = cpu_isas()
PORTABLE = ["spirv"] if TOOLCHAIN == "oneapi-pip" else []   # acpp makes no SPIR-V
IMAGES = ISAS + PORTABLE
REFUSED = [i for i in ("avx512", "avx2", "sse4.2") if i not in ISAS]
# How a native image above the process's ISAs is refused: by the OpenCL CPU
# runtime itself (oneapi-pip), or by syclforge's module loader (acpp).
REFUSAL = r"CL_INVALID_BINARY.*lacks this ISA" if TOOLCHAIN == "oneapi-pip" else r"(this CPU lacks|leaves \S+ out)"


@pytest.fixture(scope="session")
def kl_lib():
    """The kernel library, built once per session as test_cpu_build does."""
    if not LIB.exists():   # a lowered run (test_isa_paths.py) reuses the parent's build
        scons("target=cpu-x86", *([] if TOOLCHAIN == "oneapi-pip" else [f"toolchain=oneapi-pip,{TOOLCHAIN}"]))
    assert LIB.exists()
    return LIB


# Runtimes of several images live in one process, created in any order (the
# loader's contract, tests/test_isa_paths.py runs every order): here the
# lowest native image first, the order the CPU runtime once got wrong.
CREATE_ORDER = ["sse4.2", "spirv", "avx2", "avx512"]


@pytest.fixture(scope="session")
def runtimes(kl_lib):
    """{image: Runtime or the exception its creation raised}."""
    made = {}
    for image in CREATE_ORDER:
        if image in IMAGES:
            try:
                made[image] = Runtime(image, lib=kl_lib, poison=True)
            except KLError as e:
                made[image] = e
    yield made
    for r in made.values():
        if isinstance(r, Runtime):
            r.close()


@pytest.fixture(scope="session", params=IMAGES)
def rt(request, runtimes):
    r = runtimes[request.param]
    if isinstance(r, Exception):
        raise r
    assert r.image == request.param
    return r


@pytest.fixture
def rng(request):
    """Reproducible per test: seeded by the test's id."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def check(op, got, want, **inputs):
    res = tolerance.compare(op, got, want, **inputs)
    assert res.ok, str(res)
    return res


def f32(a):
    return np.asarray(a, dtype=np.float32)


def normal(rng, *shape, scale=1.0, loc=0.0):
    return f32(rng.standard_normal(shape) * scale + loc)


def error_of(fn, *args, **kw):
    """The KLError fn raises (fails the test if it raises none, or another)."""
    with pytest.raises(KLError) as info:
        fn(*args, **kw)
    assert not isinstance(info.value, MissingOpError), str(info.value)
    return str(info.value)


SIZES = [1, 7, 33, 65, 129, 300]


# ---------------------------------------------------------------- GEMM, GEMV

GEMM_SHAPES = [(1, 1, 1), (7, 33, 65), (33, 7, 129), (65, 129, 33), (129, 65, 300), (300, 7, 1),
               (1, 300, 129), (64, 64, 64), (5, 3, 1000),
               # several whole k tiles and a tail, columns past N, for each tile of each image (api.cpp,
               # launch_free.cpp): M 20 the mid tile, 100 AVX-512's row tile of 128, 200 and 456 its
               # tile of 256 (the same rows rounded up by 128 or 256)
               (20, 70, 300), (100, 70, 300), (200, 70, 256), (456, 70, 300),
               # AVX2 (launch_free.cpp): from M 33 bands of up to ~288 rows (350: two of 180 and 170, the
               # last row block short; thinner bands where the columns leave a compute unit few), k tiles of equal length up to 512, the last K % 8 copied lane by lane
               # (K 300: one of 300); M 20 (and 33 to 64 on AVX-512) the mid tiles, whose partial k tiles
               # take the gather's general walk
               (350, 70, 300), (370, 70, 300), (292, 70, 300),
               # three k tiles (368, 368, 364): each band's rows reloaded from y between them
               (200, 40, 1100)]


@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
def test_gemm(rt, rng, M, N, K):
    x, w = normal(rng, M, K), normal(rng, N, K, scale=0.5)
    check("gemm", rt.gemm(x, w), R.gemm(x, w), x=x, w=w)


@pytest.mark.parametrize("M,N,K", [(350, 70, 300), (580, 33, 257), (350, 20, 1030)])
def test_gemm_rows_do_not_depend_on_how_many(rt, rng, M, N, K):
    """Every tile sums a row of y in k order, so rows 0..149 of a big GEMM
    are bit-identical to a 150-row GEMM of the same rows, though other
    tiles compute them: on AVX2 bands of other heights (350 rows: 180 and
    170 on 2 compute units; 150: 78 and 72; launch_free.cpp), on AVX-512
    tiles of 128 against one of 256. A tile kind that computes some rows
    differently (another sum order, a row or k offset off by
    one) breaks the identity even where it stays within the tolerance."""
    x, w = normal(rng, M, K), normal(rng, N, K, scale=0.5)
    big, small = rt.gemm(x, w), rt.gemm(x[:150], w)
    np.testing.assert_array_equal(big[:150], small)
    check("gemm", big, R.gemm(x, w), x=x, w=w)


def gemms_in_threads(kl_lib, threads, calls, shape_x, shape_w, shared):
    """Run `threads` Python threads of `calls` GEMMs each, on one shared
    runtime or a runtime each, in a process of its own (a failure there can
    be a segfault); the last line it prints: how many products differed from
    the same call made alone, and the errors raised."""
    image = "avx2" if "avx2" in IMAGES else IMAGES[0]
    script = f"""
import sys, threading
sys.path.insert(0, {str(REPO / "kernels" / "python")!r})
import numpy as np
from syclforge_kl import Runtime
n = {threads}
if {shared!r}:
    rts = [Runtime({image!r}, lib={str(kl_lib)!r})] * n
else:
    rts = [Runtime({image!r}, lib={str(kl_lib)!r}) for _ in range(n)]
rng = np.random.default_rng(0)
xs = [rng.standard_normal({shape_x!r}).astype(np.float32) for _ in range(n)]
ws = [rng.standard_normal({shape_w!r}).astype(np.float32) for _ in range(n)]
want = [rts[i].gemm(xs[i], ws[i]) for i in range(n)]
bad, errors = [], []
def go(i):
    for _ in range({calls}):
        try:
            if not np.array_equal(rts[i].gemm(xs[i], ws[i]), want[i]):
                bad.append(i)
        except Exception as e:
            errors.append(str(e))
threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("bad", len(bad), "errors", len(errors), errors[:2])
"""
    proc = run([sys.executable, "-c", script], timeout=240)
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stdout[-500:]} {proc.stderr[-1500:]}"
    return proc.stdout


def test_threads_with_a_runtime_each_run_ops_at_the_same_time(kl_lib):
    """kl.hpp's threading contract: a Runtime is for one thread at a time,
    and threads that run ops at once make one each. Three threads, their
    own runtimes, 200 GEMMs each (200 x 24 x 40: AVX2's bands, AVX-512's
    row tiles): every product as the same
    call made alone, and no error. Shared process-wide state (a loader
    table, a kernel cache, the OpenCL platform) would show here."""
    out = gemms_in_threads(kl_lib, 3, 200, (200, 40), (24, 40), shared=False)
    assert "bad 0 errors 0 []" in out, out


def test_threads_sharing_one_runtime_through_the_c_abi(kl_lib):
    """The C ABI takes a lock per runtime (kl_c.h): four Python threads
    sharing one runtime, 1000 small GEMMs each (to the device, the op,
    kl_wait, back), every product as the same call made alone and no error.
    Without the lock this failed in 5 of 5 runs (with 300 GEMMs a thread,
    2 of 3): kl_wait reporting UR_RESULT_ERROR_INVALID_EVENT, or a segfault
    in the OpenCL runtime."""
    out = gemms_in_threads(kl_lib, 4, 1000, (200, 8), (32, 8), shared=True)
    assert "bad 0 errors 0 []" in out, out


def test_gemm_is_x_times_w_transposed(rt):
    """y = x . w^T with w [out, in]: a non-square case that a transposed
    reading of w would get wrong."""
    x = f32([[1, 2, 3]])                 # [M=1, K=3]
    w = f32([[1, 0, 0], [0, 0, 1]])      # [N=2, K=3]
    np.testing.assert_array_equal(rt.gemm(x, w), f32([[1, 3]]))


@pytest.mark.parametrize("M,N,K", [(0, 5, 7), (5, 0, 7), (0, 0, 0), (0, 3, 0)])
def test_gemm_empty(rt, M, N, K):
    y = rt.gemm(np.zeros((M, K), np.float32), np.zeros((N, K), np.float32))
    assert y.shape == (M, N)


def test_gemm_empty_reduction_is_zero(rt):
    """K = 0: y = x . w^T is an empty sum, all zeros (as NumPy); the output is
    poisoned with NaN first, so an op that skips the launch leaves NaN."""
    y = rt.gemm(np.zeros((3, 0), np.float32), np.zeros((4, 0), np.float32))
    np.testing.assert_array_equal(y, np.zeros((3, 4), np.float32))


def test_gemm_large_magnitude(rt, rng):
    x, w = normal(rng, 7, 33, scale=1e17), normal(rng, 5, 33, scale=1e17)   # sums ~1e35 < FLT_MAX
    check("gemm", rt.gemm(x, w), R.gemm(x, w), x=x, w=w)


def test_gemm_nan_inf_propagate(rt, rng):
    x, w = normal(rng, 9, 33), normal(rng, 7, 33)
    x[2, 3] = np.nan             # row 2 of y: all NaN
    w[4, 5] = np.inf             # column 4: +-Inf by x[:, 5]'s sign ...
    x[6, 5] = 0.0                # ... and 0 * Inf = NaN at (6, 4)
    w[1, 7] = -np.inf
    w[1, 8] = np.inf
    x[0, 7], x[0, 8] = 1.0, 1.0  # -Inf + Inf = NaN at (0, 1)
    y = rt.gemm(x, w)
    check("gemm", y, R.gemm(x, w), x=x, w=w)
    assert np.isnan(y[2]).all() and np.isnan(y[6, 4]) and np.isnan(y[0, 1])


GEMV_SHAPES = [(1, 1), (7, 65), (33, 129), (300, 33), (768, 288), (129, 300), (1, 1000), (65, 1)]


@pytest.mark.parametrize("N,K", GEMV_SHAPES)
def test_gemv(rt, rng, N, K):
    x, w = normal(rng, K), normal(rng, N, K, scale=0.1)
    check("gemv", rt.gemv(x, w), R.gemv(x, w), x=x, w=w)


@pytest.mark.parametrize("N,K", [(0, 7), (0, 0)])
def test_gemv_empty(rt, N, K):
    assert rt.gemv(np.zeros(K, np.float32), np.zeros((N, K), np.float32)).shape == (N,)


def test_gemv_empty_reduction_is_zero(rt):
    np.testing.assert_array_equal(rt.gemv(np.zeros(0, np.float32), np.zeros((5, 0), np.float32)),
                                  np.zeros(5, np.float32))


def test_gemv_nan_inf_propagate(rt, rng):
    x, w = normal(rng, 65), normal(rng, 33, 65)
    x[3] = np.nan                # every output NaN
    check("gemv", rt.gemv(x, w), R.gemv(x, w), x=x, w=w)
    x[3] = 1.0
    w[5, 10] = np.nan            # y[5] NaN only
    w[9, 11] = np.inf
    x[11] = -2.0                 # y[9] = -Inf
    y = rt.gemv(x, w)
    check("gemv", y, R.gemv(x, w), x=x, w=w)
    assert np.isnan(y[5]) and y[9] == -np.inf and np.isfinite(np.delete(y, [5, 9])).all()


@pytest.mark.parametrize("N,K", GEMV_SHAPES + [(288, 768)])
def test_gemv_add(rt, rng, N, K):
    x, w, residual = normal(rng, K), normal(rng, N, K, scale=0.1), normal(rng, N, scale=3.0)
    check("gemv_add", rt.gemv_add(x, w, residual), R.gemv_add(x, w, residual), x=x, w=w, residual=residual)


def test_gemv_add_is_the_gemv_and_add_it_replaces(rt, rng):
    """Decode swaps `gemv; add` for the fused op: the same bits, so the
    model's tokens cannot move (res + sum rounds as the separate add did)."""
    x, w, residual = normal(rng, 768), normal(rng, 288, 768, scale=0.1), normal(rng, 288, scale=3.0)
    np.testing.assert_array_equal(rt.gemv_add(x, w, residual), rt.add(residual, rt.gemv(x, w)))


def test_gemv_add_empty_reduction_is_the_residual(rt, rng):
    residual = normal(rng, 5)
    np.testing.assert_array_equal(rt.gemv_add(np.zeros(0, np.float32), np.zeros((5, 0), np.float32), residual),
                                  residual)


def test_gemv_add_refuses_overlaps(rt, rng):
    """In place on the residual is the use (test_gemv_add runs so); y over
    x or w, or a residual shifted against y, would race: refused."""
    w, xs, ys = rt.to_device(normal(rng, 16, 16)), rt.to_device(normal(rng, 16)), rt.to_device(normal(rng, 32))
    try:
        assert "y overlaps x or w" in error_of(rt.call, "kl_gemv_add", ys, w, ys, ys, 16, 16)
        assert "y overlaps x or w" in error_of(rt.call, "kl_gemv_add", xs, w, ys, w, 4, 16)
        shifted = ctypes.c_void_p(ys.ptr + 4)
        assert "residual overlaps y without being y" in error_of(rt.call, "kl_gemv_add", xs, w, shifted, ys, 16, 16)
    finally:
        for b in (w, xs, ys):
            b.free()


@pytest.mark.parametrize("N,K", GEMV_SHAPES + [(480, 288), (32000, 64)])
def test_rmsnorm_gemv(rt, rng, N, K):
    x, weight, w = normal(rng, K, scale=2.0), normal(rng, K, loc=1.0, scale=0.2), normal(rng, N, K, scale=0.1)
    check("rmsnorm_gemv", rt.rmsnorm_gemv(x, weight, w, 1e-5), R.rmsnorm_gemv(x, weight, w, 1e-5), x=x,
          weight=weight, w=w, eps=1e-5)


@pytest.mark.parametrize("magnitude", [3e-3, 1e15])
def test_rmsnorm_gemv_magnitudes(rt, rng, magnitude):
    """Near eps (eps inside the square root matters) and large (no overflow)."""
    x, weight, w = normal(rng, 300, scale=magnitude), normal(rng, 300, loc=1.0, scale=0.2), normal(rng, 33, 300)
    check("rmsnorm_gemv", rt.rmsnorm_gemv(x, weight, w, 1e-5), R.rmsnorm_gemv(x, weight, w, 1e-5), x=x,
          weight=weight, w=w, eps=1e-5)
    w2 = normal(rng, 66, 300)   # gate and up
    check("rmsnorm_gemv_swiglu", rt.rmsnorm_gemv_swiglu(x, weight, w2, 1e-5), R.rmsnorm_gemv_swiglu(x, weight, w2, 1e-5),
          x=x, weight=weight, w=w2, eps=1e-5)


def test_rmsnorm_gemv_is_the_norm_and_gemv_it_replaces(rt, rng):
    """Decode swaps `rmsnorm; gemv` for the fused op: on oneapi-pip's images
    the same bits (a sub-group is the lanes, so rms_inv sums as kl_rmsnorm
    does), so the model's tokens cannot move. AdaptiveCpp's sub-groups are
    not the lanes: there the work-group sums in another order, within the
    tolerance."""
    for K, N in ((288, 480), (768, 2304), (1029, 33)):
        x, weight, w = normal(rng, K, scale=2.0), normal(rng, K, loc=1.0, scale=0.2), normal(rng, N, K, scale=0.1)
        fused, separate = rt.rmsnorm_gemv(x, weight, w, 1e-5), rt.gemv(rt.rmsnorm(x[None, :], weight, 1e-5)[0], w)
        if rt.toolchain == "oneapi-pip":
            np.testing.assert_array_equal(fused, separate)
        else:
            check("rmsnorm_gemv", fused, R.rmsnorm_gemv(x, weight, w, 1e-5), x=x, weight=weight, w=w, eps=1e-5)


def test_rmsnorm_gemv_empty_and_bad_arguments(rt, rng):
    np.testing.assert_array_equal(rt.rmsnorm_gemv(np.zeros(0, np.float32), np.zeros(0, np.float32),
                                                  np.zeros((5, 0), np.float32)), np.zeros(5, np.float32))
    assert "eps" in error_of(rt.rmsnorm_gemv, normal(rng, 8), normal(rng, 8), normal(rng, 4, 8), -1.0)
    buf, w = rt.to_device(normal(rng, 64)), rt.to_device(normal(rng, 16, 16))
    try:
        msg = error_of(rt.call, "kl_rmsnorm_gemv", buf, buf, w, buf, 16, 16, 1e-5)
        assert "y overlaps x, norm_weight or w" in msg, msg
    finally:
        buf.free(), w.free()


@pytest.mark.parametrize("N,K", [(1, 5), (7, 33), (37, 288), (65, 16), (768, 288), (301, 1029), (2048, 768)])
def test_rmsnorm_gemv_swiglu(rt, rng, N, K):
    """Odd N (a work-group's 32 outputs and a work-item's 4 split unevenly,
    the up rows' clamp at 2N), K with and without a short tail, and
    minillm's gate/up shapes (hidden 768 of dim 288, 2048 of 768)."""
    x, weight, w = normal(rng, K, scale=2.0), normal(rng, K, loc=1.0, scale=0.2), normal(rng, 2 * N, K, scale=0.1)
    check("rmsnorm_gemv_swiglu", rt.rmsnorm_gemv_swiglu(x, weight, w, 1e-5),
          R.rmsnorm_gemv_swiglu(x, weight, w, 1e-5), x=x, weight=weight, w=w, eps=1e-5)


def test_rmsnorm_gemv_swiglu_is_the_ops_it_replaces(rt, rng):
    """Decode swaps `rmsnorm_gemv (gate and up); swiglu` for the fused op:
    the same bits on oneapi-pip's images (each output's gate and up row are
    summed as the GEMV sums them, SwiGLU is the same formula), so the
    tokens cannot move; elsewhere within the tolerance."""
    for N, K in ((768, 288), (2048, 768), (33, 1029)):
        x, weight, w = normal(rng, K, scale=2.0), normal(rng, K, loc=1.0, scale=0.2), normal(rng, 2 * N, K, scale=0.1)
        fused = rt.rmsnorm_gemv_swiglu(x, weight, w, 1e-5)
        gate_up = rt.rmsnorm_gemv(x, weight, w, 1e-5)
        separate = rt.swiglu(gate_up[:N], gate_up[N:])
        if rt.toolchain == "oneapi-pip":
            np.testing.assert_array_equal(fused, separate)
        else:
            check("rmsnorm_gemv_swiglu", fused, R.rmsnorm_gemv_swiglu(x, weight, w, 1e-5), x=x, weight=weight, w=w,
                  eps=1e-5)


def test_rmsnorm_gemv_swiglu_tolerance_catches_swapped_halves(rng):
    """The tolerance is a test: the realistic slip of reading the up half as
    the gate (silu(u) * g) fails it, by orders of magnitude; the float32
    result of the separate ops, computed here, passes."""
    N, K = 96, 288
    x, weight, w = normal(rng, K, scale=2.0), normal(rng, K, loc=1.0, scale=0.2), normal(rng, 2 * N, K, scale=0.1)
    ref = R.rmsnorm_gemv_swiglu(x, weight, w, 1e-5)
    h = (x / np.sqrt(np.mean(x * x, dtype=np.float32) + np.float32(1e-5)) * weight).astype(np.float32)
    g, u = (w[:N] @ h).astype(np.float32), (w[N:] @ h).astype(np.float32)
    good = (g / (np.float32(1) + np.exp(-g))) * u
    swapped = (u / (np.float32(1) + np.exp(-u))) * g
    assert tolerance.compare("rmsnorm_gemv_swiglu", good, ref, x=x, weight=weight, w=w, eps=1e-5).ok
    bad = tolerance.compare("rmsnorm_gemv_swiglu", swapped, ref, x=x, weight=weight, w=w, eps=1e-5)
    assert not bad.ok and bad.value > 1000 * bad.threshold, bad


def test_rmsnorm_gemv_swiglu_empty_and_bad_arguments(rt, rng):
    np.testing.assert_array_equal(rt.rmsnorm_gemv_swiglu(np.zeros(0, np.float32), np.zeros(0, np.float32),
                                                         np.zeros((6, 0), np.float32)), np.zeros(3, np.float32))
    assert "eps" in error_of(rt.rmsnorm_gemv_swiglu, normal(rng, 8), normal(rng, 8), normal(rng, 4, 8), -1.0)
    with pytest.raises(ValueError, match="2N rows"):   # an odd number of rows has no halves
        rt.rmsnorm_gemv_swiglu(normal(rng, 8), normal(rng, 8), normal(rng, 5, 8))
    buf, w = rt.to_device(normal(rng, 64)), rt.to_device(normal(rng, 32, 16))
    try:
        msg = error_of(rt.call, "kl_rmsnorm_gemv_swiglu", buf, buf, w, buf, 16, 16, 1e-5)
        assert "y overlaps x, norm_weight or w" in msg, msg
        # y over the last up row: the up half is w's too
        in_up = ctypes.c_void_p(w.ptr + 4 * (2 * 4 * 16 - 4))
        msg = error_of(rt.call, "kl_rmsnorm_gemv_swiglu", buf, buf, w, in_up, 4, 16, 1e-5)
        assert "y overlaps x, norm_weight or w" in msg, msg
    finally:
        buf.free(), w.free()


# ---------------------------------------------------------------- norms

NORM_SHAPES = [(1, 1), (7, 33), (3, 65), (2, 129), (5, 300), (1, 4096), (65, 7)]


@pytest.mark.parametrize("rows,dim", NORM_SHAPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-6])
def test_rmsnorm(rt, rng, rows, dim, eps):
    x, weight = normal(rng, rows, dim, scale=2.0), normal(rng, dim, loc=1.0, scale=0.2)
    check("rmsnorm", rt.rmsnorm(x, weight, eps), R.rmsnorm(x, weight, eps), x=x, weight=weight, eps=eps)


@pytest.mark.parametrize("magnitude", [1e15, 3e-3, 1e-15, 1e-30])
def test_rmsnorm_magnitudes(rt, rng, magnitude):
    """Large rows stay finite (sum of squares ~1e32 < FLT_MAX); at 3e-3,
    mean(x^2) ~ eps, so eps must sit inside the square root; tiny rows are
    dominated by eps."""
    x, weight = normal(rng, 4, 129, scale=magnitude), normal(rng, 129, loc=1.0, scale=0.2)
    check("rmsnorm", rt.rmsnorm(x, weight, 1e-6), R.rmsnorm(x, weight, 1e-6), x=x, weight=weight, eps=1e-6)


def test_rmsnorm_nan_inf(rt, rng):
    """NaN poisons its row; Inf makes mean(x^2) Inf: x/Inf = 0 for the finite
    elements, Inf/Inf = NaN for itself; other rows untouched."""
    x, weight = normal(rng, 4, 33), normal(rng, 33, loc=1.0, scale=0.2)
    x[1, 5] = np.nan
    x[2, 7] = np.inf
    y = rt.rmsnorm(x, weight, 1e-5)
    check("rmsnorm", y, R.rmsnorm(x, weight, 1e-5), x=x, weight=weight, eps=1e-5)
    assert np.isnan(y[1]).all() and np.isnan(y[2, 7]) and np.isfinite(y[[0, 3]]).all()


@pytest.mark.parametrize("rows,dim", [(0, 33), (3, 0), (0, 0)])
def test_rmsnorm_empty(rt, rows, dim):
    y = rt.rmsnorm(np.zeros((rows, dim), np.float32), np.ones(dim, np.float32), 1e-5)
    assert y.shape == (rows, dim)


@pytest.mark.parametrize("rows,dim", NORM_SHAPES)
def test_layernorm(rt, rng, rows, dim):
    x = normal(rng, rows, dim, scale=2.0, loc=0.5)
    weight, bias = normal(rng, dim, loc=1.0, scale=0.2), normal(rng, dim, scale=0.1)
    check("layernorm", rt.layernorm(x, weight, bias, 1e-5), R.layernorm(x, weight, bias, 1e-5),
          x=x, weight=weight, bias=bias, eps=1e-5)


def test_layernorm_constant_row_is_bias(rt, rng):
    """A constant row has var 0: (x - mean) = 0 exactly, y = bias (biased
    variance, eps keeps the division finite)."""
    x = np.full((3, 65), 3.25, np.float32)
    weight, bias = normal(rng, 65), normal(rng, 65)
    y = rt.layernorm(x, weight, bias, 1e-5)
    check("layernorm", y, R.layernorm(x, weight, bias, 1e-5), x=x, weight=weight, bias=bias, eps=1e-5)


def test_layernorm_uses_biased_variance(rt):
    """dim = 2, x = [-1, 1]: biased var = 1 gives +-1 (unbiased would give +-0.707)."""
    y = rt.layernorm(f32([[-1, 1]]), f32([1, 1]), f32([0, 0]), 0.0)
    np.testing.assert_allclose(y, [[-1, 1]], rtol=1e-6)


def test_layernorm_large_magnitude(rt, rng):
    x = normal(rng, 3, 129, scale=1e15)
    weight, bias = normal(rng, 129, loc=1.0, scale=0.2), normal(rng, 129, scale=0.1)
    check("layernorm", rt.layernorm(x, weight, bias, 1e-5), R.layernorm(x, weight, bias, 1e-5),
          x=x, weight=weight, bias=bias, eps=1e-5)


def test_layernorm_nan_inf(rt, rng):
    x = normal(rng, 4, 33)
    weight, bias = normal(rng, 33, loc=1.0), normal(rng, 33)
    x[1, 5] = np.nan
    x[2, 7] = np.inf    # mean Inf, Inf - Inf: the whole row NaN
    y = rt.layernorm(x, weight, bias, 1e-5)
    check("layernorm", y, R.layernorm(x, weight, bias, 1e-5), x=x, weight=weight, bias=bias, eps=1e-5)
    assert np.isnan(y[[1, 2]]).all() and np.isfinite(y[[0, 3]]).all()


@pytest.mark.parametrize("rows,dim", [(0, 33), (3, 0)])
def test_layernorm_empty(rt, rows, dim):
    y = rt.layernorm(np.zeros((rows, dim), np.float32), np.ones(dim, np.float32), np.zeros(dim, np.float32))
    assert y.shape == (rows, dim)


# ---------------------------------------------------------------- softmax

SOFTMAX_SHAPES = [(1, 1), (7, 33), (3, 65), (2, 129), (5, 300), (1, 32000), (65, 7)]


@pytest.mark.parametrize("rows,cols", SOFTMAX_SHAPES)
@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.0])
def test_softmax(rt, rng, rows, cols, temperature):
    x = normal(rng, rows, cols, scale=3.0)
    y = rt.softmax(x, temperature=temperature)
    check("softmax", y, R.softmax(x, temperature=temperature), x=x, temperature=temperature)


@pytest.mark.parametrize("rows,cols,pos0", [(5, 5, 0), (7, 40, 33), (3, 33, 100), (65, 129, 0), (1, 300, 7),
                                            (33, 65, 32)])
def test_softmax_causal(rt, rng, rows, cols, pos0):
    """Row r sees c <= pos0 + r; the rest are exactly 0, and a NaN there does
    not leak into the row."""
    x = normal(rng, rows, cols, scale=3.0)
    seen = R.causal_mask(rows, cols, pos0)
    x[~seen] = np.nan
    y = rt.softmax(x, causal=True, pos0=pos0, temperature=0.8)
    check("softmax", y, R.softmax(x, True, pos0, 0.8), x=x, causal=True, pos0=pos0, temperature=0.8)
    assert (y[~seen] == 0).all()


@pytest.mark.parametrize("loc,scale,temperature", [(1e4, 3.0, 1.0), (1e4, 3.0, 0.7), (-1e4, 3.0, 1.0),
                                                   (0.0, 1e4, 1.0), (3e4, 30.0, 2.0)])
def test_softmax_large_magnitude(rt, rng, loc, scale, temperature):
    """Logits ~1e4 must not overflow exp: finite, and correct within the
    conditioning of float32 logits."""
    x = normal(rng, 4, 300, loc=loc, scale=scale)
    y = rt.softmax(x, temperature=temperature)
    assert np.isfinite(y).all()
    check("softmax", y, R.softmax(x, temperature=temperature), x=x, temperature=temperature)


def test_softmax_nan_inf(rt, rng):
    """IEEE through max-subtracted exp: a visible NaN makes its row NaN; -Inf
    gets probability 0; +Inf gives Inf - Inf = NaN; an all -Inf row is NaN."""
    x = normal(rng, 5, 33)
    x[0, 3] = np.nan
    x[1, 4] = -np.inf
    x[2, 5] = np.inf
    x[3, :] = -np.inf
    y = rt.softmax(x)
    check("softmax", y, R.softmax(x), x=x)
    assert np.isnan(y[0]).all() and y[1, 4] == 0 and np.isfinite(y[[1, 4]]).all()


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_softmax_temperature_must_be_positive(rt, temperature):
    msg = error_of(rt.softmax, np.zeros((2, 3), np.float32), temperature=temperature)
    assert "temperature" in msg, msg


@pytest.mark.parametrize("rows,cols", [(0, 5), (3, 0), (0, 0)])
def test_softmax_empty(rt, rows, cols):
    assert rt.softmax(np.zeros((rows, cols), np.float32), causal=True).shape == (rows, cols)


# ---------------------------------------------------------------- RoPE

ROPE_CASES = [(1, 1, 2, 0, 10000.0), (7, 3, 64, 0, 10000.0), (5, 2, 128, 37, 10000.0), (3, 4, 6, 1, 10000.0),
              (33, 1, 16, 4095, 10000.0), (2, 8, 64, 100000, 500000.0), (65, 2, 32, 7, 1e6)]


@pytest.mark.parametrize("tokens,heads,head_dim,pos0,theta", ROPE_CASES)
def test_rope(rt, rng, tokens, heads, head_dim, pos0, theta):
    x = normal(rng, tokens, heads, head_dim)
    y = rt.rope(x, pos0, theta)
    check("rope", y, R.rope(x, pos0, theta), x=x, pos0=pos0, theta=theta)


def test_rope_is_rotate_half(rt):
    """head_dim 4, position 1, theta 1 (inv_freq = 1, 1): element 0 pairs with
    element 2 (rotate-half), not element 1 (interleaved GPT-J)."""
    x = f32([[[1, 0, 0, 0]]])
    y = rt.rope(x, pos0=1, theta=1.0)
    c, s = np.cos(1.0), np.sin(1.0)
    np.testing.assert_allclose(y, [[[c, 0, s, 0]]], atol=1e-6)


def test_rope_position_zero_is_identity(rt, rng):
    x = normal(rng, 1, 3, 64)
    np.testing.assert_array_equal(rt.rope(x, 0, 10000.0), x)


def test_rope_nan_stays_in_its_pair(rt, rng):
    x = normal(rng, 3, 2, 8)
    x[1, 1, 2] = np.nan          # pairs with element 6 of the same token and head
    y = rt.rope(x, 5, 10000.0)
    check("rope", y, R.rope(x, 5, 10000.0), x=x, pos0=5, theta=10000.0)
    assert np.isnan(y[1, 1, [2, 6]]).all() and np.isnan(y).sum() == 2


def test_rope_odd_head_dim_is_an_error(rt):
    msg = error_of(rt.rope, np.zeros((2, 2, 5), np.float32), 0, 10000.0)
    assert "head_dim" in msg and "5" in msg, msg


@pytest.mark.parametrize("shape", [(0, 2, 8), (3, 0, 8), (3, 2, 0)])
def test_rope_empty(rt, shape):
    assert rt.rope(np.zeros(shape, np.float32), 3, 10000.0).shape == shape


@pytest.mark.parametrize("tokens,n_heads,n_kv,head_dim,pos0,theta", [
    (1, 6, 2, 48, 126, 10000.0), (1, 12, 4, 64, 1000, 10000.0), (3, 4, 4, 8, 0, 10000.0),
    (7, 3, 1, 30, 5, 500000.0), (1, 2, 1, 2, 70000, 10000.0)])
def test_rope_qkv(rt, rng, tokens, n_heads, n_kv, head_dim, pos0, theta):
    qkv = normal(rng, tokens, n_heads + 2 * n_kv, head_dim)
    check("rope_qkv", rt.rope_qkv(qkv, n_kv, pos0, theta), R.rope_qkv(qkv, n_kv, pos0, theta), qkv=qkv,
          n_kv_heads=n_kv, pos0=pos0, theta=theta)


def test_rope_qkv_is_the_rope_and_copies_it_replaces(rt, rng):
    """Decode swaps `rope; copy k; copy v` for the fused op: the same bits
    (the same rotation of the same values), so the tokens cannot move."""
    n_heads, n_kv, hd, pos = 6, 2, 48, 126
    qkv = normal(rng, 1, n_heads + 2 * n_kv, hd)
    separate = rt.rope(qkv[:, :n_heads + n_kv], pos, 10000.0)
    np.testing.assert_array_equal(rt.rope_qkv(qkv, n_kv, pos, 10000.0),
                                  np.concatenate([separate, qkv[:, n_heads + n_kv:]], axis=1))


def test_rope_qkv_leaves_k_and_v_of_qkv_and_other_cache_rows(rt, rng):
    n_heads, n_kv, hd, pos, max_seq = 4, 2, 16, 3, 8
    qkv = normal(rng, 2, n_heads + 2 * n_kv, hd)
    cache = normal(rng, max_seq, n_kv, hd)
    bufs = [rt.to_device(qkv), rt.to_device(cache), rt.to_device(cache)]
    try:
        rt.call("kl_rope_qkv", *bufs, 2, n_heads, n_kv, hd, pos, max_seq, 10000.0)
        rt.wait()
        q_out, k, v = (rt.to_host(b) for b in bufs)
    finally:
        for b in bufs:
            b.free()
    np.testing.assert_array_equal(q_out[:, n_heads:], qkv[:, n_heads:])       # k and v of qkv untouched
    others = [r for r in range(max_seq) if r not in (pos, pos + 1)]
    np.testing.assert_array_equal(k[others], cache[others])
    np.testing.assert_array_equal(v[others], cache[others])
    np.testing.assert_array_equal(v[[pos, pos + 1]], qkv[:, n_heads + n_kv:])


def test_rope_qkv_bad_arguments_are_errors(rt):
    qkv, cache = rt.to_device(np.zeros((1, 8, 8), np.float32)), rt.to_device(np.zeros((4, 2, 8), np.float32))
    try:
        msg = error_of(rt.call, "kl_rope_qkv", qkv, cache, cache, 1, 4, 2, 8, 4, 4, 10000.0)
        assert "exceeds the cache's max_seq = 4" in msg, msg
        msg = error_of(rt.call, "kl_rope_qkv", qkv, cache, cache, 1, 4, 2, 8, 0, 4, -1.0)
        assert "theta" in msg, msg
        assert "head_dim" in error_of(rt.call, "kl_rope_qkv", qkv, cache, cache, 1, 5, 2, 7, 0, 4, 10000.0)
        msg = error_of(rt.call, "kl_rope_qkv", qkv, cache, cache, 1, 4, 2, 8, 0, 4, 10000.0)   # k and v one cache
        assert "must not overlap" in msg, msg
    finally:
        qkv.free(), cache.free()


# ---------------------------------------------------------------- activations

ACTIVATIONS = {"silu": R.silu, "gelu_tanh": R.gelu_tanh, "gelu_erf": R.gelu_erf}
SPECIAL_X = f32([-1e30, -1e4, -100, -80, -50, -20, -9, -5, -3, -1, -0.5, -1e-3, -1e-30, -0.0, 0.0, 1e-30,
                 1e-3, 0.5, 1, 3, 5, 9, 20, 50, 80, 100, 1e4, 1e30])


@pytest.mark.parametrize("op", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES + [4099])
def test_activation(rt, rng, op, n):
    x = normal(rng, n, scale=4.0)
    check(op, getattr(rt, op)(x), ACTIVATIONS[op](x), x=x)


@pytest.mark.parametrize("op", ACTIVATIONS)
def test_activation_special_values(rt, op):
    """Tails, tiny and huge inputs (x^3 overflows float32 in gelu_tanh: tanh
    saturates, still right)."""
    check(op, getattr(rt, op)(SPECIAL_X), ACTIVATIONS[op](SPECIAL_X), x=SPECIAL_X)


@pytest.mark.parametrize("op", ACTIVATIONS)
def test_activation_nan_inf(rt, op):
    """IEEE through the written formula: f(NaN) = NaN, f(+Inf) = +Inf,
    f(-Inf) = -Inf * 0 = NaN."""
    x = f32([np.nan, np.inf, -np.inf, 1.0])
    y = getattr(rt, op)(x)
    check(op, y, ACTIVATIONS[op](x), x=x)


@pytest.mark.parametrize("op", ACTIVATIONS)
def test_activation_empty(rt, op):
    assert getattr(rt, op)(np.zeros(0, np.float32)).shape == (0,)


@pytest.mark.parametrize("n", SIZES)
def test_swiglu(rt, rng, n):
    gate, up = normal(rng, n, scale=4.0), normal(rng, n, scale=2.0)
    check("swiglu", rt.swiglu(gate, up), R.swiglu(gate, up), gate=gate, up=up)


def test_swiglu_special_values(rt):
    gate = np.concatenate([SPECIAL_X, f32([np.nan, np.inf, -np.inf, 1.0, np.inf])])
    up = np.concatenate([np.full(SPECIAL_X.shape, 1.5, np.float32), f32([1.0, 2.0, 2.0, np.nan, 0.0])])
    check("swiglu", rt.swiglu(gate, up), R.swiglu(gate, up), gate=gate, up=up)


def test_swiglu_is_silu_of_gate(rt):
    """silu(gate) * up, not gate * silu(up)."""
    y = rt.swiglu(f32([2.0]), f32([3.0]))
    assert abs(y[0] - 2.0 / (1 + np.exp(-2.0)) * 3.0) < 1e-5


def _wide(rng, n):
    """float32 values over 20 decades with both signs (products stay normal)."""
    return f32(rng.standard_normal(n) * 10.0 ** rng.uniform(-10, 10, n))


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("n", SIZES + [4099])
def test_add_mul(rt, rng, op, n):
    a, b = _wide(rng, n), _wide(rng, n)
    if op == "add":
        b[: n // 3] = -a[: n // 3] * f32(1 + 2.0 ** -20)    # near-cancellation
    check(op, getattr(rt, op)(a, b), getattr(R, op)(a, b), a=a, b=b)


@pytest.mark.parametrize("op", ["add", "mul"])
def test_add_mul_nan_inf(rt, op):
    a = f32([np.nan, np.inf, np.inf, -np.inf, 0.0, 3e38, 1.0])
    b = f32([1.0, -np.inf, np.inf, 2.0, np.inf, 3e38, np.nan])
    check(op, getattr(rt, op)(a, b), getattr(R, op)(a, b), a=a, b=b)


@pytest.mark.parametrize("op", ["add", "mul", "swiglu"])
def test_binary_empty(rt, op):
    assert getattr(rt, op)(np.zeros(0, np.float32), np.zeros(0, np.float32)).shape == (0,)


# ---------------------------------------------------------------- embedding

@pytest.mark.parametrize("n_ids,dim", [(1, 1), (7, 33), (65, 7), (3, 300), (129, 65)])
def test_embedding(rt, rng, n_ids, dim):
    vocab = 50
    table = normal(rng, vocab, dim)
    table[7, 0] = np.nan
    table[8, -1] = -0.0
    ids = rng.integers(0, vocab, n_ids)
    ids[0] = vocab - 1
    if n_ids > 2:
        ids[1], ids[2] = 0, 7
    y = rt.embedding(table, ids)
    check("embedding", y, R.embedding(table, ids), table=table)
    np.testing.assert_array_equal(y.view(np.uint32), table[ids].view(np.uint32))   # bit for bit


@pytest.mark.parametrize("bad", [50, 1234567, -1, -3])
def test_embedding_id_out_of_range_names_it(rt, bad):
    table = np.ones((50, 4), np.float32)
    msg = error_of(rt.embedding, table, [0, 1, bad, 2])
    assert re.search(rf"(?<![\d-]){re.escape(str(bad))}(?!\d)", msg), msg
    # the runtime stays usable after a refused call
    np.testing.assert_array_equal(rt.embedding(table, [3]), np.ones((1, 4), np.float32))


@pytest.mark.parametrize("n_ids,dim", [(0, 4), (3, 0)])
def test_embedding_empty(rt, n_ids, dim):
    assert rt.embedding(np.ones((5, dim), np.float32), np.zeros(n_ids, np.int32)).shape == (n_ids, dim)


# ---------------------------------------------------------------- attention

def kv_cache(rng, max_seq, n_kv, head_dim, ctx, scale=1.0):
    """A cache holding positions 0..ctx-1; the slots beyond are NaN: the op
    must not read them."""
    k, v = normal(rng, max_seq, n_kv, head_dim, scale=scale), normal(rng, max_seq, n_kv, head_dim)
    k[ctx:], v[ctx:] = np.nan, np.nan
    return k, v


ATTN_CASES = [  # tokens, n_heads, n_kv_heads, head_dim, pos0, max_seq
    (1, 1, 1, 1, 0, 1), (1, 8, 2, 64, 37, 64), (7, 4, 1, 32, 0, 7), (5, 6, 3, 65, 10, 20),
    (33, 2, 2, 8, 0, 40), (3, 12, 4, 128, 300, 310), (1, 4, 4, 16, 128, 129), (7, 3, 1, 7, 1, 9)]


@pytest.mark.parametrize("tokens,n_heads,n_kv,head_dim,pos0,max_seq", ATTN_CASES)
def test_attention(rt, rng, tokens, n_heads, n_kv, head_dim, pos0, max_seq):
    q = normal(rng, tokens, n_heads, head_dim)
    k, v = kv_cache(rng, max_seq, n_kv, head_dim, pos0 + tokens)
    scale = 1.0 / np.sqrt(head_dim)
    out = rt.attention(q, k, v, pos0, scale)
    check("attention", out, R.attention(q, k, v, pos0, scale), q=q, k_cache=k, v_cache=v, pos0=pos0, scale=scale)


def test_attention_gqa_head_mapping(rt, rng):
    """Query head h reads kv head h // (n_heads / n_kv_heads): give each kv head
    a constant v, so each output shows which one it read."""
    tokens, n_heads, n_kv, d = 2, 6, 3, 4
    q = normal(rng, tokens, n_heads, d)
    k = normal(rng, tokens, n_kv, d)
    v = np.zeros((tokens, n_kv, d), np.float32) + np.arange(n_kv, dtype=np.float32)[None, :, None]
    out = rt.attention(q, k, v, 0, 0.5)
    want = np.repeat(np.arange(n_kv), n_heads // n_kv).astype(np.float32)
    np.testing.assert_allclose(out[:, :, 0], np.broadcast_to(want, (tokens, n_heads)), atol=1e-6)


def test_attention_custom_scale_and_large_scores(rt, rng):
    """Scores ~1e3: the softmax inside must subtract its max."""
    q = normal(rng, 3, 4, 32, scale=6.0)
    k, v = kv_cache(rng, 12, 2, 32, 8, scale=6.0)
    out = rt.attention(q, k, v, 5, 1.0)
    assert np.isfinite(out).all()
    check("attention", out, R.attention(q, k, v, 5, 1.0), q=q, k_cache=k, v_cache=v, pos0=5, scale=1.0)


def test_attention_nan_is_causal(rt, rng):
    """A NaN key at position 2 reaches exactly the queries that see it (t >= 2
    with pos0 = 0), and only through the query heads of its kv head."""
    tokens, n_heads, n_kv, d = 5, 4, 2, 8
    q = normal(rng, tokens, n_heads, d)
    k, v = kv_cache(rng, tokens, n_kv, d, tokens)
    k[2, 1, 3] = np.nan
    out = rt.attention(q, k, v, 0, 0.35)
    check("attention", out, R.attention(q, k, v, 0, 0.35), q=q, k_cache=k, v_cache=v, pos0=0, scale=0.35)
    assert np.isnan(out[2:, 2:]).all() and np.isfinite(out[:2]).all() and np.isfinite(out[:, :2]).all()


def test_attention_heads_must_divide(rt, rng):
    q = normal(rng, 1, 6, 8)
    k = normal(rng, 4, 4, 8)
    msg = error_of(rt.attention, q, k, k, 0, 0.35)
    assert "6" in msg and "4" in msg and "head" in msg.lower(), msg


def test_attention_no_kv_heads_is_an_error(rt, rng):
    msg = error_of(rt.attention, normal(rng, 1, 2, 8), np.zeros((4, 0, 8), np.float32),
                   np.zeros((4, 0, 8), np.float32), 0, 0.35)
    assert "head" in msg.lower(), msg


def test_attention_cache_too_short_is_an_error(rt, rng):
    """pos0 + tokens positions must fit max_seq."""
    q = normal(rng, 3, 2, 8)
    k = normal(rng, 4, 2, 8)
    msg = error_of(rt.attention, q, k, k, 2, 0.35)
    assert re.search(r"max_seq|cache", msg, re.I), msg


def test_attention_empty(rt):
    out = rt.attention(np.zeros((0, 4, 8), np.float32), np.zeros((3, 2, 8), np.float32),
                       np.zeros((3, 2, 8), np.float32), 3, 0.35)
    assert out.shape == (0, 4, 8)


# ---------------------------------------------------------------- reductions

RED_SHAPES = [(1, 1), (7, 33), (3, 65), (2, 129), (5, 300), (2, 32000), (300, 7)]


@pytest.mark.parametrize("rows,cols", RED_SHAPES)
def test_sum(rt, rng, rows, cols):
    x = normal(rng, rows, cols, loc=0.3)
    check("sum", rt.sum(x), R.sum(x), x=x)


def test_sum_large_magnitude_and_cancellation(rt, rng):
    x = normal(rng, 3, 300, scale=1e30)
    x[1, 150:] = -x[1, :150]      # cancels to ~0: judged against sum |x|
    check("sum", rt.sum(x), R.sum(x), x=x)


@pytest.mark.parametrize("rows,cols", RED_SHAPES)
@pytest.mark.parametrize("op", ["max", "argmax"])
def test_max_argmax(rt, rng, op, rows, cols):
    x = normal(rng, rows, cols)
    if cols > 1:   # the maximum deep in a tail, past any tile
        x[0, cols - 1] = 10.0
    check(op, getattr(rt, op)(x), getattr(R, op)(x), x=x)


def test_max_argmax_ties_nan_inf(rt):
    """NumPy: the first maximum; the first NaN wins over everything."""
    x = f32([[1, 5, 5, 2, 0, 0, 0],
             [1, np.nan, 9, np.nan, 0, 0, 0],
             [-np.inf] * 7,
             [-3, -2, -2, -5, -7, -2, -9],
             [1, 2, np.inf, 3, np.inf, 0, 0],
             [7] * 7,
             [1, 2, 3, 4, 5, 6, np.nan]])
    assert list(rt.argmax(x)) == [1, 1, 0, 1, 2, 0, 6]
    check("max", rt.max(x), R.max(x), x=x)
    check("argmax", rt.argmax(x), R.argmax(x), x=x)


def test_sum_nan_inf(rt):
    x = f32([[1, np.nan, 2], [np.inf, 1, 2], [np.inf, -np.inf, 0], [1, 2, 3]])
    check("sum", rt.sum(x), R.sum(x), x=x)


@pytest.mark.parametrize("op", ["sum", "max", "argmax"])
def test_reduction_of_no_rows(rt, op):
    assert getattr(rt, op)(np.zeros((0, 5), np.float32)).shape == (0,)


@pytest.mark.parametrize("op", ["sum", "max", "argmax"])
def test_reduction_needs_a_column(rt, op):
    msg = error_of(getattr(rt, op), np.zeros((3, 0), np.float32))
    assert re.search(r"cols|column|empty", msg, re.I), msg


@pytest.mark.parametrize("op", ["add", "gemv", "rmsnorm"])
def test_a_host_pointer_is_refused_by_name(rt, op):
    """The kernels take device pointers as plain addresses
    (kernels/device/free_kernels.cpp), so the CPU runtime no longer checks
    them: the library must refuse memory it did not allocate, naming the
    argument, and leave the output untouched.

    AdaptiveCpp's OpenMP host device is the exception the check follows
    (sycl::get_pointer_type): its allocator calls every host address USM
    (omp_allocator::query_pointer), and its kernels run on the host, so
    there the call must be accepted and compute the right values."""
    import ctypes
    host = np.full(64, 2, np.float32)
    hp = ctypes.c_void_p(host.ctypes.data)
    y = rt.to_device(np.full(64, 7, np.float32))
    x = rt.to_device(np.ones(64, np.float32))
    if op == "add":
        call = (rt.call, "kl_add", hp, x, y, 64)
        name, want = "a", np.full(64, 3, np.float32)
    elif op == "gemv":
        call = (rt.call, "kl_gemv", x, hp, y, 1, 64)
        name, want = "w", np.full(1, 128, np.float32)
    else:
        call = (rt.call, "kl_rmsnorm", x, hp, y, 1, 64, ctypes.c_float(1e-5))
        name, want = "weight", np.full(64, 2, np.float32)
    if TOOLCHAIN == "acpp":
        call[0](*call[1:])
        rt.wait()
        got = y.to_host()[:want.size]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        return
    msg = error_of(*call)
    assert re.search(rf"\b{name} is not device memory of this runtime \(allocate it with kl_alloc\)", msg), msg
    rt.wait()
    assert (y.to_host() == 7).all()


# ---------------------------------------------------------------- the binding

def test_unknown_image_is_an_error(kl_lib):
    with pytest.raises(KLError, match=r"no such image.*avx2" + (".*spirv" if PORTABLE else "")):
        Runtime("sm_90", lib=kl_lib)


def test_image_the_cpu_lacks_is_refused(kl_lib):
    """Every native image above this process's ISAs is refused by the CPU
    runtime itself. On a CPU with all of them, a child posing as an SSE4.2
    host (SYCLFORGE_CPU_ISAS) must refuse avx2 and avx512: never a skip."""
    for image in REFUSED:
        with pytest.raises(KLError, match=REFUSAL):
            Runtime(image, lib=kl_lib)
    script = f"""
import sys
sys.path.insert(0, {str(REPO / "kernels" / "python")!r})
from syclforge_kl import Runtime, KLError
for image in ("avx512", "avx2"):
    try:
        Runtime(image, lib={str(kl_lib)!r})
        print(image, "ACCEPTED")
    except KLError as e:
        print(image, "refused:", str(e).splitlines()[-1])
print("default", Runtime(lib={str(kl_lib)!r}).image)
"""
    proc = run([sys.executable, "-c", script], env={"SYCLFORGE_CPU_ISAS": "sse4.2"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for image in ("avx512", "avx2"):
        assert re.search(rf"^{re.escape(image)} refused: .*{REFUSAL}", proc.stdout, re.M), \
            proc.stdout
    assert "SYCLFORGE_CPU_ISAS=sse4.2 leaves avx2 out" in proc.stdout, proc.stdout
    assert "default sse4.2" in proc.stdout


@pytest.mark.parametrize("value,why", [("avx3", "unknown ISA 'avx3'"),
                                       ("sse4.2,avx-512", "unknown ISA 'avx-512'")])
def test_a_bad_cpu_isa_list_is_a_clear_error(kl_lib, value, why):
    script = f"""
import sys
sys.path.insert(0, {str(REPO / "kernels" / "python")!r})
from syclforge_kl import Runtime
Runtime(lib={str(kl_lib)!r})
"""
    proc = run([sys.executable, "-c", script], env={"SYCLFORGE_CPU_ISAS": value})
    assert proc.returncode != 0
    assert f"SYCLFORGE_CPU_ISAS={value}: {why} (known: avx512, avx2, sse4.2)" in proc.stderr, proc.stderr


def test_default_image_is_the_best_native(kl_lib):
    want = best_image()
    with Runtime(lib=kl_lib) as r:
        assert r.image == want
        assert r.target == "cpu-x86" and r.toolchain == TOOLCHAIN
        assert r.device_name


def test_a_missing_symbol_fails_only_its_call(rt):
    with pytest.raises(MissingOpError, match="kl_no_such_op"):
        rt.call("kl_no_such_op")
    assert rt.add(f32([1]), f32([2]))[0] == 3


def test_a_bound_op_enqueues_what_call_does(rt, rng):
    """Runtime.bind converts the arguments once; each call of the function
    it returns enqueues the op again with them (device_op, the benches)."""
    a, b = normal(rng, 37), normal(rng, 37)
    da, db, y = rt.to_device(a), rt.to_device(b), rt.empty(37)
    add = rt.bind("add", da, db, y, 37)
    add()
    np.testing.assert_array_equal(rt.to_host(y), a + b)
    rt.copy_in(da, b)                  # the same buffers, new contents: read again at each call
    add()
    np.testing.assert_array_equal(rt.to_host(y), b + b)
    with pytest.raises(TypeError, match=r"kl_add takes 4 arguments after the runtime, got 3"):
        rt.bind("kl_add", da, db, y)


def test_a_bound_op_reports_the_library_refusal(rt):
    """A -1 from a bound op raises KLError with kl_last_error(), as call()."""
    y = rt.empty(8)
    bad = rt.bind("add", None, y, y, 8)       # a NULL a: refused before any launch
    with pytest.raises(KLError, match=r"add: a is NULL but n = 8"):
        bad()


def test_freed_buffers_and_closed_runtimes_are_refused_by_name(kl_lib):
    """Buffer.free() makes the address ctypes passes NULL, not the stale
    address of freed memory; a bound op of a closed runtime passes a NULL
    runtime. The library refuses both by name instead of touching memory."""
    r = Runtime(lib=kl_lib)
    x, y = r.to_device(np.ones(4, np.float32)), r.empty(4)
    add = r.bind("add", y, y, y, 4)
    x.free()
    assert x._as_parameter_.value is None
    with pytest.raises(KLError, match=r"add: a is NULL but n = 4"):
        r.call("add", x, y, y, 4)
    r.close()
    with pytest.raises(KLError, match=r"rt is NULL"):
        add()


def test_spirv_image_is_right_after_a_native_one(kl_lib):
    """Runtimes of several images in one process must not disturb each other:
    the SPIR-V image, created after the sse4.2 one, computes silu right.
    (A fresh process: the order is the point; test_isa_paths.py runs them all.)
    A build without SPIR-V (acpp) refuses it by name."""
    import subprocess
    if not PORTABLE:
        with pytest.raises(KLError, match=r"SYCLFORGE_IMAGE=spirv|image spirv.*no such image"):
            Runtime("spirv", lib=kl_lib)
        return
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(REPO / "kernels" / "python")!r})
from syclforge_kl import Runtime
import reference, tolerance
x = (np.random.default_rng(0).standard_normal(300) * 4).astype(np.float32)
native = Runtime("sse4.2", lib={str(kl_lib)!r})
native.silu(x)
spirv = Runtime("spirv", lib={str(kl_lib)!r})
print(tolerance.compare("silu", spirv.silu(x), reference.silu(x), x=x))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "<= threshold" in proc.stdout, proc.stdout


def _header_prototypes():
    """{name: [C parameter types after rt]} for every `int kl_...(kl_runtime *rt, ...)` op."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    protos = {}
    for name, params in re.findall(r"\bint\s+(kl_\w+)\s*\(([^)]*)\)\s*;", text):
        types = [re.sub(r"\s*\b\w+$", "", p.strip()).replace(" *", "*").strip() for p in params.split(",")]
        if types[0] == "kl_runtime*" and name not in ("kl_to_device", "kl_to_host", "kl_wait"):
            protos[name] = types[1:]
    return protos


def test_binding_matches_the_header():
    """Every op of kl_c.h is bound, with argument types of the right width/kind."""
    import ctypes
    kinds = {"size_t": ctypes.c_size_t, "float": ctypes.c_float, "int": ctypes.c_int}
    protos = _header_prototypes()
    assert len(protos) == 21, sorted(protos)
    assert set(protos) == set(OPS)
    for name, types in protos.items():
        want = [ctypes.c_void_p if t.endswith("*") else kinds[t] for t in types]
        assert list(OPS[name]) == want, name


def test_every_op_has_a_reference_and_a_tolerance():
    specs = tolerance.load()
    for name in _header_prototypes():
        op = name.removeprefix("kl_")
        assert callable(getattr(R, op)), op
        s = tolerance.spec(op)
        assert len(s.why) > 40, op
    # ... and nothing else but the model's end-to-end entries (model_*)
    kernels = {k for k in specs if k != "__defaults__" and not k.startswith("model_")}
    assert kernels == {n.removeprefix("kl_") for n in _header_prototypes()}
    assert {k for k in specs if k.startswith("model_")} == {"model_logits", "model_tokens"}


# ---------------------------------------------------------------- the tolerance checker itself

def _gemm_case(M=33, N=17, K=129, seed=1):
    rng = np.random.default_rng(seed)
    x, w = normal(rng, M, K), normal(rng, N, K)
    return x, w, R.gemm(x, w)


def test_tolerance_passes_a_one_ulp_shift():
    x, w, want = _gemm_case()
    got = np.nextafter(want.astype(np.float32), np.float32(np.inf))
    assert tolerance.compare("gemm", got, want, x=x, w=w).ok


def test_tolerance_flags_a_1e_3_shift_on_gemm():
    x, w, want = _gemm_case()
    got = (want * (1 + 1e-3)).astype(np.float32)
    res = tolerance.compare("gemm", got, want, x=x, w=w)
    assert not res.ok and res.value > res.threshold, str(res)


def test_tolerance_flags_one_wrong_element_and_a_dropped_term():
    x, w, want = _gemm_case(K=1000)
    got = want.astype(np.float32)
    got[3, 4] -= x[3, 999] * w[4, 999]          # a K-loop that stops one short
    assert not tolerance.compare("gemm", got, want, x=x, w=w).ok


def test_tolerance_nonfinite_must_match():
    x, w, want = _gemm_case()
    got = want.astype(np.float32)
    got[0, 0] = np.nan
    assert not tolerance.compare("gemm", got, want, x=x, w=w).ok
    want2 = want.copy()
    want2[1, 1] = np.nan
    assert not tolerance.compare("gemm", want.astype(np.float32), want2, x=x, w=w).ok
    got3 = want2.astype(np.float32)
    assert tolerance.compare("gemm", got3, want2, x=x, w=w).ok


def test_tolerance_ulp_metric_demands_correct_rounding():
    rng = np.random.default_rng(3)
    a, b = normal(rng, 1000), normal(rng, 1000)
    want = R.add(a, b)
    assert tolerance.compare("add", a + b, want, a=a, b=b).ok          # float32 IEEE add
    bad = np.nextafter(np.nextafter(a + b, np.float32(np.inf)), np.float32(np.inf))
    assert not tolerance.compare("add", bad, want, a=a, b=b).ok


def test_tolerance_softmax_flags_a_1e_3_error_and_a_masked_leak():
    rng = np.random.default_rng(4)
    x = normal(rng, 7, 65, scale=3.0)
    want = R.softmax(x, True, 3)
    assert tolerance.compare("softmax", want.astype(np.float32), want, x=x, causal=True, pos0=3).ok
    assert not tolerance.compare("softmax", (want * (1 + 1e-3)).astype(np.float32), want,
                                 x=x, causal=True, pos0=3).ok
    leak = want.astype(np.float32)
    leak[0, -1] = 1e-30
    assert not tolerance.compare("softmax", leak, want, x=x, causal=True, pos0=3).ok


def test_tolerance_exact_metric():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    want = R.embedding(table, [1, 2])
    got = want.astype(np.float32)
    assert tolerance.compare("embedding", got, want, table=table).ok
    got[0, 0] = np.nextafter(got[0, 0], np.float32(10))
    assert not tolerance.compare("embedding", got, want, table=table).ok


def test_tolerance_expressions_refuse_code():
    with pytest.raises(tolerance.ToleranceError):
        tolerance.evaluate("__import__('os')", {})
    with pytest.raises(tolerance.ToleranceError):
        tolerance.evaluate("K.real", {"K": 3})
    assert tolerance.evaluate("2 * sqrt(K) + 2", {"K": 16.0}) == 10.0
