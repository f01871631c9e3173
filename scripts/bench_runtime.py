#!/usr/bin/env python3
"""Interpreter speed: `prunec bench` against onnxruntime, on the same inputs, in one run.

usage: bench_runtime.py [--prunec BIN] [--threads 1,2] [--runs R] [--seconds S] [--warmup W] [--json OUT]
                        [MODEL[:INPUTS]]...

For each model (default: every examples/models/*.onnx with its .calib.npz) and thread count,
times onnxruntime (CPU provider, intra-op threads = N, all graph optimizations, as a user runs it)
and `prunec bench --json` alternately, --rounds rounds (default 5; onnxruntime once more, so each
prunec median lies between two of its medians), each side's median latency per round over at least
--seconds of runs; the ratio reported is the median over rounds of the per-round ratios, and the latencies
the medians over rounds (the machines are shared: a round disturbed by a neighbour moves neither). Prints a Markdown table
(ratio = prunec / onnxruntime; < 1 means prunec is faster) and prunec's per-op breakdown for
one thread; --json writes everything as one object.

Then, for bert and llama (--half-models; --half-models '' skips), the same models converted by
scripts/convert_half.py to float16 and bfloat16 compute with float32 I/O (written under
.cache/bench-half/): prunec's latency on each against its float32 latency in the same run
(ratio = half / float32), and onnxruntime's on the same files where its CPU provider runs them
(it has no bfloat16 kernels for most ops, so bfloat16 rows time prunec alone).
"""
import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

import convert_half

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ort_median(model, feeds, threads, runs, warmup):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    feeds = {i.name: feeds[i.name] for i in sess.get_inputs()}
    # As `prunec bench` does: `warmup` runs and at least a quarter of a second.
    start, warmed = time.perf_counter(), 0
    while warmed < warmup or (warmup > 0 and time.perf_counter() - start < 0.25):
        sess.run(None, feeds)
        warmed += 1
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


PRUNEC_ENV = dict(os.environ)


def prunec_bench(binary, model, inputs, threads, runs, warmup):
    cmd = [binary, "bench", model, "--inputs", inputs, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=PRUNEC_ENV)
    if r.returncode != 0:
        raise SystemExit(f"bench_runtime: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*")
    p.add_argument("--prunec", default=os.path.join(ROOT, ".build/release/prunec"))
    p.add_argument("--threads", default="1,4,all",
                   help="comma-separated thread counts; 'all' is every core of this machine")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.25,
                   help="each side's timed runs per round last at least this long (more runs than --runs "
                        "on small models), so a short burst of load cannot decide a median")
    p.add_argument("--half-models", default="bert,llama",
                   help="comma-separated example models also timed in float16/bfloat16 ('' for none)")
    p.add_argument("--built", default="bert-base,resnet50",
                   help="larger generated models also timed (scripts/bench_pruning.py builds them into "
                        ".cache/bench-models/; '' for none)")
    p.add_argument("--built-runs", type=int, default=10, help="timed runs per round on the built models")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE for prunec (by default it is removed, so that the "
                        "kernel set prunec chooses for this CPU is what gets timed)")
    p.add_argument("--json")
    args = p.parse_args()
    if not args.keep_blas_env and PRUNEC_ENV.pop("OPENBLAS_CORETYPE", None) is not None:
        print(f"bench_runtime: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is removed for prunec's runs "
              "(--keep-blas-env keeps it)", file=sys.stderr)
    counts = []
    for t in args.threads.split(","):
        n = (os.cpu_count() or 1) if t.strip() == "all" else int(t)
        if n not in counts:
            counts.append(n)
    args.threads = ",".join(str(n) for n in counts)

    pairs = []
    for m in args.models or sorted(glob.glob(os.path.join(ROOT, "examples/models/*.onnx"))):
        model, _, inputs = m.partition(":")
        if not inputs:
            inputs = os.path.join(os.path.dirname(model), os.path.basename(model).split(".")[0] + ".calib.npz")
        pairs.append((model, inputs, args.runs))
    if not args.models:
        import bench_pruning
        cache = os.path.join(ROOT, ".cache/bench-models")
        os.makedirs(cache, exist_ok=True)
        for name in [n for n in args.built.split(",") if n]:
            path, _ = bench_pruning.built_model(name, cache, False)
            pairs.append((path, os.path.join(cache, f"{name}.inputs.npz"), args.built_runs))

    rows = []
    for model, inputs, runs in pairs:
        data = np.load(inputs)
        feeds = {k: data[k] for k in data.files if "." not in k}
        for threads in [int(t) for t in args.threads.split(",")]:
            # Each side's timed runs cover at least --seconds: these machines have bursts of
            # load from neighbours lasting some milliseconds, and 50 runs of a 0.1 ms model
            # (5 ms) can fall inside one, which then decides that side's median.
            estimate = ort_median(model, feeds, threads, 5, args.warmup)
            n = max(runs, math.ceil(args.seconds * 1e3 / max(estimate, 1e-3)))
            ours, theirs = [], [ort_median(model, feeds, threads, n, args.warmup)]
            for _ in range(args.rounds):
                ours.append(prunec_bench(args.prunec, model, inputs, threads, n, args.warmup))
                theirs.append(ort_median(model, feeds, threads, n, args.warmup))
            # Each prunec median is set against the onnxruntime medians just before and after it
            # (geometric mean), and the ratio is the median of the rounds' ratios: the load from
            # neighbours comes in spells of seconds that slow both sides alike, so a spell that
            # starts or ends inside a round moves that round only.
            ratios = [o["median_ms"] / math.sqrt(a * b) for o, a, b in zip(ours, theirs, theirs[1:])]
            best = sorted(ours, key=lambda j: j["median_ms"])[len(ours) // 2]
            row = {
                "model": os.path.basename(model), "threads": threads,
                "prunec_ms": best["median_ms"], "ort_ms": statistics.median(theirs),
                "ratio": statistics.median(ratios), "round_ratios": ratios,
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
    half_rows = half_bench(args, [m for m in args.half_models.split(",") if m])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "rows": rows, "half_rows": half_rows}, f, indent=1, sort_keys=True)


def convert(model, dtype, out):
    m = onnx.load(model)
    if dtype == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16
        m = convert_float_to_float16(m, keep_io_types=True)
    else:
        m = convert_half.to_bf16(m)
    onnx.save(m, out)


def half_bench(args, names):
    """float16/bfloat16 against float32, prunec and onnxruntime, alternating in one run."""
    if not names:
        return []
    cache = os.path.join(ROOT, ".cache/bench-half")
    os.makedirs(cache, exist_ok=True)
    rows = []
    for name in names:
        model = os.path.join(ROOT, f"examples/models/{name}.onnx")
        inputs = os.path.join(ROOT, f"examples/models/{name}.calib.npz")
        data = np.load(inputs)
        feeds = {k: data[k] for k in data.files if "." not in k}
        files = {"fp32": model}
        for dtype in ("fp16", "bf16"):
            files[dtype] = os.path.join(cache, f"{name}.{dtype}.onnx")
            convert(model, dtype, files[dtype])
        for threads in [int(t) for t in args.threads.split(",")]:
            ours = {d: [] for d in files}
            theirs = {d: [] for d in files}
            ort_error = {}
            for _ in range(args.rounds):
                for dtype, f in files.items():
                    if dtype not in ort_error:
                        try:
                            theirs[dtype].append(ort_median(f, feeds, threads, args.runs, args.warmup))
                        except Exception as e:  # onnxruntime has no kernel for the type
                            ort_error[dtype] = str(e).splitlines()[0][:160]
                    ours[dtype].append(prunec_bench(args.prunec, f, inputs, threads, args.runs, args.warmup)["median_ms"])
            best = {d: min(v) for d, v in ours.items()}
            ort_best = {d: (min(v) if v else None) for d, v in theirs.items()}
            for dtype in ("fp16", "bf16"):
                row = {"model": name, "dtype": dtype, "threads": threads,
                       "prunec_ms": best[dtype], "prunec_fp32_ms": best["fp32"],
                       "ratio": best[dtype] / best["fp32"],
                       "ort_ms": ort_best[dtype], "ort_fp32_ms": ort_best["fp32"],
                       "ort_error": ort_error.get(dtype)}
                rows.append(row)
                print(f"bench_runtime: {name} {dtype} threads={threads}: prunec {row['prunec_ms']:.3f} ms "
                      f"(fp32 {row['prunec_fp32_ms']:.3f} ms, ratio {row['ratio']:.2f})", file=sys.stderr)
    print("\nfloat16 / bfloat16 compute (float32 I/O) against float32 on the same model; "
          "ratio = prunec half / prunec float32\n")
    print("| model | dtype | threads | prunec ms | prunec fp32 ms | ratio | onnxruntime ms | onnxruntime fp32 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        o = f"{r['ort_ms']:.3f}" if r["ort_ms"] is not None else "n/a"
        o32 = f"{r['ort_fp32_ms']:.3f}" if r["ort_fp32_ms"] is not None else "n/a"
        print(f"| {r['model']} | {r['dtype']} | {r['threads']} | {r['prunec_ms']:.3f} | {r['prunec_fp32_ms']:.3f} "
              f"| {r['ratio']:.2f} | {o} | {o32} |")
    errors = {(r["model"], r["dtype"]): r["ort_error"] for r in rows if r["ort_error"]}
    for (m, d), e in errors.items():
        print(f"- onnxruntime cannot run {m} {d}: {e}")
    return rows


if __name__ == "__main__":
    main()
