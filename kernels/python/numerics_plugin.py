"""This repository's plugin to syclforge's cross-device numerics engine
(`scons numerics`; the engine and the plugin contract: syclforge/numerics.py).

The engine runs the matrix and compares; this file says what runs and how
close it must come:

  - every kernel case of cases.py (every op of the C ABI at several shapes),
    run by numerics_worker.py (one process per image, every case twice)
    against the float64 reference of reference.py;
  - the mini-LLM (models/): minillm's greedy tokens and logits for two
    fixed prompts, with SYCLFORGE_IMAGE forcing the image, twice, against
    models/reference.py (when the spec's files name a built minillm);
  - every metric and threshold from kernels/tolerances.yaml, through
    tolerance.py (the one place the tests read them too).

A spec's files: {"lib": libsyclforge_kl.so, "minillm": bin/minillm (optional)}.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from syclforge.numerics import Check, NoOutput

HERE = Path(__file__).resolve().parent
TOP = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import cases as _cases  # noqa: E402
import tolerance  # noqa: E402

TOLERANCES = "kernels/tolerances.yaml"
WORKER = HERE / "numerics_worker.py"
# The model's fixed prompts and how many greedy tokens each generates.
PROMPTS = ("The ", "Q: What is the meaning of life?\nA:")
MODEL_TOKENS = 16
MODEL_DIR = "models/tiny-fortunes"


# --------------------------------------------------------------------------
# Running one image

def run_image(spec, image, npz_path, *, perturb, python, log):
    """The kernel cases in numerics_worker.py, then (if built) the model with
    minillm; everything into npz_path. perturb: ops (comma-separated; "model"
    for the model's logits and tokens, "all" for every op and the model)
    whose outputs get an error of 3x their threshold (the harness's own test)."""
    where = f"{spec['target']} {image}"
    files = spec["files"]
    log(f"numerics: {where}: kernels ({len(_cases.CASES)} cases, twice)")
    cmd = [python, str(WORKER), "--lib", str(files["lib"]), "--image", image, "--out", str(npz_path)]
    if perturb:
        cmd += ["--perturb", perturb]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    meta = _last_json(proc.stdout)
    if proc.returncode == 3 and meta and "unreachable" in meta:
        return {"status": "unreachable", "reason": meta["unreachable"].splitlines()[-1].strip()}
    if proc.returncode != 0 or not meta:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"status": "failed", "reason": f"numerics_worker exited {proc.returncode}: " + " | ".join(tail)}
    dev = {"status": "ran", "device": meta["device"], "image": meta["image"], "toolchain": meta["toolchain"],
           "digests": meta["digests"], "keys": meta["keys"], "nondeterministic": meta["nondeterministic"],
           "errors": meta["errors"]}
    minillm = files.get("minillm")
    if minillm and Path(minillm).exists():
        log(f"numerics: {where}: model ({len(PROMPTS)} prompts x {MODEL_TOKENS} tokens, twice)")
        _run_model(minillm, image, Path(npz_path), dev, perturb=bool({"all", "model"} & set(perturb.split(","))))
    return dev


def _last_json(text):
    for line in reversed((text or "").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _same_bits(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    u = f"u{a.dtype.itemsize}"
    return bool(np.array_equal(a.view(u), b.view(u)))


def _perturb_model(prompt, tokens, logits):
    """tokens and logits with an error of 3x their thresholds (tolerance.perturb)."""
    model = _Model.get()
    want = model.generate(prompt, MODEL_TOKENS, temperature=0, keep_logits=True)
    logits = logits.reshape(-1, model.config.vocab_size).copy()
    n = min(len(logits), len(want.logits))
    logits[:n] = tolerance.perturb("model_logits", logits[:n], np.asarray(want.logits[:n]),
                                   hidden=np.asarray(want.hidden[:n]), lm_head=model.lm_head)
    return tolerance.perturb("model_tokens", tokens, np.asarray(want.tokens)), logits.reshape(-1)


def _run_model(minillm, image, npz_path, dev, perturb=False):
    """minillm --dump-logits for each prompt, twice; outputs added to the npz."""
    model = TOP / MODEL_DIR
    arrays = dict(np.load(npz_path))
    dev["model"] = {"dir": MODEL_DIR, "errors": {}}
    env = dict(os.environ, SYCLFORGE_IMAGE=image)
    for i, prompt in enumerate(PROMPTS):
        runs = []
        for rep in range(2):
            dump = npz_path.with_name(f"{npz_path.stem}-logits{i}-{rep}.f32")
            cmd = [str(minillm), "-m", str(model), "-p", prompt, "-n", str(MODEL_TOKENS), "--temp", "0",
                   "--json", "--dump-logits", str(dump)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode != 0:
                dev["model"]["errors"][f"prompt{i}"] = proc.stderr.strip()[-500:]
                break
            try:   # the last line is the JSON record (a runtime may log before it)
                out = json.loads(proc.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                dev["model"]["errors"][f"prompt{i}"] = (f"{Path(minillm).name} printed no JSON record: "
                                                        f"{(proc.stdout + proc.stderr).strip()[-500:]}")
                break
            logits = np.fromfile(dump, dtype=np.float32)
            dump.unlink()
            runs.append((np.asarray(out["tokens"], np.int64), logits))
        if len(runs) < 2:
            continue
        (t1, l1), (t2, l2) = runs
        if not _same_bits(t1, t2) or not _same_bits(l1, l2):
            dev["nondeterministic"].append(f"model[prompt{i}]")
        if perturb:
            t1, l1 = _perturb_model(prompt, t1, l1)
        arrays[f"model{i}_tokens"], arrays[f"model{i}_logits"] = t1, l1
    tmp = npz_path.with_name(npz_path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, npz_path)


# --------------------------------------------------------------------------
# The cases, as the engine compares them

def _check(res, compared=None):
    worst = ", ".join(f"{k}={v}" for k, v in res.worst.items()) if res.worst else ""
    return Check(res.op, res.metric, res.value, res.threshold, res.ok, worst, compared)


class KernelCase:
    """One case of cases.py: its inputs made once, its digest proving that a
    device computed on the same numbers."""

    def __init__(self, case):
        self.case, self.id, self.op, self.label = case, case.id, case.op, case.label
        self._inputs = None

    @property
    def inputs(self):
        if self._inputs is None:
            self._inputs = self.case.inputs()
        return self._inputs

    def output(self, npz, device):
        if self.id in device["errors"]:
            raise NoOutput(device["errors"][self.id])
        if device["digests"].get(self.id) != _cases.digest(self.inputs):
            raise NoOutput("the device computed on other inputs than this machine makes for the case "
                           "(a different NumPy random generator?)", metric="inputs")
        return npz[device["keys"][self.id]]

    def reference(self):
        return _cases.reference(self.case, self.inputs)

    def check(self, got, want, pairwise=False):
        if pairwise:    # another device's output: judged in float64, as the reference is
            want = np.asarray(want, np.float64)
        return [_check(tolerance.compare(self.op, got, want, pairwise=pairwise, **self.inputs))]


class _Model:
    """The float64 reference model, loaded once for every prompt."""
    loaded = None

    @classmethod
    def get(cls):
        if cls.loaded is None:
            if str(TOP) not in sys.path:
                sys.path.insert(0, str(TOP))
            from models import reference as model_reference
            cls.loaded = model_reference.load(TOP / MODEL_DIR)
        return cls.loaded


class ModelCase:
    """One prompt: greedy tokens (exact) and the logits of the steps both
    runs share a context for, up to and including the first differing token.
    An output is (tokens, logits[steps, vocab])."""
    op = "model_tokens"

    def __init__(self, i, prompt):
        self.i, self.prompt = i, prompt
        self.id, self.label = f"model[prompt{i}]", f"{MODEL_TOKENS} tokens after {prompt!r}"

    def output(self, npz, device):
        if "model" not in device:
            return None         # no minillm was built for this device
        err = device["model"]["errors"].get(f"prompt{self.i}")
        if err:
            raise NoOutput(err, op="model_tokens")
        vocab = _Model.get().config.vocab_size
        return npz[f"model{self.i}_tokens"], npz[f"model{self.i}_logits"].reshape(-1, vocab)

    def reference(self):
        want = _Model.get().generate(self.prompt, MODEL_TOKENS, temperature=0, keep_logits=True)
        self.hidden = np.asarray(want.hidden)   # the logits' scale (model_logits in tolerances.yaml)
        return np.asarray(want.tokens, np.int64), np.asarray(want.logits)

    def check(self, got, want, pairwise=False):
        (toks, logits), (ref_toks, ref_logits) = got, want
        out = [_check(tolerance.compare("model_tokens", toks, ref_toks, pairwise=pairwise), (toks, ref_toks))]
        n = min(len(toks), len(ref_toks))
        diff = toks[:n] != ref_toks[:n]
        same = int(np.argmax(diff)) if diff.any() else n
        steps = min(same + 1, len(logits), len(ref_logits))
        scale = {"hidden": self.hidden[:steps], "lm_head": _Model.get().lm_head}
        out.append(_check(tolerance.compare("model_logits", logits[:steps], ref_logits[:steps], pairwise=pairwise,
                                            **scale),
                          (logits[:steps], ref_logits[:steps])))
        return out


def cases():
    """Every kernel case, then the model's prompts (made one at a time, so
    that only one case's inputs are held)."""
    for case in _cases.CASES:
        yield KernelCase(case)
    for i, prompt in enumerate(PROMPTS):
        yield ModelCase(i, prompt)
