#!/usr/bin/env python3
"""Checks a pruned model against the model it came from, on onnxruntime.

usage:
  prune_check.py REFERENCE CANDIDATE INPUTS.npz [--set N]... [--atol 1e-5] [--rtol 0] [--json]
      Runs onnx.checker (full_check) on CANDIDATE, loads both models in onnxruntime, runs them
      on the arrays of INPUTS.npz (keys = input names, optionally ``in.``; each --set N uses the
      keys prefixed ``setN.``; default: the plain keys) and compares every output by name:
      same shape, |candidate - reference| <= atol + rtol * |reference|. Prints one line per
      output and set, the parameter counts of both models, and ``OK``/``FAIL`` (exit 1 on FAIL).
      With --json, prints one JSON object instead: params, max_abs per output, ok.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def params(model):
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))


def feeds(sess, data, s):
    out = {}
    for i in sess.get_inputs():
        keys = [f"set{s}.{i.name}"] if s else [i.name, f"in.{i.name}"]
        key = next((k for k in keys if k in data), None)
        if key is None:
            raise SystemExit(f"error: no data for input '{i.name}' (set {s})")
        out[i.name] = data[key]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("reference")
    p.add_argument("candidate")
    p.add_argument("inputs")
    p.add_argument("--set", type=int, action="append")
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--rtol", type=float, default=0.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    cand = onnx.load(a.candidate)
    onnx.checker.check_model(cand, full_check=True)
    ref = onnx.load(a.reference)
    rs, cs = session(a.reference), session(a.candidate)
    data = np.load(a.inputs)
    ok = True
    worst = {}
    lines = []
    for s in a.set or [0]:
        r = rs.run(None, feeds(rs, data, s))
        c = dict(zip([o.name for o in cs.get_outputs()], cs.run(None, feeds(cs, data, s))))
        for meta, x in zip(rs.get_outputs(), r):
            y = c.get(meta.name)
            if y is None or y.shape != x.shape:
                ok = False
                lines.append(f"set {s} {meta.name}: shape {None if y is None else y.shape} != {x.shape}")
                continue
            d = float(np.max(np.abs(y.astype(np.float64) - x.astype(np.float64)))) if x.size else 0.0
            good = bool(np.all(np.abs(y.astype(np.float64) - x) <= a.atol + a.rtol * np.abs(x)))
            ok &= good
            worst[meta.name] = max(worst.get(meta.name, 0.0), d)
            lines.append(f"set {s} {meta.name}: max abs {d:.3g} {'ok' if good else 'FAIL'}")
    if a.json:
        print(json.dumps({"params": [params(ref), params(cand)], "max_abs": worst, "ok": ok}, sort_keys=True))
    else:
        print("\n".join(lines))
        print(f"params {params(ref)} -> {params(cand)}")
        print("OK" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
