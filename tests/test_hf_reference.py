"""The committed model (models/tiny-fortunes/) against an implementation that
is not this repository's: Hugging Face transformers' LlamaForCausalLM on
PyTorch (CPU), read from the model's own files, offline.

For the numerics plugin's prompts (kernels/python/numerics_plugin.py, PROMPTS
and MODEL_TOKENS greedy tokens each):

  - HF's greedy tokens, in float64 and in float32, are models/reference.py's
    and minillm's (the built cpu-x86 program, its default image);
  - minillm's logits are within the model tolerance (model_logits of
    kernels/tolerances.yaml) of HF's float64 ones;
  - models/reference.py (NumPy float64) and HF in float64 agree to 1e-12 of
    the largest logit: two float64 implementations, written apart;
  - a model with one field wrong (rope_theta, rms_norm_eps) is caught.

"HF in float64" takes some care: transformers' Llama computes RMSNorm's
variance and RoPE's angles in float32 whatever the model's dtype
(modeling_llama.py casts with .to(torch.float32) / .float(), which for
float16 widens and for float64 narrows), its eager attention's softmax too,
and generate() hands out its logits in float32. So the float64 model here
runs with SDPA attention (float64 throughout), its logits come from one
forward over the generated sequence, and `float64_throughout` rebuilds HF's
own RMSNorm and RoPE code with those casts made float64 (HF's source, the
dtype words swapped, nothing else). As shipped, HF's float64 differs from
reference.py by 1-4e-7 of the largest logit, those float32 steps.

Needs torch and transformers, pinned in requirements-reference.txt:
`./install.sh --hf`. Without them the tests skip saying so (under CI, where
.ci/run installs them, they fail instead). The install.sh and pin tests at
the end need neither. All of it carries the `hf` marker
(`pytest -m "not hf"` leaves it out)."""
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from helpers import REPO, install_sh_checkout, run, scons

# models/ is a package: imported by that name, its reference.py does not
# clash with kernels/python/reference.py (test_minillm.py does the same).
sys.path.insert(0, str(REPO))
from models import reference  # noqa: E402
from models.tokenizer import ByteTokenizer  # noqa: E402

sys.path.insert(0, str(REPO / "kernels" / "python"))
import numerics_plugin  # noqa: E402
import tolerance  # noqa: E402

pytestmark = pytest.mark.hf

MODEL = REPO / "models" / "tiny-fortunes"
MINILLM = REPO / "build" / "cpu-x86" / "bin" / "minillm"
PROMPTS = numerics_plugin.PROMPTS
N = numerics_plugin.MODEL_TOKENS
PINS = REPO / "requirements-reference.txt"
INSTALL = "./install.sh --hf"
# reference.py against HF with every step in float64 (measured: 2e-15)
FLOAT64_AGREEMENT = 1e-12


def pins():
    """{name: version} of requirements-reference.txt (lower-case names)."""
    out = {}
    for line in PINS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            out[name.strip().lower()] = version.strip() if sep else None
    return out


def _need(condition, why):
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Hugging Face reference (.ci/run installs it): {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def hf():
    """(torch, transformers), offline, at the versions pinned."""
    os.environ["HF_HUB_OFFLINE"] = "1"   # before transformers reads it: no network, ever
    try:
        import torch
        import transformers
    except ImportError as e:
        _need(False, f"needs torch and transformers ({e}); {INSTALL} installs them (requirements-reference.txt)")
    want = pins()
    for mod in (torch, transformers):
        _need(mod.__version__ == want[mod.__name__],
              f"{mod.__name__} {mod.__version__} is installed, requirements-reference.txt pins "
              f"{want[mod.__name__]}; {INSTALL} installs the pins")
    return torch, transformers


# --------------------------------------------------------------------------
# HF's model

def load_hf(hf, dtype, float64=False, **changes):
    """LlamaForCausalLM from models/tiny-fortunes/ (config.json and
    model.safetensors; nothing downloaded). dtype: "float64" or "float32";
    float64=True: float64_throughout. changes: config fields set after
    config.json is read (rope_theta goes into rope_parameters, where
    transformers 5 keeps it)."""
    torch, transformers = hf
    config = transformers.LlamaConfig.from_pretrained(MODEL, local_files_only=True)
    for key, value in changes.items():
        if key == "rope_theta":
            config.rope_parameters["rope_theta"] = value
        else:
            setattr(config, key, value)
    model, info = transformers.LlamaForCausalLM.from_pretrained(
        MODEL, config=config, dtype=getattr(torch, dtype), local_files_only=True, attn_implementation="sdpa",
        output_loading_info=True)
    assert not any(info.values()), f"loading {MODEL}: {info}"
    model.eval()
    if float64:
        float64_throughout(model)
    return model


def _hf_code_in_float64(fn, swaps):
    """fn rebuilt from transformers' own source, with each (old, new, count)
    of swaps replaced (and found exactly count times: another transformers
    fails here, not quietly)."""
    src = textwrap.dedent(inspect.getsource(fn))
    for old, new, count in swaps:
        assert src.count(old) == count, (f"{fn.__qualname__}: {old!r} occurs {src.count(old)} times, not {count} "
                                         f"(transformers changed; see requirements-reference.txt)")
        src = src.replace(old, new)
    scope = {}
    exec(compile(src, f"<{fn.__qualname__}, in float64>", "exec"), vars(inspect.getmodule(fn)), scope)
    return scope[fn.__name__]


def float64_throughout(model):
    """HF's RMSNorm and RoPE code with its float32 casts made float64, on
    this model's modules (other models keep HF's own)."""
    from transformers.models.llama import modeling_llama as ml
    norm = _hf_code_in_float64(ml.LlamaRMSNorm.forward, [("torch.float32", "torch.float64", 1)])
    norms = [m for m in model.modules() if isinstance(m, ml.LlamaRMSNorm)]
    assert len(norms) == 2 * model.config.num_hidden_layers + 1
    for m in norms:
        m.forward = types.MethodType(norm, m)
    rot = model.model.rotary_emb
    init = _hf_code_in_float64(ml.LlamaRotaryEmbedding.compute_default_rope_parameters,
                               [("dtype=torch.float)", "dtype=torch.float64)", 1)])
    forward = _hf_code_in_float64(ml.LlamaRotaryEmbedding.forward,
                                  [(".float()", ".double()", 1), ("dtype=torch.float)", "dtype=torch.float64)", 1)])
    assert rot.rope_type == "default"
    inv_freq, scaling = init(model.config)
    assert scaling == rot.attention_scaling == 1.0
    # HF's table, computed in float64 rather than float32 (whose pow is off by an ulp or two)
    assert inv_freq.dtype == model.dtype
    np.testing.assert_allclose(inv_freq.numpy(), rot.inv_freq.double().numpy(), rtol=2 ** -20)
    rot.inv_freq = inv_freq
    rot.forward = types.MethodType(forward, rot)
    return model


def hf_greedy(hf, model, prompt, n=N):
    """(tokens, logits[steps, vocab] as float64): the tokens of HF's own
    greedy generate() (its KV cache), the logits of one forward over the
    prompt and those tokens (no cache), in the model's dtype: generate()
    would round them to float32."""
    torch, _ = hf
    ids = torch.tensor([ByteTokenizer().encode(prompt)])
    with torch.no_grad():
        seq = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             pad_token_id=model.config.eos_token_id)
        logits = model(seq[:, :-1]).logits[0, ids.shape[1] - 1:]
    assert logits.dtype == model.dtype
    tokens = seq[0, ids.shape[1]:].numpy().astype(np.int64)
    logits = logits.double().numpy()
    assert np.array_equal(np.argmax(logits, axis=-1), tokens), "HF's generate() and its forward disagree"
    return tokens, logits


@pytest.fixture(scope="session")
def hf64(hf):
    return load_hf(hf, "float64", float64=True)


@pytest.fixture(scope="session")
def hf64_as_shipped(hf):
    return load_hf(hf, "float64")


@pytest.fixture(scope="session")
def hf32(hf):
    return load_hf(hf, "float32")


# --------------------------------------------------------------------------
# reference.py and minillm

@pytest.fixture(scope="session")
def ref_model():
    return reference.load(MODEL)


@pytest.fixture(scope="session")
def built():
    scons("target=cpu-x86")
    return MINILLM


@pytest.fixture(scope="session")
def ran(built, ref_model, tmp_path_factory):
    """{prompt: {"reference"|"minillm": (tokens, logits)}}; minillm as
    numerics_plugin._run_model runs it."""
    out = {}
    for prompt in PROMPTS:
        g = ref_model.generate(prompt, N, temperature=0, keep_logits=True)
        dump = tmp_path_factory.mktemp("minillm") / "logits.f32"
        proc = run([built, "-m", MODEL, "-p", prompt, "-n", N, "--temp", 0, "--json", "--dump-logits", dump],
                   timeout=600)
        assert proc.returncode == 0, proc.stderr
        record = json.loads(proc.stdout.strip().splitlines()[-1])
        assert record["prompt_tokens"] == g.prompt_tokens
        out[prompt] = {
            "reference": (np.asarray(g.tokens, np.int64), np.asarray(g.logits)),
            "minillm": (np.asarray(record["tokens"], np.int64),
                        np.fromfile(dump, dtype=np.float32).reshape(-1, ref_model.config.vocab_size)),
            "image": record.get("image"),
        }
    return out


_hf_runs = {}


def hf_run(hf, model, name, prompt):
    """hf_greedy, once per (model, prompt) in the session."""
    if (name, prompt) not in _hf_runs:
        _hf_runs[name, prompt] = hf_greedy(hf, model, prompt)
    return _hf_runs[name, prompt]


# --------------------------------------------------------------------------
# THE comparison: one place

_ref_generations = {}


def _scale(prompt, steps):
    """model_logits' scale inputs: reference.py's final normed hidden state
    of the prompt's steps and its LM head (the conditioning of each logit)."""
    if prompt not in _ref_generations:
        m = reference.load(MODEL)
        _ref_generations[prompt] = (m, m.generate(prompt, N, temperature=0, keep_logits=True))
    m, g = _ref_generations[prompt]
    return {"hidden": np.asarray(g.hidden[:steps]), "lm_head": m.lm_head}


def logits_check(got, want, prompt):
    """got, want: (tokens, logits). The model tolerance, compared as
    numerics_plugin.ModelCase.check does: model_logits over the steps both
    runs share a context for, up to and including the first differing
    token. Returns (tolerance.Result, rel): rel is the raw figure, the
    largest over those steps of max|got - want| / max|want|."""
    (toks, logits), (ref_toks, ref_logits) = got, want
    n = min(len(toks), len(ref_toks))
    diff = toks[:n] != ref_toks[:n]
    same = int(np.argmax(diff)) if diff.any() else n
    steps = min(same + 1, len(logits), len(ref_logits))
    a, b = np.asarray(logits[:steps], np.float64), np.asarray(ref_logits[:steps], np.float64)
    res = tolerance.compare("model_logits", logits[:steps], ref_logits[:steps], **_scale(prompt, steps))
    rel = float(np.max(np.max(np.abs(a - b), axis=-1) / np.max(np.abs(b), axis=-1)))
    return res, rel


def _figure(res, rel):
    return f"max|diff|/max|logit| = {rel:.3g} ({rel / 2 ** -23:.3g} eps); {res}"


# --------------------------------------------------------------------------
# config.json means to HF what it means here

def test_config_json_maps_onto_hf_llama(hf, hf32, ref_model):
    """Every key of config.json reaches LlamaConfig with its value (HF's
    defaults differ: rms_norm_eps 1e-6, untied embeddings), and the loaded
    modules use them."""
    torch, transformers = hf
    cfg = json.loads((MODEL / "config.json").read_text())
    hc = transformers.LlamaConfig.from_pretrained(MODEL, local_files_only=True)
    moved = {   # keys transformers 5 keeps elsewhere
        "rope_theta": lambda v: hc.rope_parameters["rope_theta"] == v,
        "rope_scaling": lambda v: v is None and hc.rope_parameters["rope_type"] == "default",
        "torch_dtype": lambda v: hc.dtype in (v, getattr(torch, v)),
    }
    for key, value in cfg.items():
        ok = moved[key](value) if key in moved else getattr(hc, key) == value
        assert ok, f"config.json {key}={value!r} is not what HF's LlamaConfig holds"
    assert isinstance(hc, transformers.LlamaConfig)

    c = ref_model.config
    m = hf32.model
    assert len(m.layers) == c.num_hidden_layers
    assert [x.variance_epsilon for x in hf32.modules() if type(x).__name__ == "LlamaRMSNorm"] == \
        [c.rms_norm_eps] * (2 * c.num_hidden_layers + 1)
    # float32 (HF computes it so): its pow errs by an ulp or two
    np.testing.assert_allclose(m.rotary_emb.inv_freq.numpy(), ref_model.inv_freq, rtol=2 ** -20)
    assert m.rotary_emb.attention_scaling == 1.0
    for layer in m.layers:
        at = layer.self_attn
        assert at.head_dim == c.head_dim and at.num_key_value_groups == c.num_attention_heads // c.num_key_value_heads
        assert at.q_proj.out_features == c.num_attention_heads * c.head_dim
        assert at.k_proj.out_features == at.v_proj.out_features == c.num_key_value_heads * c.head_dim
        assert at.scaling == c.head_dim ** -0.5
        x = torch.linspace(-6, 6, 25)
        assert torch.allclose(layer.mlp.act_fn(x), x * torch.sigmoid(x)), layer.mlp.act_fn   # silu
        assert all(x.bias is None for x in (at.q_proj, at.k_proj, at.v_proj, at.o_proj, layer.mlp.gate_proj,
                                            layer.mlp.up_proj, layer.mlp.down_proj))
    assert hf32.lm_head.weight.data_ptr() == m.embed_tokens.weight.data_ptr()   # tied
    # every weight is the file's, bit for bit
    state = hf32.state_dict()
    for name, want in ref_model.w.items():
        assert np.array_equal(state[name].numpy().astype(np.float64), want), name


# --------------------------------------------------------------------------
# the three implementations

@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_tokens_are_the_same_everywhere(hf, hf64, hf32, ran, prompt):
    want = ran[prompt]["reference"][0]
    got = {"minillm": ran[prompt]["minillm"][0],
           "HF float64": hf_run(hf, hf64, "hf64", prompt)[0],
           "HF float32": hf_run(hf, hf32, "hf32", prompt)[0]}
    assert len(want) == N
    for who, toks in got.items():
        assert toks.tolist() == want.tolist(), f"{who}'s greedy tokens after {prompt!r} are not reference.py's"


@pytest.mark.parametrize("prompt", PROMPTS)
def test_minillm_logits_within_the_model_tolerance_of_hf(hf, hf64, hf64_as_shipped, ran, prompt):
    minillm = ran[prompt]["minillm"]
    res, rel = logits_check(minillm, hf_run(hf, hf64, "hf64", prompt), prompt)
    print(f"minillm ({ran[prompt]['image']}) vs HF float64, {prompt!r}: {_figure(res, rel)}")
    assert res.ok, _figure(res, rel)
    res, rel = logits_check(minillm, hf_run(hf, hf64_as_shipped, "hf64-as-shipped", prompt), prompt)
    assert res.ok, "against HF's float64 as shipped: " + _figure(res, rel)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_reference_py_and_hf_agree_in_float64(hf, hf64, hf64_as_shipped, ran, prompt):
    """The strong check: two float64 implementations written apart."""
    ref = ran[prompt]["reference"]
    _, rel = logits_check(hf_run(hf, hf64, "hf64", prompt), ref, prompt)
    print(f"HF float64 vs reference.py, {prompt!r}: {rel:.3g}")
    assert rel <= FLOAT64_AGREEMENT, f"reference.py and HF in float64 differ by {rel:.3g} of the largest logit"
    # HF as shipped: its float32 RMSNorm and RoPE angles, a few float32
    # roundings; more than float64's (so float64_throughout changed hf64
    # alone), far less than the tolerance
    _, rel = logits_check(hf_run(hf, hf64_as_shipped, "hf64-as-shipped", prompt), ref, prompt)
    print(f"HF float64 as shipped vs reference.py, {prompt!r}: {rel:.3g}")
    assert 2 ** -30 < rel < 2 ** -18


@pytest.mark.parametrize("prompt", PROMPTS)
def test_hf_float32_is_within_the_model_tolerance(hf, hf64, hf32, prompt):
    """Another float32 implementation passes the tolerance minillm must pass."""
    res, rel = logits_check(hf_run(hf, hf32, "hf32", prompt), hf_run(hf, hf64, "hf64", prompt), prompt)
    print(f"HF float32 vs HF float64, {prompt!r}: {_figure(res, rel)}")
    assert res.ok, _figure(res, rel)


# A tolerance is a test too: one wrong field of the model is outside it.
WRONG = [
    pytest.param({"rope_theta": 500000.0}, id="rope_theta=500000"),
    pytest.param({"rms_norm_eps": 1e-4}, id="rms_norm_eps=1e-4"),
    # the same greedy tokens, 4600-7200 eps of the largest logit: caught since
    # model_logits is scaled per logit (it passed 8192 eps of the largest)
    pytest.param({"rms_norm_eps": 1e-6}, id="rms_norm_eps=1e-6"),
]


@pytest.mark.parametrize("changes", WRONG)
@pytest.mark.parametrize("prompt", PROMPTS)
def test_a_model_with_one_wrong_field_is_outside_the_tolerance(hf, ran, changes, prompt):
    model = load_hf(hf, "float64", float64=True, **changes)
    (key, value), = changes.items()
    if key == "rope_theta":
        assert model.model.rotary_emb.inv_freq[1].item() == pytest.approx(value ** (-2 / model.config.head_dim))
    else:
        assert model.model.norm.variance_epsilon == value
    got = hf_greedy(hf, model, prompt)
    res, rel = logits_check(ran[prompt]["minillm"], got, prompt)
    print(f"minillm vs HF float64 with {key}={value}, {prompt!r}: {_figure(res, rel)}")
    assert not res.ok, f"minillm is within the tolerance of a model with {key}={value}: {_figure(res, rel)}"


# --------------------------------------------------------------------------
# installing it (no torch needed)

def test_the_reference_packages_are_pinned_exactly():
    p = pins()
    assert all(v for v in p.values()), f"unpinned in {PINS.name}: {[k for k, v in p.items() if not v]}"
    # the CPU wheel: a plain or ranged torch pulls the CUDA build (GBs)
    assert p["torch"] == "2.13.0+cpu"
    assert re.fullmatch(r"\d+\.\d+\.\d+", p["transformers"])


def test_install_sh_hf_installs_the_pins(tmp_path):
    co, env = install_sh_checkout(tmp_path)
    (co / PINS.name).write_text(PINS.read_text())
    calls = tmp_path / "python-calls"
    (co / ".venv" / "bin" / "python").write_text(f'#!/bin/sh\necho "$*" >>{calls}\nexit 0\n')
    proc = subprocess.run(["bash", str(co / "install.sh"), "--help"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and re.search(r"^usage: \./install\.sh .*\[--hf\]", proc.stderr, re.M)
    proc = subprocess.run(["bash", str(co / "install.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert PINS.name not in calls.read_text()
    for _ in range(2):   # safe to run again
        proc = subprocess.run(["bash", str(co / "install.sh"), "--hf"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"from {PINS.name}" in proc.stdout
    assert calls.read_text().count(f"-m pip install -q --disable-pip-version-check -r {PINS.name}") == 2
    (co / ".venv" / "bin" / "python").write_text('#!/bin/sh\ncase "$*" in *requirements-reference*) exit 1;; esac\n')
    proc = subprocess.run(["bash", str(co / "install.sh"), "--hf"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and f"could not install {PINS.name}" in proc.stderr


def test_readme_and_ci_run_the_same_test_command_with_hf():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    readme_cmd = next(line.strip() for line in section.splitlines() if line.startswith("    "))
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("./install.sh")]
    assert len(ci) == 1 and ci[0].replace("&& exec ", "&& ") == readme_cmd
    assert re.match(r"\./install\.sh [^&]*--hf[ &]", readme_cmd)
