#!/usr/bin/env python3
"""End-to-end check of one denoiser of examples/models/diffusion (the diffusion corpus).

usage:
  diffusion_check.py --prunec PRUNEC --model FILE [--corpus DIR] [--work DIR] [--json]

FILE is a manifest entry's `file` (e.g. unet2d/unet/model.onnx). For it:
  1. the interpreter (`prunec run`) matches onnxruntime on every calibration set (1e-4 relative,
     1e-5 absolute);
  2. `prunec inspect --groups --json`: a UNet (an entry whose arch has `norm_groups`) has prunable
     channel groups (conv channels through GroupNorm); a transformer (arch `heads`) has prunable
     head and neuron groups;
  3. `magnitude{sparsity=0.3,kinds=channels}` (UNets) or `magnitude{sparsity=0.3}` (transformers),
     then `fold-masks`: the folded model passes onnx.checker (full) and runs in onnxruntime equal to
     the masked model within 1e-5 (absolute, plus 1e-5 relative for outputs far from 1) on two
     calibration sets; a UNet loses at least 25% of its parameters, a transformer some.
Prints one line per check and OK/FAIL (exit 1); --json prints one object instead.
"""
import argparse
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


# The onnxruntime session, subprocess and calibration-set helpers of the transformer corpus check.
from corpus_check import feeds_of, run, session  # noqa: E402


def close(a, b, rtol, atol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, float("inf")
    return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b))), float(np.max(np.abs(a - b))) if a.size else 0.0


def params(model):
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prunec", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", default=str(ROOT / "examples/models/diffusion"))
    ap.add_argument("--work")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    corpus = Path(a.corpus)
    manifest = json.loads((corpus / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == a.model)
    arch = entry["arch"]
    unet = "norm_groups" in arch
    model_path = corpus / entry["file"]
    calib = corpus / entry["calibration"]
    work = Path(a.work or tempfile.mkdtemp(prefix="diffusion-"))
    work.mkdir(parents=True, exist_ok=True)
    checks = []

    def check(name, ok, detail=""):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    data = dict(np.load(calib))
    n_sets = 1 + max([int(k.split(".")[0][3:]) for k in data if k.startswith("set")] or [0])
    ref = session(model_path)
    names = [i.name for i in ref.get_inputs()]
    outs = [o.name for o in ref.get_outputs()]

    # 1. interpreter vs onnxruntime, every calibration set
    worst, failed, errors = 0.0, [], []
    for s in range(n_sets):
        f = feeds_of(data, names, s)
        inp, out = work / f"run{s}.inputs.npz", work / f"run{s}.out.npz"
        np.savez(inp, **f)
        r = run([a.prunec, "run", model_path, "--inputs", inp, "-o", out])
        if r.returncode != 0:
            errors.append(f"set {s}: {r.stderr.strip()[:300]}")
            continue
        d = np.load(out)
        theirs = ref.run(outs, f)
        for name, t in zip(outs, theirs):
            ok, m = close(d[f"out.{name}"], t, 1e-4, 1e-5)
            worst = max(worst, m)
            if not ok:
                failed.append(s)
    check(f"interpreter = onnxruntime ({n_sets} sets)", not failed and not errors,
          "; ".join(errors) or f"max abs {worst:.3g}" + (f"; sets over tolerance {sorted(set(failed))}" if failed else ""))

    # 2. groups
    p = run([a.prunec, "inspect", model_path, "--groups", "--json", "--no-check"])
    groups = []
    if p.returncode != 0:
        check("inspect", False, p.stderr.strip()[-400:])
    else:
        groups = json.loads(p.stdout)["groups"]

    def found(kind):
        return [g for g in groups if g["kind"] == kind and g["prunable"]]

    def blocked(kind):
        return "; ".join(sorted({g.get("blocked", "") for g in groups if g["kind"] == kind and not g["prunable"]}))[:400]

    summary = {k: len(found(k)) for k in ("channels", "heads", "neurons")}
    if unet:
        ch = found("channels")
        check("channel groups", len(ch) >= 8, f"{len(ch)} prunable channel groups ({sum(g['units'] for g in ch)} units)"
              + (f"; blocked: {blocked('channels')}" if blocked("channels") else ""))
    else:
        check("head groups", len(found("heads")) >= 1, f"{len(found('heads'))} prunable head groups"
              + (f"; blocked: {blocked('heads')}" if blocked("heads") else ""))
        check("neuron groups", len(found("neurons")) >= 1, f"{len(found('neurons'))} prunable neuron groups")

    # 3. magnitude, fold-masks, compare
    spec = "magnitude{sparsity=0.3,kinds=channels}" if unet else "magnitude{sparsity=0.3}"
    masked, folded = work / "masked.onnx", work / "folded.onnx"
    r = run([a.prunec, model_path, "--pass", spec, "-o", masked, "--calib", calib, "--no-validate"])
    check(spec, r.returncode == 0, r.stderr.strip()[-400:])
    r2 = run([a.prunec, masked, "--pass", "fold-masks", "-o", folded, "--calib", calib, "--no-validate"]) if r.returncode == 0 else r
    check("fold-masks", r2.returncode == 0, r2.stderr.strip()[-400:])
    p0 = params(onnx.load(str(model_path)))
    pf = None
    if r2.returncode == 0:
        mf = onnx.load(str(folded))
        try:
            onnx.checker.check_model(mf, full_check=True)
            check("onnx.checker (folded)", True, "passes")
        except Exception as e:  # noqa: BLE001
            check("onnx.checker (folded)", False, str(e).splitlines()[0][:300])
        pf = params(mf)
        want = 0.75 if unet else 0.97
        check("smaller", pf <= p0 * want, f"params {p0} -> {pf} ({100 * (p0 - pf) / p0:.1f}% fewer; want >= {100 * (1 - want):.0f}%)")
        try:
            sm, sf = session(masked), session(folded)
        except Exception as e:  # noqa: BLE001
            check("onnxruntime loads", False, str(e).splitlines()[0][:300])
        else:
            for s in (0, 5):
                f = feeds_of(data, names, s)
                ym, yf = sm.run(outs, f), sf.run(outs, f)
                oks = [close(x, y, 1e-5, 1e-5) for x, y in zip(yf, ym)]
                check(f"folded = masked (set {s})", all(ok for ok, _ in oks), f"max abs {max(m for _, m in oks):.3g}")

    ok = all(c["ok"] for c in checks)
    if a.json:
        print(json.dumps({"model": a.model, "ok": ok, "checks": checks, "groups": summary,
                          "params": [p0, pf]}, sort_keys=True))
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
        print(f"groups {summary}; params {p0} -> {pf}")
        print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
