"""Everything to check a GPU release bundle on a machine that has only the
GPU driver, Python with NumPy (and, for the peer, PyTorch with Hugging Face
transformers) and a checkout of this repository: one command, one folder of
results to bring back and merge (README.md, "NVIDIA GPUs").

    python3 kernels/python/gpu_kit.py BUNDLE.tar.gz OUT_DIR [--runner h200]

It extracts the bundle and writes into OUT_DIR:
  kl-info.txt        bin/run kl-info (SYCLFORGE_VERBOSE=1): device, image, self-test
  minillm.json       greedy tokens of minillm against the float64 reference
                     (models/reference.py, run here), the sample text,
                     decode/prefill medians beside PyTorch + transformers
                     (LlamaForCausalLM on the same weights, same GPU), and
                     where decode's time goes: launches per token, time per
                     launch
  numerics/          `python -m syclforge.numerics run` of the bundle's
                     library and minillm: report.json, table.txt, outputs
  numerics-ptx/      the same with CUDA_FORCE_PTX_JIT=1 (the driver JIT-compiles
                     the bundle's PTX instead of loading its cubins)
Merge here with: scons numerics merge=build/numerics-cpu,OUT_DIR/numerics,OUT_DIR/numerics-ptx
Exit status 0 when every check passed, 1 otherwise (all results are written).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
MODEL = TOP / "models" / "tiny-fortunes"
PROMPT = "Once upon a time"
TOKENS = 64
RUNS = 5


def log(msg):
    print(f"gpu_kit: {msg}", flush=True)


def _record(stdout):
    """minillm --json's record: its last line (a runtime may log before it)."""
    return json.loads(stdout.strip().splitlines()[-1])


def minillm(bundle, *args, env=None):
    proc = subprocess.run([str(bundle / "bin" / "run"), "minillm", "-m", str(MODEL), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"minillm {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return _record(proc.stdout)


def reference_tokens():
    sys.path.insert(0, str(TOP))
    from models import reference
    gen = reference.load(MODEL).generate(PROMPT, TOKENS, temperature=0.0)
    return [int(t) for t in gen.tokens]


def torch_peer(prompt_tokens, n, runs):
    """Greedy decode with transformers' LlamaForCausalLM on the GPU, the
    same weights; prefill = the prompt's forward, decode = n single-token
    forwards through the KV cache, each synchronised (medians of runs)."""
    import torch
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(str(MODEL), torch_dtype=torch.float32).to("cuda").eval()
    ids = torch.tensor([prompt_tokens], device="cuda")
    prefill, decode, tokens = [], [], None
    with torch.no_grad():
        for r in range(runs + 1):                      # the first is a warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            past, nxt, got = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True), []
            for _ in range(n):
                got.append(int(nxt))
                out = model(nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            if r:
                prefill.append((t1 - t0) * 1e3)
                decode.append(n / (t2 - t1))
            tokens = got
    return {"prefill_ms": statistics.median(prefill), "tok_per_s": statistics.median(decode), "tokens": tokens,
            "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "runs": runs}


def launch_costs(bundle, repeats=500):
    """Time per launch on the bundle's device (kernels/python/syclforge_kl.py
    over its library): kl_add of 16 floats, enqueue + kl_wait each (the
    round trip a synchronised op pays), and back to back, one wait at the
    end (what an op costs in a stream of them, as in a decode step). Medians
    of 5 batches, in microseconds."""
    import numpy as np
    sys.path.insert(0, str(TOP / "kernels" / "python"))
    from syclforge_kl import Runtime
    with Runtime(lib=str(bundle / "lib" / "libsyclforge_kl.so")) as rt:
        a, y = rt.to_device(np.ones(16, np.float32)), rt.empty(16)
        for _ in range(50):
            rt.call("kl_add", a, a, y, 16)
        rt.wait()
        synced, streamed = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeats):
                rt.call("kl_add", a, a, y, 16)
                rt.wait()
            synced.append((time.perf_counter() - t0) / repeats * 1e6)
            t0 = time.perf_counter()
            for _ in range(repeats):
                rt.call("kl_add", a, a, y, 16)
            rt.wait()
            streamed.append((time.perf_counter() - t0) / repeats * 1e6)
        a.free(), y.free()
        return {"device": rt.device_name, "launch_and_wait_us": statistics.median(synced),
                "launch_in_stream_us": statistics.median(streamed)}


def numerics(bundle, out, runner, target, toolchain, env=None):
    cmd = [sys.executable, "-m", "syclforge.numerics", "run", "--plugin", "kernels/python/numerics_plugin.py",
           "--target", target, "--toolchain", toolchain, "--image", "runtime-selected",
           "--file", f"lib={bundle / 'lib' / 'libsyclforge_kl.so'}", "--file", f"minillm={bundle / 'bin' / 'minillm'}",
           "--out", str(out), "--runner", runner]
    env = dict(env or os.environ, PYTHONPATH=str(TOP / "site_scons"), SYCLFORGE_TOP=str(TOP))
    proc = subprocess.run(cmd, cwd=TOP, env=env, capture_output=True, text=True, timeout=1800)
    print(proc.stdout[-6000:] + proc.stderr[-3000:], flush=True)
    # At most 8 files come back from the GPU machine: report.json and the
    # outputs are what a merge needs (it draws its own table and picture).
    for extra in ("report.png", "table.txt"):
        (Path(out) / extra).unlink(missing_ok=True)
    return proc.returncode


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("out")
    ap.add_argument("--runner", default="gpu")
    ap.add_argument("--runs", type=int, default=RUNS)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-kit-"))
    with tarfile.open(a.bundle) as t:
        t.extractall(work)
    (bundle,) = work.iterdir()
    manifest = json.loads((bundle / "manifest.json").read_text())
    target, toolchain = manifest["target"]["name"], manifest["toolchain"]["name"]
    ok = True

    log("kl-info")
    proc = subprocess.run([str(bundle / "bin" / "run"), "kl-info"], capture_output=True, text=True,
                          env=dict(os.environ, SYCLFORGE_VERBOSE="1"), timeout=900)
    (out / "kl-info.txt").write_text(proc.stdout + proc.stderr + f"\n(exit {proc.returncode})\n")
    ok &= proc.returncode == 0

    log("minillm against the float64 reference, and the PyTorch peer")
    result = {"prompt": PROMPT, "tokens_asked": TOKENS}
    try:
        ref = reference_tokens()
        runs = [minillm(bundle, "-p", PROMPT, "-n", TOKENS, "--temp", 0, "--json", "--warmup")
                for _ in range(a.runs)]
        ours = runs[0]
        result.update(reference_tokens=ref, prompt_tokens=ours["prompt_tokens"], tokens=ours["tokens"],
                      text=ours["text"], image=ours["image"],
                      same_as_reference=ours["tokens"] == ref,
                      ours={"tok_per_s": statistics.median(r["tok_per_s"] for r in runs),
                            "prefill_ms": statistics.median(r["prefill_ms"] for r in runs), "runs": len(runs),
                            "launches_per_token": runs[0].get("launches_per_token")})
        ok &= result["same_as_reference"]
    except Exception as e:          # noqa: BLE001 -- reported, the other checks still run
        result["error"] = f"{type(e).__name__}: {e}"
        ok = False
    try:
        if "prompt_tokens" not in result:
            raise RuntimeError("minillm gave no prompt tokens to feed the peer")
        peer = torch_peer(result["prompt_tokens"], TOKENS, a.runs)
        peer["same_tokens_as_ours"] = peer["tokens"] == result.get("tokens")
        result["peer"] = peer
        if "ours" in result:
            result["ratio"] = {"decode": result["ours"]["tok_per_s"] / peer["tok_per_s"],
                               "prefill_time": result["ours"]["prefill_ms"] / peer["prefill_ms"]}
    except Exception as e:          # noqa: BLE001 -- reported in minillm.json
        result["peer_error"] = f"{type(e).__name__}: {e}"
    try:   # where decode's time goes: launches per token x time per launch
        result["launches"] = launch_costs(bundle)
        per = result.get("ours", {}).get("launches_per_token")
        if per and result.get("ours", {}).get("tok_per_s"):
            token_us = 1e6 / result["ours"]["tok_per_s"]
            result["launches"]["launch_share_of_a_token"] = per * result["launches"]["launch_in_stream_us"] / token_us
    except Exception as e:          # noqa: BLE001
        result["launches_error"] = f"{type(e).__name__}: {e}"
    (out / "minillm.json").write_text(json.dumps(result, indent=1) + "\n")

    log("numerics")
    rc = numerics(bundle, out / "numerics", a.runner, target, toolchain)
    ok &= rc == 0
    log("numerics with the PTX JIT-compiled by the driver (CUDA_FORCE_PTX_JIT=1)")
    rc = numerics(bundle, out / "numerics-ptx", a.runner + "-ptx-jit", target, toolchain,
                  env=dict(os.environ, CUDA_FORCE_PTX_JIT="1"))
    ok &= rc == 0
    log("done: " + ("every check passed" if ok else "some checks FAILED (see the files)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
