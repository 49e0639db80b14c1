"""kernels/python/bench.py's timing logic, on a fake clock (the timings
themselves are a benchmark, `scons bench`, never a test): how many runs a
round takes, when a measurement is skipped, that sides alternate, and which
copy is the reference; and compare.py's op specs."""
import importlib.util
import statistics

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


def test_rounds_alternate_sides_and_take_the_median_of_every_run():
    clock = FakeClock()
    numpy_cost = [0.01, 0.03, 0.02]                   # a slow spell in round 2

    def numpy_side():
        clock.now += numpy_cost[clock.calls.count("numpy") // 6]   # 6 calls a round: 1 warm-up + 5 runs
        clock.calls.append("numpy")

    got = kb.rounds({"numpy": numpy_side, "ours": clock.side("ours", 0.02)}, n_rounds=3, quiet_s=0,
                    runs=5, warmup=1, min_s=0, clock=clock)
    assert clock.calls == (["numpy"] * 6 + ["ours"] * 6) * 3
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
