"""models/bench.py's own parts (the timings themselves are a benchmark,
`scons bench`, never a test): parameter and KV-cache accounting, and the
random model it benches at 85M, here at a tiny size, loading in minillm and
in the float64 reference alike."""
import json
import sys

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
