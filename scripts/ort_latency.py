#!/usr/bin/env python3
"""Median onnxruntime latency of MODEL on the plain keys of INPUTS.npz (what `prunec sweep --ort`
runs for each model it measures).

usage: ort_latency.py MODEL INPUTS.npz [--runs 20] [--threads 1]
Prints one JSON object: {"median_ms": ..., "runs": ...}. CPU execution provider, all graph
optimizations, as a user would run the model.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    data = np.load(a.inputs)
    feeds = {i.name: data[i.name] for i in sess.get_inputs()}
    sess.run(None, feeds)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"median_ms": float(np.median(times)), "runs": a.runs}))


if __name__ == "__main__":
    main()
