"""minillm (every op on the SYCL device through the kernel library) against
models/reference.py (NumPy float64): token for token under greedy decoding,
logits close, on every runnable cpu-x86 image; and its errors."""
import json
import re
import shutil
import sys

import numpy as np
import pytest

from helpers import REPO, cpu_isas, run, scons

# models/ is a package: import it by that name, so that its reference.py
# does not clash with kernels/python/reference.py in one pytest process.
sys.path.insert(0, str(REPO))
from models import reference  # noqa: E402

MODEL = REPO / "models" / "tiny-fortunes"
MINILLM = REPO / "build" / "cpu-x86" / "bin" / "minillm"
PROMPTS = ["The ", "Q: What is the meaning of life?\nA:", "You will"]
N = 64

# The logits' tolerance is model_logits in kernels/tolerances.yaml (one place).
sys.path.insert(0, str(REPO / "kernels" / "python"))
import tolerance  # noqa: E402



IMAGES = cpu_isas() + ["spirv"]   # every image this process may run, avx512 included


@pytest.fixture(scope="session")
def built():
    scons("target=cpu-x86")
    return MINILLM


@pytest.fixture(scope="session")
def model():
    return reference.load(MODEL)


def minillm(*args, image=None):
    env = {"SYCLFORGE_IMAGE": image} if image else {}
    return run([MINILLM, *map(str, args)], env=env, timeout=600)


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_tokens_and_logits_match_reference(built, model, tmp_path, image, prompt):
    dump = tmp_path / "logits.f32"
    proc = minillm("-m", MODEL, "-p", prompt, "-n", N, "--temp", 0, "--json", "--dump-logits", dump, image=image)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = model.generate(prompt, N, temperature=0, keep_logits=True)
    assert got["image"] == image
    assert got["prompt_tokens"] == want.prompt_tokens
    assert got["tokens"] == want.tokens, f"first difference at {first_diff(got['tokens'], want.tokens)}"
    assert got["text"] == want.text
    logits = np.fromfile(dump, dtype=np.float32).reshape(-1, model.config.vocab_size)
    ref = np.array(want.logits)
    assert logits.shape == ref.shape
    res = tolerance.compare("model_logits", logits, ref, hidden=np.array(want.hidden), lm_head=model.lm_head)
    assert res.ok, str(res)


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_streams_text_and_reports_speed(built, model):
    proc = minillm("-m", MODEL, "-p", "The ", "-n", 16)
    assert proc.returncode == 0, proc.stderr
    want = model.generate("The ", 16, temperature=0)
    assert proc.stdout == "The " + want.text + "\n"
    assert re.search(r"tokens at [0-9.]+ tok/s \(image \S+\)", proc.stderr)


def test_sampling_is_seeded(built):
    a = minillm("-m", MODEL, "-p", "The ", "-n", 32, "--temp", 0.8, "--top-k", 20, "--seed", 7, "--json")
    b = minillm("-m", MODEL, "-p", "The ", "-n", 32, "--temp", 0.8, "--top-k", 20, "--seed", 7, "--json")
    c = minillm("-m", MODEL, "-p", "The ", "-n", 32, "--temp", 0.8, "--top-k", 20, "--seed", 8, "--json")
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr
    ta, tb, tc = (json.loads(p.stdout)["tokens"] for p in (a, b, c))
    assert ta == tb and ta != tc


def test_json_fields(built):
    out = json.loads(minillm("-m", MODEL, "-p", "Hi", "-n", 4, "--json").stdout)
    assert set(out) >= {"prompt_tokens", "tokens", "text", "tok_per_s", "prefill_ms"}
    assert out["tok_per_s"] > 0 and out["prefill_ms"] > 0 and len(out["tokens"]) <= 4


def test_prompt_longer_than_context_is_a_clear_error(built, model):
    ctx = model.config.max_position_embeddings
    proc = minillm("-m", MODEL, "-p", "x" * ctx, "-n", 1)
    assert proc.returncode == 2
    assert f"exceeds the model's context of {ctx}" in proc.stderr


def test_missing_and_inconsistent_files_are_named(built, tmp_path):
    proc = minillm("-m", tmp_path, "-p", "x", "-n", 1)
    assert proc.returncode == 2 and "config.json" in proc.stderr
    bad = tmp_path / "bad"
    shutil.copytree(MODEL, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["intermediate_size"] += 8
    (bad / "config.json").write_text(json.dumps(cfg))
    proc = minillm("-m", bad, "-p", "x", "-n", 1)
    assert proc.returncode == 2
    assert "model.safetensors: model.layers.0.mlp.gate_proj.weight has shape" in proc.stderr, proc.stderr
    (bad / "model.safetensors").write_bytes(b"\x00" * 4)
    proc = minillm("-m", bad, "-p", "x", "-n", 1)
    assert proc.returncode == 2 and "too short to be a safetensors file" in proc.stderr
    for args in (["-p", "x", "-n", 1], ["-m", MODEL, "-p", "x", "-n", "many"], ["-m", MODEL, "-p", "x", "-n", 1, "--bogus"]):
        proc = minillm(*args)
        assert proc.returncode == 2 and "minillm: error:" in proc.stderr and "terminate" not in proc.stderr
