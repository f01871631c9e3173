#!/usr/bin/env python3
"""End-to-end check of one model of examples/models/corpus (the transformer variants).

usage:
  corpus_check.py --prunec PRUNEC --model NAME [--corpus DIR] [--work DIR] [--json]

For the manifest entry whose file is NAME:
  1. `prunec inspect --groups --json`: every layer's heads (kv groups for grouped-query attention)
     and FFN neurons are prunable groups of the expected size (from the manifest's `arch`).
  2. the interpreter (`prunec run`) matches onnxruntime on two calibration sets (fp32: 1e-4
     relative; fp16/bf16: their precision), where onnxruntime runs the model.
  3. `magnitude{sparsity=0.3}` then `fold-masks`: the folded model passes onnx.checker (full) and
     runs in onnxruntime equal to the masked model, at the calibration length and at a second
     sequence length; its graph inputs/outputs and initializer element types are unchanged.
Prints one line per check and OK/FAIL (exit 1); --json prints one object instead.
"""
import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True)


def feeds_of(data, names, s):
    return {n: data[f"set{s}.{n}" if s else n] for n in names}


def tolerance(entry):
    return {"fp32": (1e-4, 1e-5), "fp16": (2e-2, 2e-2), "bf16": (6e-2, 6e-2)}.get(entry.get("dtype", "fp32"), (1e-4, 1e-5))


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b))), float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def types(model):
    io = [(v.name, v.type.tensor_type.elem_type) for v in list(model.graph.input) + list(model.graph.output)]
    # Floating-point weights keep their type; folding may add int64 shape constants.
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    return io, {t.data_type for t in model.graph.initializer if t.data_type in floats}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunec", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", default=str(ROOT / "examples/models/corpus"))
    ap.add_argument("--work")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    corpus = Path(a.corpus)
    manifest = json.loads((corpus / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == a.model)
    arch = entry["arch"]
    model_path = corpus / entry["file"]
    calib = corpus / entry["calibration"]
    work = Path(a.work or tempfile.mkdtemp(prefix="corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    rtol, atol = tolerance(entry)
    checks = []

    def check(name, ok, detail=""):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    # 1. groups
    p = run([a.prunec, "inspect", model_path, "--groups", "--json", "--no-check"])
    if p.returncode != 0:
        check("inspect", False, p.stderr.strip())
    else:
        groups = json.loads(p.stdout)["groups"]
        heads = [g for g in groups if g["kind"] == "heads" and g["prunable"]]
        neurons = [g for g in groups if g["kind"] == "neurons" and g["prunable"] and g["units"] == arch["intermediate"]]
        kv = arch.get("kv_heads", arch["heads"])
        # Grouped-query attention: units are kv groups; multi-query (one kv head): query heads.
        want_units = kv if 1 < kv < arch["heads"] else arch["heads"]
        expected_layers = arch["layers"] - arch.get("layers_without_heads", 0)
        check("heads", len(heads) == expected_layers and all(g["units"] == want_units and g.get("query_heads") == arch["heads"] for g in heads),
              f"{len(heads)} head groups of {[g['units'] for g in heads]} units covering {[g.get('query_heads') for g in heads]} "
              f"query heads; want {expected_layers} of {want_units} covering {arch['heads']}"
              + ("" if heads else "; blocked: " + "; ".join(sorted({g.get('blocked', '') for g in groups if g['kind'] == 'heads'}))[:400]))
        check("neurons", len(neurons) == arch["layers"], f"{len(neurons)} neuron groups of {arch['intermediate']}; want {arch['layers']}")

    data = dict(np.load(calib))
    ref_sess = session(model_path) if entry.get("ort_runs", True) else None
    names = [i.name for i in (ref_sess.get_inputs() if ref_sess else onnx.load(str(model_path)).graph.input)]

    # GroupQueryAttention leaves the rows of a padded prompt past each sequence's length undefined
    # (onnxruntime's kernel): only the positions the mask keeps are compared.
    padded_undefined = "GroupQueryAttention" in json.dumps(entry.get("contrib_ops", {}))

    def compare(x, y, f, rtol, atol):
        x, y = np.asarray(x), np.asarray(y)
        if padded_undefined and "attention_mask" in f and x.ndim >= 2 and x.shape[:2] == f["attention_mask"].shape:
            keep = f["attention_mask"].astype(bool)
            x, y = x[keep], y[keep]
        return close(x, y, rtol, atol)

    def prunec_outputs(model, f, tag):
        path = work / f"{tag}.inputs.npz"
        np.savez(path, **f)
        out = work / f"{tag}.out.npz"
        r = run([a.prunec, "run", model, "--inputs", path, "-o", out])
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip()[:400])
        d = np.load(out)
        return [d[k] for k in sorted(d.keys())]

    # 2. interpreter vs onnxruntime (a model onnxruntime cannot run, bf16 on CPU, against its fp32 source)
    source = next((p for p in (corpus / entry.get("source", "-"), corpus.parent / entry.get("source", "-")) if p.is_file()), None)
    oracle = ref_sess or (session(source) if source else None)
    if oracle is not None:
        for s in (0, 3):
            f = feeds_of(data, names, s)
            try:
                ours = prunec_outputs(model_path, f, f"run{s}")
            except RuntimeError as e:
                check(f"interpreter set {s}", False, str(e))
                continue
            outs = sorted(o.name for o in oracle.get_outputs())
            theirs = oracle.run(outs, f)
            oks = [compare(x, t, f, rtol, atol) for x, t in zip(ours, theirs)]
            check(f"interpreter set {s}" + ("" if ref_sess else f" (vs {entry['source']})"), all(ok for ok, _ in oks),
                  f"max abs {max(m for _, m in oks):.3g}")


    # 3. prune, fold, compare (and, for grouped-query attention, with query-head units)
    def prune_fold(spec, tag):
        masked, folded = work / f"{tag}masked.onnx", work / f"{tag}folded.onnx"
        r = run([a.prunec, model_path, "--pass", spec, "-o", masked, "--calib", calib, "--no-validate"])
        check(f"{tag}magnitude", r.returncode == 0, r.stderr.strip()[-400:])
        r2 = run([a.prunec, masked, "--pass", "fold-masks", "-o", folded, "--calib", calib, "--no-validate"]) if r.returncode == 0 else r
        check(f"{tag}fold-masks", r2.returncode == 0, r2.stderr.strip()[-400:])
        if r2.returncode == 0:
            m0, mf = onnx.load(str(model_path)), onnx.load(str(folded))
            def checker(m):
                try:
                    onnx.checker.check_model(m, full_check=True)
                    return None
                except Exception as e:  # noqa: BLE001
                    return str(e).splitlines()[0][:300]
            err, err0 = checker(mf), checker(m0)
            # onnxruntime's optimizer writes ops (SimplifiedLayerNormalization in the default domain)
            # that onnx does not define: the original fails the same way, and that is not ours.
            check(f"{tag}onnx.checker", err is None or err == err0, f"{err or 'passes'}" + (" (the original fails the same way)" if err and err == err0 else ""))
            p0 = sum(int(np.prod(t.dims)) for t in m0.graph.initializer)
            pf = sum(int(np.prod(t.dims)) for t in mf.graph.initializer)
            check(f"{tag}smaller", pf < p0 * 0.97, f"params {p0} -> {pf}")
            io0, t0 = types(m0)
            iof, tf = types(mf)
            check(f"{tag}element types", io0 == iof and tf <= t0, f"io {io0 == iof}, initializer types {sorted(t0)} -> {sorted(tf)}")
            # onnxruntime runs both models; where it cannot (bf16), the interpreter does.
            ort_runs = entry.get("ort_runs", True)
            if ort_runs:
                sm, sf = session(masked), session(folded)
                outs = sorted(o.name for o in sm.get_outputs())
            lengths = [None] + ([9] if entry.get("dynamic_dims") and any("sequence" in d.values() for d in entry["dynamic_dims"].values()) else [])
            for length in lengths:
                for s in (0, 5):
                    f = feeds_of(data, names, s)
                    if length:
                        f = {k: v[:, :length] for k, v in f.items()}
                    if ort_runs:
                        ym, yf = sm.run(outs, f), sf.run(outs, f)
                    else:
                        ym, yf = prunec_outputs(masked, f, tag + "masked"), prunec_outputs(folded, f, tag + "folded")
                    oks = [compare(x, y, f, rtol, atol if entry.get("dtype", "fp32") != "fp32" else 1e-5) for x, y in zip(yf, ym)]
                    check(f"{tag}folded = masked (set {s}, length {length or 'calib'}" + ("" if ort_runs else ", interpreter") + ")",
                          all(ok for ok, _ in oks), f"max abs {max(m for _, m in oks):.3g}")


    prune_fold("magnitude{sparsity=0.3}", "")
    kv = arch.get("kv_heads", arch["heads"])
    # A fused GQA op (standard Attention with kv_num_heads, GroupQueryAttention) needs the same
    # number of query heads per kv head: there, query heads go only as whole kv groups.
    fused_gqa = any(op in entry.get("ops", {}) for op in ("Attention", "com.microsoft::GroupQueryAttention"))
    if 1 < kv < arch["heads"] and not fused_gqa:
        # Query heads as units of their own: the pass asks for them with kinds=query-heads.
        r = run([a.prunec, model_path, "--pass", "magnitude{sparsity=0.5,kinds=query-heads}", "-o", work / "q.onnx", "--calib", calib,
                 "--no-validate"])
        removed = [ln for ln in r.stderr.splitlines() + r.stdout.splitlines() if "query-heads-removed" in ln]
        check("query heads", r.returncode == 0 and bool(removed) and f"groups {arch['layers']}" in removed[-1],
              (removed[-1].strip() if removed else r.stderr.strip()[-300:]))
        prune_fold("magnitude{sparsity=0.5,kinds=query-heads}", "query-heads: ")

    ok = all(c["ok"] for c in checks)
    if a.json:
        print(json.dumps({"model": a.model, "ok": ok, "checks": checks}))
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
        print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
