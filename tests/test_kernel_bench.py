"""kernels/python/bench.py's timing logic, on a fake clock (the timings
themselves are a benchmark, `scons bench`, never a test): how many runs a
round takes, when a measurement is skipped, that sides alternate, and which
copy is the reference; which shapes get which target; the C++ helper
(bench_sycl.cpp: our runtime's device and compute units, launches in a C
loop, oneMKL's GEMM/GEMV where installed, else the bench saying how to
install it); the replayed decode step against minillm's launch count; and
compare.py's op specs."""
import importlib.util
import statistics

import numpy as np
import pytest

from helpers import REPO

_spec = importlib.util.spec_from_file_location("kernel_bench", REPO / "kernels" / "python" / "bench.py")
kb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kb)


class FakeClock:
    """time.perf_counter stand-in: a call of a side advances it by that side's cost."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def __call__(self):
        return self.now

    def side(self, name, cost):
        def fn():
            self.calls.append(name)
            self.now += cost
        return fn


@pytest.mark.parametrize("cost,want_runs", [
    (0.001, 100),      # short op: runs until the round has spent min_s
    (1e-6, 500),       # very short: capped at max_runs
    (0.05, 5),         # long op: the minimum number of runs
])
def test_a_round_runs_until_min_time_or_max_runs(cost, want_runs):
    clock = FakeClock()
    times, estimate = kb.timed_runs(clock.side("op", cost), runs=5, warmup=3, min_s=0.1, max_runs=500, clock=clock)
    assert estimate is None
    assert len(times) == want_runs
    assert len(clock.calls) == want_runs + 3          # the warm-up is not timed
    assert times == pytest.approx([cost] * want_runs)


def test_a_measurement_over_budget_is_skipped_with_its_estimate():
    clock = FakeClock()
    assert kb.timed_runs(clock.side("op", 10.0), runs=5, warmup=1, budget_s=20, clock=clock) == (None, 10.0)
    assert clock.calls == ["op"]                      # only the warm-up ran
    clock.calls.clear()
    assert kb.timed_runs(clock.side("op", 1.0), runs=5, warmup=1, budget_s=20, estimate_s=4.0, clock=clock) == \
        (None, 4.0)
    assert clock.calls == []                          # the estimate alone decides


def test_rounds_alternate_sides_in_both_orders_and_take_the_median_of_every_run():
    clock = FakeClock()
    numpy_cost = [0.01, 0.03, 0.02]                   # a slow spell in round 2

    def numpy_side():
        clock.now += numpy_cost[clock.calls.count("numpy") // 6]   # 6 calls a round: 1 warm-up + 5 runs
        clock.calls.append("numpy")

    got = kb.rounds({"numpy": numpy_side, "ours": clock.side("ours", 0.02)}, n_rounds=3, quiet_s=0,
                    runs=5, warmup=1, min_s=0, clock=clock)
    assert clock.calls == ["numpy"] * 6 + ["ours"] * 12 + ["numpy"] * 12 + ["ours"] * 6   # A B, B A, A B
    assert got["ours"] == (pytest.approx(0.02), 15)
    assert got["numpy"] == (pytest.approx(statistics.median([0.01] * 5 + [0.03] * 5 + [0.02] * 5)), 15)


def test_a_side_over_budget_is_dropped_and_the_others_still_run():
    clock = FakeClock()
    got = kb.rounds({"numpy": clock.side("numpy", 0.01), "ours": clock.side("ours", 30.0)}, n_rounds=2,
                    quiet_s=0, runs=5, warmup=1, min_s=0, clock=clock)
    assert got["ours"] == (None, 30.0)
    assert got["numpy"] == (pytest.approx(0.01), 10)
    assert clock.calls.count("ours") == 1             # its warm-up, then never again


def test_the_copy_reference_is_the_best_plain_copy_of_any_measurement():
    start = {"numpy_copy": 15.0, "kl_to_device": 22.5, "kl_add": 30.0}
    end = {"numpy_copy": 24.0, "kl_to_device": 21.0, "kl_add": 31.0}
    assert kb.copy_reference([start, end]) == 24.0   # kl_add (a kernel, 3 streams) never counts


def test_judge_marks_targets_against_their_own_reference():
    rows = [
        {"unit": "GB/s", "ours_rate": 12.0, "ratio_vs_numpy": 3.0, "target": ("copy", 0.5)},
        {"unit": "GB/s", "ours_rate": 11.0, "ratio_vs_numpy": 9.0, "target": ("copy", 0.5)},
        {"unit": "GFLOP/s", "ours_rate": 80.0, "ratio_vs_numpy": 0.6, "target": ("numpy", 0.5)},
        {"unit": "GB/s", "ours_rate": None, "ratio_vs_numpy": None, "target": ("copy", 0.5)},
        {"unit": "GB/s", "ours_rate": 1.0, "ratio_vs_numpy": 0.1, "target": None},
    ]
    kb.judge(rows, copy_bw=24.0)
    assert [r["status"] for r in rows] == ["PASS", "MISS", "PASS", "MISS", ""]
    assert rows[0]["copy_fraction"] == pytest.approx(0.5) and rows[2]["copy_fraction"] is None


def test_compare_parses_op_specs_and_names_a_bad_one():
    spec = importlib.util.spec_from_file_location("kernel_compare", REPO / "kernels" / "python" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    assert compare.parse_op("softmax:512x512") == ("softmax", (512, 512))
    assert compare.parse_op("gemm:64x32x16") == ("gemm", (64, 32, 16))
    assert [compare.parse_op(s)[0] for s in compare.DEFAULT_OPS] == ["gemv", "gemv", "softmax", "softmax", "rmsnorm",
                                                                      "gemm", "add"]
    for bad, says in [("softmax:3", "takes 2"), ("gemv:0x8", "non-zero"), ("conv:3x3", "OP one of"),
                      ("softmax", "OP:SHAPE")]:
        with pytest.raises(ValueError, match=says):
            compare.parse_op(bad)


# ---- the machine: last-level cache, copy arrays, which shapes get a copy target

def test_the_last_level_cache_is_the_highest_data_level_in_sysfs(tmp_path):
    for idx, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                               (3, "Unified", "307200K")]):
        d = tmp_path / f"index{idx}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert kb.llc_bytes(tmp_path) == (300 * 2**20, f"L3, {tmp_path}")
    n, where = kb.llc_bytes(tmp_path / "absent")       # no sysfs: sysconf, else the stated fallback
    assert n > 0 and where


def test_copy_arrays_and_copy_targets_are_past_the_last_level_cache():
    llc = 300 * 2**20
    assert kb.copy_bytes(llc) == llc and kb.copy_bytes(2**20) == kb.COPY_MIN_BYTES
    rows = kb.past_llc_rows(llc, 4096 * 4)
    assert rows % 64 == 0 and rows * 4096 * 4 >= llc

    class B:
        pass
    b = B()
    b.llc = llc
    assert kb.memory_target(b, 2 * 8 * 2**20) is None                 # 512x4096 in + out: cache-resident
    assert kb.memory_target(b, 2 * rows * 4096 * 4) == ("copy", kb.BANDWIDTH_TARGET)


def test_gemm_and_gemv_targets_are_ratios_against_numpy():
    assert kb.GEMM_TARGET == kb.GEMV_TARGET == 0.9
    rows = [{"unit": "GFLOP/s", "ours_rate": 90.0, "ratio_vs_numpy": 0.95, "target": ("numpy", kb.GEMM_TARGET)},
            {"unit": "GB/s", "ours_rate": 20.0, "ratio_vs_numpy": 0.85, "target": ("numpy", kb.GEMV_TARGET)}]
    kb.judge(rows, copy_bw=10.0)
    assert [r["status"] for r in rows] == ["PASS", "MISS"]
    assert rows[1]["target"] == {"against": "NumPy throughput", "at_least": 0.9}


# ---- oneMKL as a peer, and the C++ helper

class FakeRuntime:
    toolchain = "oneapi-pip"
    device_name = "Some CPU"


def test_without_onemkl_the_bench_says_how_to_install_it(tmp_path):
    missing = kb.onemkl_missing(tmp_path)
    assert "include/oneapi/mkl.hpp" in missing and "lib/libmkl_sycl_blas.so.5" in missing
    helper, why, peer = kb.set_up_helper(FakeRuntime(), want_onemkl=True, prefix=tmp_path)
    assert not peer.ok
    assert "not installed" in peer.why and "pip install onemkl-sycl-blas==2025.3.1 onemkl-sycl-include==2025.3.1" in \
        peer.why
    # an environment without the SYCL headers: the device-query helper does not build, and says why
    assert helper is None and "sycl" in why
    copy = {"start": {"numpy_copy": 1.0, "kl_to_device": 1.0}, "end": {"numpy_copy": 1.0, "kl_to_device": 1.0},
            "reference": 1.0, "array_mib": 300}
    assert "oneMKL: not measured: not installed" in kb.table([], copy, peer=peer)


def test_a_onemkl_failure_is_reported_with_its_text_and_the_bench_carries_on(monkeypatch):
    class Failing:
        def __init__(self, helper, x, w, gemm):
            pass

        def run(self):
            raise kb.HelperError("oneapi::mkl::blas::row_major::gemm: Native API failed (JIT: unsupported device)")
    monkeypatch.setattr(kb, "OnemklOp", Failing)
    b = kb.Bench(FakeRuntime(), peer=kb.Peer(helper=object(), version="2025.3.1", device="Some CPU"))
    assert b.onemkl_op(np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32), gemm=True) is None
    assert not b.peer.ok and "Native API failed (JIT: unsupported device)" in b.peer.why
    assert b.onemkl_op(np.zeros(3, np.float32), np.zeros((4, 3), np.float32), gemm=False) is None   # not tried again
    assert len(b.peer.errors) == 1


def test_an_adaptivecpp_library_gets_no_helper():
    class Acpp(FakeRuntime):
        toolchain = "acpp"
    helper, why, peer = kb.set_up_helper(Acpp(), want_onemkl=True)
    assert helper is None and not peer.ok and "acpp" in why and peer.why == why


@pytest.fixture(scope="module")
def runtime():
    from helpers import scons
    scons("target=cpu-x86")
    rt = kb.Runtime()
    yield rt
    rt.close()


def test_the_helper_reports_our_runtimes_device_and_times_launches_in_c(runtime):
    helper, why, _ = kb.set_up_helper(runtime, want_onemkl=False)
    assert helper is not None, why
    facts = kb.device_facts(runtime, helper, why)
    assert facts["device"] == runtime.device_name
    assert 1 <= facts["compute_units"] and "max_compute_units" in facts["compute_units_from"]
    launch = kb.launch_costs(runtime, helper, repeats=50, batches=1)
    assert 0 < launch["in_stream_s"] < 0.1 and 0 < launch["synced_s"] < 0.1 and "C loop" in launch["how"]


def test_onemkl_gemm_and_gemv_on_our_device_match_numpy(runtime):
    missing = kb.onemkl_missing(kb.sycl_prefix())
    if missing:
        pytest.skip(f"oneMKL's SYCL BLAS is not installed ({missing}): {kb.ONEMKL_INSTALL}")
    helper, why, peer = kb.set_up_helper(runtime, want_onemkl=True)
    assert peer.ok, peer.why
    assert peer.device == runtime.device_name and peer.version
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((37, 53), dtype=np.float32), rng.standard_normal((29, 53), dtype=np.float32)
    for a, b, gemm, want in [(x, w, True, x @ w.T), (x[0], w, False, w @ x[0])]:
        op = kb.OnemklOp(helper, a, b, gemm)
        op.run()
        np.testing.assert_allclose(op.result(), want, rtol=1e-4, atol=1e-4)
        op.free()
    helper.close()


def test_gemv_past_the_llc_reads_a_new_copy_of_w_every_call(runtime, monkeypatch):
    # A single w that fits the cache would be timed from the cache after its
    # first call: decode of a model past the LLC reads its weights from memory.
    seen = []
    real = runtime.bind

    def spy(name, *args):       # the bench binds each op once (Runtime.bind), then calls it
        enqueue = real(name, *args)
        if name != "kl_gemv":
            return enqueue

        def call():
            seen.append(id(args[1]))
            enqueue()
        return call
    monkeypatch.setattr(runtime, "bind", spy)
    b = kb.Bench(runtime, n_rounds=1, llc=1 << 20)
    kb.bench_gemv_past_llc(b, 64, 512)
    row = b.rows[-1]
    copies = 2 * (1 << 20) // (4 * 64 * 512)       # 16 copies of 128 KiB: twice the 1 MiB cache
    assert f"({copies} copies of w" in row["note"]
    assert len(set(seen)) == copies and all(a != b for a, b in zip(seen, seen[1:]))
    assert row["target"] == ("copy", kb.BANDWIDTH_TARGET) and row["ours_s"] > 0 and row["numpy_s"] > 0


# ---- minillm's decode step, replayed

def test_the_replayed_decode_step_launches_what_minillm_launches(runtime):
    import json
    from helpers import run
    model = REPO / "models" / "tiny-fortunes"
    cfg = json.loads((model / "config.json").read_text())
    ops, bufs = kb.decode_step_ops(runtime, cfg, 70, np.random.default_rng(0))
    assert len(ops) == 6 * cfg["num_hidden_layers"] + 3   # a layer: 6 launches (README: fused decode ops)
    n = 8
    proc = run([REPO / "build" / "cpu-x86" / "bin" / "minillm", "-m", model, "-p", "The ", "-n", str(n),
                "--temp", "0", "--json"])
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # minillm: n arg-maxes and n - 1 forward passes (one step = a forward + an arg-max)
    assert got["launches_per_token"] == pytest.approx(((n - 1) * (len(ops) - 1) + n) / n, abs=0.05)
    for b in bufs:
        if hasattr(b, "free"):
            b.free()
    prof = kb.decode_profile(runtime, cfg, 70, steps=2, warmup=1, floor_calls=3)
    assert prof["launches_per_step"] == len(ops) and prof["synced_step_s"] > 0 and prof["streamed_step_s"] > 0
    # medians of two steps are their means: the work is the streamed step less its launches, exactly
    assert prof["work_s"] == pytest.approx(prof["streamed_step_s"] - len(ops) * prof["launch_in_stream_s"])
    assert sum(prof["op_counts"].values()) == len(ops) and set(prof["by_op_s"]) == set(prof["op_counts"])


@pytest.mark.parametrize("argv, environ, want", [
    ([], {}, {}),
    (["--image", "avx2"], {}, {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    (["--image=sse4.2"], {}, {"OPENBLAS_CORETYPE": "Nehalem", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),
    ([], {"SYCLFORGE_IMAGE": "avx2"}, {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
    (["--image", "avx512"], {}, {}),
    ([], {"SYCLFORGE_IMAGE": "avx2", "OPENBLAS_CORETYPE": "Zen"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}),
])
def test_a_forced_lower_image_pins_the_peers_to_its_isa(argv, environ, want):
    assert kb.peer_isa_env(argv, environ) == want
