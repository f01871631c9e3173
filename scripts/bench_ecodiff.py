#!/usr/bin/env python3
"""EcoDiff benchmark: memory of checkpointed denoising runs, time, and quality against magnitude.

usage: bench_ecodiff.py [--prunec BIN] [--models unet,dit] [--json OUT] [--skip-quality]

1. Memory (time-step checkpointing): for each model, one optimizer step of
   `ecodiff{steps=1,denoise-steps=N,samples=1,holdout=0}` at N = 10 and N = 50,
   peak RSS (VmHWM, prunec's --report-peak-rss). Checkpointing keeps one step's activations plus
   N latents, so the 50-step peak should stay within 1.25x of the 10-step one.
2. The literal headline command `prunec MODEL --pass ecodiff --pass fold-masks -o small.onnx`
   (defaults, no calibration data): wall time on this machine, the pruned fraction of the
   prunable head+FFN parameters, ecodiff's held-out final-latent drift (a pass statistic), and
   the validation drift of ecodiff and of magnitude pruning of heads and FFN neurons
   (`--compare`, on the same inputs).

Prints a Markdown table; with --json writes the rows. Exits non-zero on a prunec failure.

Example (what `make bench-ecodiff` runs):
  .venv/bin/python scripts/bench_ecodiff.py --prunec .build/release/prunec --json .cache/bench-ecodiff.json
"""
import argparse
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_common import run_timed, write_json  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunec", default=os.environ.get("PRUNEC", os.path.join(ROOT, ".build/release/prunec")))
    ap.add_argument("--models", default="unet,dit")
    ap.add_argument("--json")
    ap.add_argument("--skip-quality", action="store_true")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            model = os.path.join(ROOT, "examples/models", f"{name}.onnx")
            out = os.path.join(tmp, f"{name}.onnx")
            row = {"model": name}
            for n in (10, 50):
                p, secs = run_timed([a.prunec, model, "--pass",
                               f"ecodiff{{steps=1,denoise-steps={n},samples=1,holdout=0}}",
                               "-o", out, "--no-validate", "--report-peak-rss"])
                m = re.search(r"peak-rss-bytes: (\d+)", p.stderr)
                row[f"peak_rss_{n}"] = int(m.group(1)) if m else None
                row[f"seconds_{n}"] = secs
            row["rss_ratio"] = row["peak_rss_50"] / row["peak_rss_10"]
            if not a.skip_quality:
                report = os.path.join(tmp, f"{name}.json")
                # The baseline runs in the same command (`--compare`): magnitude pruning of head and FFN
                # units, validated on the same inputs as the ecodiff result.
                p, secs = run_timed([a.prunec, model, "--pass", "ecodiff", "--pass", "fold-masks", "-o", out, "--report", report,
                                     "--compare", "magnitude{sparsity=0.2,kinds=heads+neurons},fold-masks"])
                with open(report) as f:
                    r = json.load(f)
                stats = r["passes"][0]["statistics"]
                row.update({
                    "default_seconds": secs,
                    "prunable_fraction_removed": stats.get("prunable-fraction-removed"),
                    "holdout_drift": stats.get("holdout-drift"),
                    "validation_drift": max(d["rel_l2"] for d in r["drift"].values()),
                    "magnitude_validation_drift": max(d["rel_l2"] for d in r["compare"][0]["drift"].values()),
                    "params_before": r["before"]["params"], "params_after": r["after"]["params"],
                })
            rows.append(row)
            print(f"# {name}: {row}", file=sys.stderr)
    print("| model | peak RSS, 10 steps | peak RSS, 50 steps | ratio | default run | removed (prunable) | held-out drift ecodiff | drift ecodiff | drift magnitude (--compare) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mib = lambda b: f"{b / 2**20:.0f} MiB"
        q = lambda k, f: (format(r[k], f) if r.get(k) is not None else "-")
        print(f"| {r['model']} | {mib(r['peak_rss_10'])} | {mib(r['peak_rss_50'])} | {r['rss_ratio']:.3f} | "
              f"{q('default_seconds', '.0f')} s | {q('prunable_fraction_removed', '.3f')} | {q('holdout_drift', '.4f')} | "
              f"{q('validation_drift', '.4f')} | {q('magnitude_validation_drift', '.4f')} |")
    if a.json:
        write_json(a.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
