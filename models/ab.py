"""A/B of two minillm builds: their runs alternate (A B, B A, ...), so a
slow spell of a shared machine falls on both, and the ratio of their
medians holds where the absolute figures drift. For a change to the model
or the library it calls, keep the old build and measure both:

    cp -r build/cpu-x86 build/before         # RPATH: its lib/ and ../../../.venv/lib, so inside build/
    (edit, then .venv/bin/scons -Q target=cpu-x86)
    .venv/bin/python models/ab.py build/before/bin/minillm build/cpu-x86/bin/minillm models/tiny-fortunes

Greedy decode of the bench's prompt (models/bench.py), --warmup, one process
a run; prints each build's median tok/s, prefill ms and launches a token,
B's tok/s over A's, and whether both generated the same tokens. The image
is each loader's choice; SYCLFORGE_IMAGE=avx2 forces it for both. Exit
status 2 when a build fails to run.
"""
import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import NEW_TOKENS, PROMPT, MinillmError, run_minillm  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("a", help="minillm build A (the baseline)")
    ap.add_argument("b", help="minillm build B")
    ap.add_argument("model", help="a model folder (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("--runs", type=int, default=10, help="runs of each build (default: %(default)s)")
    ap.add_argument("-n", type=int, default=NEW_TOKENS, help="new tokens a run (default: %(default)s)")
    ap.add_argument("--prompt", default=PROMPT)
    args = ap.parse_args(argv)
    for exe in (args.a, args.b):
        if not Path(exe).is_file():
            ap.error(f"{exe}: no such build")
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"{args.model}: not a model folder (no config.json)")
    got = {"A": [], "B": []}
    texts = {}
    try:
        for r in range(max(args.runs, 1)):
            for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                doc = run_minillm(args.model, args.prompt, args.n, exe=args.a if side == "A" else args.b)
                got[side].append(doc)
                texts.setdefault(side, doc["tokens"])
                print(f"ab: run {r + 1} {side}: {doc['tok_per_s']:.1f} tok/s", file=sys.stderr, flush=True)
    except (MinillmError, KeyError, subprocess.TimeoutExpired) as e:
        print(f"ab: error: {e}", file=sys.stderr)
        return 2
    med = {s: {k: statistics.median(d[k] for d in docs) for k in ("tok_per_s", "prefill_ms", "launches_per_token")}
           for s, docs in got.items()}
    for s, exe in (("A", args.a), ("B", args.b)):
        m = med[s]
        print(f"{s} {exe}: {m['tok_per_s']:.1f} tok/s, prefill {m['prefill_ms']:.2f} ms, "
              f"{m['launches_per_token']:.1f} launches/token (image {got[s][0].get('image')})")
    print(f"B/A: tok/s {med['B']['tok_per_s'] / med['A']['tok_per_s']:.3f}, "
          f"prefill time {med['B']['prefill_ms'] / med['A']['prefill_ms']:.3f} "
          f"(medians of {len(got['A'])} alternating runs each)")
    print(f"same tokens: {'yes' if texts['A'] == texts['B'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
