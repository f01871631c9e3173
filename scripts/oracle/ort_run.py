#!/usr/bin/env python3
"""Runs a model on onnxruntime: the whole-model oracle for prunec's interpreter.

usage:
  ort_run.py run MODEL INPUTS.npz OUT.npz [--set N]
      Runs MODEL on the arrays of INPUTS.npz (keys = input names, optionally prefixed ``in.``;
      with --set N, the keys prefixed ``setN.``) and writes ``out.<output name>`` to OUT.npz.
  ort_run.py check MODEL INPUTS.npz OURS.npz [--set N] [--rtol 1e-4] [--atol 1e-5]
      Runs MODEL on onnxruntime like ``run`` and compares with OURS.npz (``out.<name>`` keys, as
      ``prunec run -o`` writes them): same dtype and shape, |ours - ort| <= atol + rtol * |ort|.
      Prints one line per output (max abs and rel error) and ``OK``/``FAIL``; exits 1 on FAIL.
  ort_run.py inputs MODEL OUT.npz [--dim NAME=SIZE]... [--shape INPUT=AxBxC]... [--seed S] [--like DATA.npz]
      Makes deterministic random inputs for MODEL: the whole shape of an input from --shape, else
      symbolic dims from --dim (default 1) and fixed dims as declared; float inputs ~ N(0, 1); integer inputs named like ``*mask*`` are ones
      with the tail of every other row zeroed; other integers in [0, high) where high is the
      largest value of the same input in --like (+1), else 100.

Uses the CPU execution provider with one thread and all graph optimizations, as a user would.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

NP = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def pick(data, name, prefix):
    for key in ([f"{prefix}{name}"] if prefix else [name, f"in.{name}"]):
        if key in data:
            return data[key]
    raise SystemExit(f"ort_run: no array for input '{name}' (prefix {prefix!r}) in the data file")


def atomic_savez(path, arrays):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def cmd_run(args):
    sess = session(args.model)
    data = np.load(args.inputs)
    prefix = f"set{args.set}." if args.set else ""
    feeds = {i.name: pick(data, i.name, prefix) for i in sess.get_inputs()}
    outs = sess.run(None, feeds)
    atomic_savez(args.out, {f"out.{o.name}": v for o, v in zip(sess.get_outputs(), outs)})


def cmd_check(args):
    sess = session(args.model)
    data = np.load(args.inputs)
    prefix = f"set{args.set}." if args.set else ""
    feeds = {i.name: pick(data, i.name, prefix) for i in sess.get_inputs()}
    outs = sess.run(None, feeds)
    ours = np.load(args.ours)
    ok = True
    for o, ref in zip(sess.get_outputs(), outs):
        key = f"out.{o.name}"
        if key not in ours:
            print(f"{o.name}: missing from {args.ours}")
            ok = False
            continue
        got = ours[key]
        if got.dtype != ref.dtype or got.shape != ref.shape:
            print(f"{o.name}: {got.dtype}{list(got.shape)}, onnxruntime gives {ref.dtype}{list(ref.shape)}")
            ok = False
            continue
        if not np.issubdtype(ref.dtype, np.number):
            same = np.array_equal(got, ref)
            print(f"{o.name}: {'equal' if same else 'different'}")
            ok = ok and same
            continue
        g, r = got.astype(np.float64), ref.astype(np.float64)
        err = np.abs(g - r)
        bad = ~(err <= args.atol + args.rtol * np.abs(r)) & ~(np.isnan(g) & np.isnan(r))
        rel = float((err / np.maximum(np.abs(r), 1e-30)).max()) if err.size else 0.0
        print(f"{o.name}: {list(ref.shape)} max_abs={float(err.max()) if err.size else 0:.3g} max_rel={rel:.3g} bad={int(bad.sum())}")
        ok = ok and not bad.any()
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


def cmd_inputs(args):
    model = onnx.load(args.model, load_external_data=False)
    dims = dict(d.split("=", 1) for d in args.dim)
    shapes = {k: [int(x) for x in v.split("x")] for k, v in (d.rsplit("=", 1) for d in args.shape)}
    like = np.load(args.like) if args.like else {}
    rng = np.random.default_rng(args.seed)
    inits = {t.name for t in model.graph.initializer}
    arrays = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        t = i.type.tensor_type
        if i.name in shapes:
            shape = shapes[i.name]
        else:
            shape = [d.dim_value if d.HasField("dim_value") else int(dims.get(d.dim_param, 1)) for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            a = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            a = rng.random(shape) < 0.5
        elif "mask" in i.name:
            a = np.ones(shape, dtype=dtype)
            if len(shape) == 2 and shape[1] > 1:
                a[1::2, shape[1] // 2:] = 0
        else:
            high = int(like[i.name].max()) + 1 if i.name in like else 100
            a = rng.integers(0, max(high, 1), size=shape).astype(dtype)
        arrays[i.name] = a
    atomic_savez(args.out, arrays)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("inputs")
    r.add_argument("out")
    r.add_argument("--set", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("model")
    c.add_argument("inputs")
    c.add_argument("ours")
    c.add_argument("--set", type=int, default=0)
    c.add_argument("--rtol", type=float, default=1e-4)
    c.add_argument("--atol", type=float, default=1e-5)
    i = sub.add_parser("inputs")
    i.add_argument("model")
    i.add_argument("out")
    i.add_argument("--dim", action="append", default=[])
    i.add_argument("--shape", action="append", default=[])
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--like")
    args = p.parse_args()
    return {"run": cmd_run, "check": cmd_check, "inputs": cmd_inputs}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
