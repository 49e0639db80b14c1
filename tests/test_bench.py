"""models/bench.py's own parts (the timings themselves are a benchmark,
`scons bench`, never a test): parameter and KV-cache accounting, the
random model it benches at 85M, here at a tiny size, loading in minillm and
in the float64 reference alike; llama.cpp's thread count and how its Python
loop's overhead is taken out (on a fake llama.cpp and clock; and for real
where llama-cpp-python is installed); where a token's time goes."""
import ctypes
import json
import os
import sys
import types

import pytest

from helpers import REPO, run, scons

# As package modules: models/reference.py must not shadow the kernels' one.
sys.path.insert(0, str(REPO))
from models import bench, reference, safetensors_np  # noqa: E402

TINY = REPO / "models" / "tiny-fortunes"


def test_param_count_is_the_committed_models():
    cfg = json.loads((TINY / "config.json").read_text())
    tensors = safetensors_np.load_file(TINY / "model.safetensors")
    assert bench.param_count(cfg) == sum(a.size for a in tensors.values()) == 5_386_464
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    assert bench.kv_cache_bytes(cfg) == 2 * cfg["num_hidden_layers"] * cfg["max_position_embeddings"] * \
        cfg["num_key_value_heads"] * hd * 4


def test_the_85m_shape_has_about_85m_parameters():
    cfg = dict(json.loads((TINY / "config.json").read_text()), **bench.BIG)
    assert 80e6 <= bench.param_count(cfg) <= 90e6


def test_random_model_loads_in_minillm_and_the_reference_alike(tmp_path):
    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2}
    cfg, fresh = bench.random_model(tmp_path / "m", shape, 7, "tiny random")
    assert fresh
    assert bench.random_model(tmp_path / "m", shape, 7, "tiny random") == (cfg, False)   # cached by recipe
    model = reference.load(tmp_path / "m")
    want = model.generate("The ", 8, temperature=0)
    assert len(want.tokens) == 8                     # EOS never wins: every token is made
    scons("target=cpu-x86")
    proc = run([REPO / "build" / "cpu-x86" / "bin" / "minillm", "-m", tmp_path / "m", "-p", "The ", "-n", "8",
                "--temp", "0", "--json"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["tokens"] == want.tokens and out["peak_rss_kb"] > 0


# ---- models/ab.py: two minillm builds alternating

def test_ab_alternates_two_builds_and_compares_their_tokens(tmp_path):
    scons("target=cpu-x86")
    exe = REPO / "build" / "cpu-x86" / "bin" / "minillm"
    model = REPO / "models" / "tiny-fortunes"
    proc = run([sys.executable, REPO / "models" / "ab.py", exe, exe, model, "--runs", "2", "-n", "4"])
    assert proc.returncode == 0, proc.stderr
    assert "medians of 2 alternating runs each" in proc.stdout and "same tokens: yes" in proc.stdout
    # runs alternate: A B, then B A
    assert [line.split()[3].rstrip(":") for line in proc.stderr.splitlines() if line.startswith("ab: run")] == \
        ["A", "B", "B", "A"]
    # a build that fails is an error naming it, no traceback
    bad = tmp_path / "minillm"
    bad.write_text("#!/bin/sh\necho 'cannot start the SYCL runtime' >&2\nexit 1\n")
    bad.chmod(0o755)
    proc = run([sys.executable, REPO / "models" / "ab.py", exe, bad, model, "--runs", "1", "-n", "4"])
    assert proc.returncode == 2 and "cannot start the SYCL runtime" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# ---- llama.cpp: threads, and its Python loop's overhead taken out

def test_llama_cpp_gets_the_devices_compute_units_as_threads():
    threads, why = bench.llama_threads({"compute_units": 7, "compute_units_from": "max_compute_units of X"})
    assert threads == 7 and "compute units" in why and "max_compute_units of X" in why
    threads, why = bench.llama_threads({"compute_units": None, "compute_units_from": "not queried: no g++"})
    assert threads == os.cpu_count() and "unknown" in why and "no g++" in why
    threads, why = bench.llama_threads({"error": "exited 2"})
    assert threads == os.cpu_count() and "exited 2" in why


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeLlamaCpp:
    """llama-cpp-python's functions that LlamaCpp.generate calls, on a fake
    clock: llama_decode costs DECODE s (PREFILL for a batch), and llama.cpp's
    own clock counts only that."""
    DECODE, PREFILL = 500e-6, 4e-3

    def __init__(self, clock, n_vocab, favourite):
        self.clock, self.n_vocab, self.favourite = clock, n_vocab, favourite
        self.logits = (ctypes.c_float * n_vocab)()
        self.t_eval = self.t_p_eval = 0.0
        self.n_eval = 0

    def llama_memory_clear(self, mem, data):
        pass

    def llama_get_memory(self, ctx):
        return None

    def llama_perf_context_reset(self, ctx):
        self.t_eval = self.t_p_eval = 0.0
        self.n_eval = 0

    def llama_perf_context(self, ctx):
        return types.SimpleNamespace(t_eval_ms=self.t_eval * 1e3, t_p_eval_ms=self.t_p_eval * 1e3,
                                     n_eval=self.n_eval, n_p_eval=0)

    def llama_decode(self, ctx, batch):
        cost = self.DECODE if batch.n_tokens == 1 else self.PREFILL
        self.clock.now += cost
        if batch.n_tokens == 1:
            self.t_eval += cost
            self.n_eval += 1
        else:
            self.t_p_eval += cost
        self.logits[self.favourite] = 1.0
        return 0

    def llama_get_logits_ith(self, ctx, i):
        self.clock.now += 2e-6                       # Python's share: as_array etc. (below, with the fill)
        return ctypes.cast(self.logits, ctypes.POINTER(ctypes.c_float))


def fake_llama(monkeypatch, favourite=5, fill_s=3e-6):
    clock = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    lc = object.__new__(bench.LlamaCpp)
    lc.L = FakeLlamaCpp(clock, 16, favourite)
    lc.ctx, lc.n_vocab, lc.threads = None, 16, 2
    lc.batch = types.SimpleNamespace(token={}, pos={}, n_seq_id={}, seq_id={i: {} for i in range(64)}, logits={},
                                     n_tokens=0)
    real_fill = lc._fill

    def fill(tokens, pos0):
        clock.now += fill_s * len(tokens)
        real_fill(tokens, pos0)
    lc._fill = fill
    return lc


def test_llama_cpps_decode_is_its_wall_clock_less_the_measured_python_work(monkeypatch):
    lc = fake_llama(monkeypatch)
    n = 10
    g = lc.generate([1, 2, 3, 4], n, eos=15)
    D, P = FakeLlamaCpp.DECODE, FakeLlamaCpp.PREFILL
    assert g["tokens"] == [5] * n
    # n arg-maxes, n - 1 single-token passes; each pass also pays 3 + 2 us of Python work
    assert g["wall_tok_per_s"] == pytest.approx(n / ((n - 1) * (D + 5e-6)))
    assert g["python_overhead_us_per_token"] == pytest.approx((n - 1) * 5 / n)
    assert g["tok_per_s"] == pytest.approx(n / ((n - 1) * D))
    assert g["own_clock_tok_per_s"] == pytest.approx(n / ((n - 1) * D))
    assert g["wall_prefill_ms"] == pytest.approx((P + 4 * 3e-6 + 2e-6) * 1e3)
    assert g["prefill_ms"] == pytest.approx(P * 1e3) == pytest.approx(g["own_clock_prefill_ms"])


def test_the_overhead_loop_runs_as_many_steps_as_a_generation_that_stopped_at_eos(monkeypatch):
    lc = fake_llama(monkeypatch, favourite=15)       # EOS wins at once: one token, no decode pass
    g = lc.generate([1, 2], 10, eos=15)
    assert g["tokens"] == [15]
    assert g["python_overhead_us_per_token"] == pytest.approx(0.0)
    # no single-token pass and no time on the fake clock: nothing to divide by, and no crash
    assert g["tok_per_s"] is None and g["wall_tok_per_s"] is None and g["own_clock_tok_per_s"] is None


def test_where_the_time_goes_shares_a_token():
    def replay(work_s, stream_s):
        return {"launch": {"in_stream_s": stream_s, "synced_s": 20e-6, "how": "a C loop"},
                "model": {"launches_per_step": 82, "work_s": work_s, "floor_s": 19e-6, "pos": 125,
                          "streamed_step_s": work_s + 82 * stream_s,
                          "by_op_s": {"gemv": 3 * work_s, "add": work_s}}}
    # medians of the replays interleaved with the runs: a slow spell in one of them does not count
    row = {"model": "m", "ours": {"tok_per_s": 1000.0, "launches_per_token": 80.0},
           "profiles": [replay(300e-6, 5e-6), replay(900e-6, 15e-6), replay(300e-6, 5e-6)]}
    w = bench.where_time_goes(row)
    assert w["token_us"] == pytest.approx(1000.0) and w["replays"] == 3
    assert w["launches_share"] == pytest.approx(0.4) and w["kernels_share"] == pytest.approx(0.3)
    assert w["rest_share"] == pytest.approx(0.3)
    assert w["kernels_by_op_share"] == pytest.approx({"gemv": 0.75, "add": 0.25})
    assert bench.where_time_goes(dict(row, profiles=[])) is None


def test_llama_cpp_for_real_when_installed(tmp_path):
    llama_cpp, why = bench.load_llama_cpp()
    if llama_cpp is None:
        pytest.skip(f"llama-cpp-python is not installed ({why}): {bench.INSTALL_HINT}")
    cfg = json.loads((TINY / "config.json").read_text())
    gguf = bench.gguf_for(TINY, tmp_path / "tiny.gguf", fresh=True)
    lc = bench.LlamaCpp(llama_cpp, gguf, cfg["max_position_embeddings"], threads=1)
    try:
        prompt = lc.tokenize("The ")
        g = lc.generate(prompt, 8, cfg["eos_token_id"])
    finally:
        lc.close()
    want = reference.load(TINY).generate("The ", 8, temperature=0)
    assert g["tokens"] == want.tokens
    assert 0 < g["python_overhead_us_per_token"] and g["wall_tok_per_s"] < g["tok_per_s"]
    assert g["own_clock_tok_per_s"] and g["own_clock_prefill_ms"] > 0
