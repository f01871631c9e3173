#!/usr/bin/env python3
"""LD-Pruner benchmark: scoring time against the number of units scored, with and without prefix reuse.

usage: bench_ldpruner.py [--prunec BIN] [--configs NAME,...] [--options K=V,...] [--cache DIR] [--json OUT]

For each configuration (a model and the group kinds to score, from a handful of units to a
thousand), runs

  prunec MODEL --pass 'ld-pruner{kinds=K,reuse=R,...}' -o OUT --calib CALIB --no-validate --report R.json

with reuse=true (each masked unit re-executes only the steps downstream of its gate, from the
recorded run: Tape.rerun) and reuse=false (a full interpreter run per masked unit), and reads the
pass statistics from the report: units scored, masked evaluations run, scoring seconds, and the
fraction of interpreter steps the masked evaluations recomputed (steps-recomputed / steps-full).

Configurations (--configs picks some; default all):
  bert-heads, bert-neurons, bert-all   the example encoder (2 layers, 4 heads, FFN 128), 7 samples
  llama-all                            the example decoder, 7 samples
  dit-all                              the example DiT, 7 samples x 3 timesteps
  encoder-heads                        scripts/bench_pruning.py's 4-layer BERT-base-like encoder
                                       (48 heads of 64, hidden 768) at sequence 32, 2 samples; built
                                       into --cache (default .cache/bench-models/) with onnx
  unet-heads+channels, unet-all        the example UNet, 2 samples x 2 timesteps

Prints a Markdown table (one row per configuration and reuse setting; speedup = reuse=false
seconds / reuse=true seconds) and, with --json, writes the rows. Exits non-zero on a prunec failure.

Example (what `make bench-ldpruner` runs):
  .venv/bin/python scripts/bench_ldpruner.py --prunec .build/release/prunec --json .cache/bench-ldpruner.json
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_common import run_timed, write_json  # noqa: E402
EXAMPLES = os.path.join(ROOT, "examples/models")

# name: (model, kinds, extra options)
CONFIGS = [
    ("bert-heads", "bert", "heads", ""),
    ("bert-neurons", "bert", "neurons", ""),
    ("bert-all", "bert", "all", ""),
    ("llama-all", "llama", "all", ""),
    ("dit-all", "dit", "all", ""),
    ("encoder-heads", "encoder", "heads", "samples=2"),
    ("unet-heads+channels", "unet", "heads+channels", "samples=2,timesteps=2"),
    ("unet-all", "unet", "all", "samples=2,timesteps=2"),
]


def encoder(cache):
    """The generated 4-layer encoder and a 3-set calibration file at sequence 32 (2 scored, 1 held out)."""
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import bench_pruning
    os.makedirs(cache, exist_ok=True)
    path, _ = bench_pruning.built_model("encoder", cache, False)
    calib = os.path.join(cache, "encoder.ldpruner.calib.npz")
    if not os.path.exists(calib):
        rng = np.random.default_rng(7)
        arrays = {}
        for k in range(3):
            prefix = "" if k == 0 else f"set{k}."
            arrays[prefix + "hidden"] = rng.standard_normal((1, 32, 768)).astype(np.float32)
            arrays[prefix + "attention_mask"] = np.ones((1, 32), np.int64)
        np.savez(calib, **arrays)
    return path, calib


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunec", default=os.environ.get("PRUNEC", os.path.join(ROOT, ".build/release/prunec")))
    ap.add_argument("--configs", default=",".join(c[0] for c in CONFIGS))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache/bench-models"))
    ap.add_argument("--options", default="",
                    help="more ld-pruner options for every configuration, e.g. estimate=exact (the scoring "
                         "of builds before the first-order estimate, to time the interpreter alone)")
    ap.add_argument("--json")
    a = ap.parse_args()
    wanted = a.configs.split(",")
    unknown = [w for w in wanted if w not in {c[0] for c in CONFIGS}]
    if unknown:
        raise SystemExit(f"bench_ldpruner: unknown configuration(s) {', '.join(unknown)} (known: {', '.join(c[0] for c in CONFIGS)})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, kinds, extra in (c for c in CONFIGS if c[0] in wanted):
            if model == "encoder":
                path, calib = encoder(a.cache)
            else:
                path, calib = os.path.join(EXAMPLES, f"{model}.onnx"), os.path.join(EXAMPLES, f"{model}.calib.npz")
            seconds = {}
            for reuse in ("true", "false"):
                options = ",".join(x for x in (f"kinds={kinds}", f"reuse={reuse}", extra, a.options) if x)
                report = os.path.join(tmp, f"{name}.{reuse}.json")
                _, wall = run_timed([a.prunec, path, "--pass", f"ld-pruner{{{options}}}", "-o", os.path.join(tmp, "out.onnx"),
                               "--calib", calib, "--no-validate", "--report", report])
                with open(report) as f:
                    stats = json.load(f)["passes"][0]["statistics"]
                units = int(stats["units-scored"])
                row = {
                    "config": name, "model": model, "kinds": kinds, "options": options, "reuse": reuse == "true",
                    "units": units, "evaluation_inputs": int(stats["evaluation-inputs"]), "evaluations": int(stats["evaluations"]),
                    "seconds": stats["scoring-seconds"], "seconds_per_unit": stats["scoring-seconds"] / max(units, 1),
                    "recomputed_fraction": stats["recomputed-fraction"], "wall_seconds": wall,
                }
                seconds[reuse] = row["seconds"]
                rows.append(row)
                print(f"# {row}", file=sys.stderr)
            rows[-2]["speedup"] = seconds["false"] / max(seconds["true"], 1e-9)
    print("| model | kinds | reuse | units scored | evaluations | seconds | ms per unit | ms per evaluation | steps recomputed | speedup |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
        print(f"| {r['model']} | {r['kinds']} | {'on' if r['reuse'] else 'off'} | {r['units']} | {r['evaluations']} | "
              f"{r['seconds']:.2f} | {1000 * r['seconds_per_unit']:.1f} | {1000 * r['seconds'] / max(r['evaluations'], 1):.2f} | "
              f"{100 * r['recomputed_fraction']:.1f}% | {speedup} |")
    if a.json:
        write_json(a.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
