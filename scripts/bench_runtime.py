#!/usr/bin/env python3
"""Interpreter speed: `prunec bench` against onnxruntime, on the same inputs, in one run.

usage: bench_runtime.py [--prunec BIN] [--threads 1,2] [--runs R] [--warmup W] [--json OUT]
                        [MODEL[:INPUTS]]...

For each model (default: every examples/models/*.onnx with its .calib.npz) and thread count,
times onnxruntime (CPU provider, intra-op threads = N, all graph optimizations, as a user runs it)
and `prunec bench --json` alternately, three rounds each, and keeps each side's best median: the
machines are shared, so a round disturbed by a neighbour is discarded. Prints a Markdown table
(ratio = prunec / onnxruntime; < 1 means prunec is faster) and prunec's per-op breakdown for
one thread; --json writes everything as one object.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_median(model, feeds, threads, runs, warmup):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def prunec_bench(binary, model, inputs, threads, runs, warmup):
    cmd = [binary, "bench", model, "--inputs", inputs, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"bench_runtime: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*")
    p.add_argument("--prunec", default=os.path.join(ROOT, ".build/release/prunec"))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()

    pairs = []
    for m in args.models or sorted(glob.glob(os.path.join(ROOT, "examples/models/*.onnx"))):
        model, _, inputs = m.partition(":")
        if not inputs:
            inputs = os.path.join(os.path.dirname(model), os.path.basename(model).split(".")[0] + ".calib.npz")
        pairs.append((model, inputs))

    rows = []
    for model, inputs in pairs:
        data = np.load(inputs)
        feeds = {k: data[k] for k in data.files if "." not in k}
        for threads in [int(t) for t in args.threads.split(",")]:
            ours, theirs = [], []
            for _ in range(args.rounds):
                theirs.append(ort_median(model, feeds, threads, args.runs, args.warmup))
                ours.append(prunec_bench(args.prunec, model, inputs, threads, args.runs, args.warmup))
            best = min(ours, key=lambda j: j["median_ms"])
            row = {
                "model": os.path.basename(model), "threads": threads,
                "prunec_ms": best["median_ms"], "ort_ms": min(theirs),
                "ratio": best["median_ms"] / min(theirs),
                "gflops": best.get("gflops"), "blas_core": best.get("blas_core"),
                "gemm_gflops": best.get("gemm_gflops"), "blas_peak_gflops": best.get("blas_peak_gflops"),
                "arena_bytes": best.get("arena_bytes"), "intermediate_bytes": best.get("intermediate_bytes"),
                "per_op": best.get("per_op", []),
            }
            rows.append(row)
            print(f"bench_runtime: {row['model']} threads={threads}: prunec {row['prunec_ms']:.3f} ms, "
                  f"onnxruntime {row['ort_ms']:.3f} ms, ratio {row['ratio']:.2f}", file=sys.stderr)

    core = rows[0]["blas_core"] if rows else "?"
    print(f"\nprunec interpreter vs onnxruntime {ort.__version__} (OpenBLAS core: {core}); ratio = prunec / onnxruntime\n")
    print("| model | threads | prunec ms | onnxruntime ms | ratio | GFLOP/s | GEMM ops / sgemm peak GFLOP/s | arena / all intermediates |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        arena = (f"{r['arena_bytes'] / 1024:.0f} / {r['intermediate_bytes'] / 1024:.0f} KiB"
                 if r.get("arena_bytes") is not None and r.get("intermediate_bytes") else "")
        g = f"{r['gflops']:.1f}" if r.get("gflops") is not None else ""
        gemm = (f"{r['gemm_gflops']:.0f} / {r['blas_peak_gflops']:.0f}"
                if r.get("gemm_gflops") is not None and r.get("blas_peak_gflops") else "")
        print(f"| {r['model']} | {r['threads']} | {r['prunec_ms']:.3f} | {r['ort_ms']:.3f} | {r['ratio']:.2f} | {g} | {gemm} | {arena} |")
    print("\nWhere prunec's time goes (1 thread, top ops, % of the run):\n")
    for r in rows:
        if r["threads"] != 1:
            continue
        top = ", ".join(f"{o['op']} {o['percent']:.0f}%" for o in r["per_op"][:5])
        print(f"- {r['model']}: {top}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "rows": rows}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
