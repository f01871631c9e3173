#!/usr/bin/env python3
"""The scale benchmark (`make bench-scale`): prunec's pipelines on models of 1B-parameter size.

For each model made by scripts/scale/make_models.py (random weights, float16, external data) it
runs prunec pipelines and prints, per run: wall seconds, peak resident memory of the prunec
process (from wait4, so the figure is prunec's own), the weights on disk and the margin between
the two (the rule: peak ≤ weights + 2 GB), and each pass's cost in full-forward-pass equivalents
where the pass reports it (`reconstruct`'s and `depth`'s `forward-passes`; `fluctuation` is one pass by
construction). The written model is checked with onnx.checker and run by onnxruntime on one
calibration row next to the original.

  --family  also makes decoders of 8, 16 and 32 layers at one smaller width (--family-hidden) and
            prints reconstruct's forward-pass equivalents for each: the cost must not grow with
            depth.

Usage: .venv-quality/bin/python scripts/scale/bench_scale.py --prunec .build/release/prunec
       [--models llama1b,sd15unet] [--only NAME] [--family] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# prunec's own validation runs the original and the result side by side, so it holds both models'
# weights; the memory rule is about the pipeline. The result is checked by onnxruntime instead.
VALIDATE = False
GB = 1024 ** 3

PIPELINES = {
    "decoder": {
        "fluctuation + reconstruct": ["fluctuation{params=0.2}", "reconstruct", "fold-masks"],
        "depth (ppl), 2 blocks": ["depth{blocks=2,criterion=ppl}", "fold-masks"],
        "ecodiff, 2 steps": ["ecodiff{steps=2,objective=output,select=learned,holdout=0}", "fold-masks"],
    },
    "unet": {
        "fluctuation + reconstruct": ["fluctuation{params=0.2}", "reconstruct", "fold-masks"],
        # Not a language model: blocks are scored by the drift of the denoiser's output.
        "depth (drift), 2 blocks": ["depth{blocks=2}", "fold-masks"],
        "ecodiff, 2 steps": ["ecodiff{steps=2,objective=output,select=learned,holdout=0}", "fold-masks"],
    },
}


def weights_on_disk(model: Path) -> int:
    data = model.with_name(model.name + ".data")
    return model.stat().st_size + (data.stat().st_size if data.exists() else 0)


def run_prunec(prunec: str, model: Path, calib: Path, passes: list[str], out: Path, threads: int) -> dict:
    report = out.with_suffix(".report.json")
    cmd = [prunec, str(model), "--calib", str(calib), "-o", str(out), "--report", str(report), "--runs", "1",
           "--threads", str(threads)] + ([] if VALIDATE else ["--no-validate"])
    for p in passes:
        cmd += ["--pass", p]
    print("  $ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "ETA" in line or "prunec:" in line:
            print("    " + line.rstrip(), flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print("".join(lines[-30:]))
        raise SystemExit(f"prunec exited {code} on {model.name}")
    r = json.loads(report.read_text())
    return {"seconds": wall, "peak_rss": usage.ru_maxrss * 1024, "report": r}


def forward_passes(report: dict) -> dict[str, float]:
    out = {}
    for p in report.get("passes", []):
        st = p.get("statistics", {})
        if "forward-passes" in st:
            out[p["pass"]] = st["forward-passes"]
        elif p["pass"].startswith("fluctuation"):
            out[p["pass"]] = 1.0
    return out


def check_written(model: Path, out: Path, calib: Path) -> float:
    """onnx.checker on the written model, then onnxruntime on one calibration row of both models;
    returns the relative L2 distance of their first outputs."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(out), full_check=True)
    data = np.load(calib)
    feeds = {}
    for k in data.files:
        name = k.split(".", 1)[1] if k.startswith("set") and "." in k else k
        if name in feeds:
            continue
        v = data[k]
        feeds[name] = v[:1] if k == name else v
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    a = ort.InferenceSession(str(model), opts).run(None, feeds)[0].astype(np.float64)
    b = ort.InferenceSession(str(out), opts).run(None, feeds)[0].astype(np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def bench(a, name: str, kind: str, results: list) -> None:
    model, calib = a.data / f"{name}.onnx", a.data / f"{name}.calib.npz"
    if not model.exists():
        gen = [sys.executable, str(HERE / "make_models.py"), kind, "--out", str(a.data), "--name", name]
        print("making " + " ".join(gen), flush=True)
        subprocess.run(gen, check=True)
    w = weights_on_disk(model)
    print(f"{name}: {w / GB:.2f} GB of weights on disk", flush=True)
    for title, passes in PIPELINES[kind].items():
        if a.only and a.only not in title:
            continue
        out = a.work / f"{name}.{''.join(c if c.isalnum() else '_' for c in title)}.onnx"
        r = run_prunec(a.prunec, model, calib, passes, out, a.threads)
        fp = forward_passes(r["report"])
        drift = check_written(model, out, calib) if a.check else float("nan")
        row = {"model": name, "pipeline": title, "passes": passes, "seconds": r["seconds"], "peak_rss_gb": r["peak_rss"] / GB,
               "weights_gb": w / GB, "margin_gb": (r["peak_rss"] - w) / GB, "forward_passes": fp,
               "params_before": r["report"]["before"]["params"], "params_after": r["report"]["after"]["params"],
               "ort_drift": drift}
        results.append(row)
        print(f"  {title:28s} {row['seconds']:7.0f} s  peak RSS {row['peak_rss_gb']:.2f} GB "
              f"(weights {row['weights_gb']:.2f} GB, margin {row['margin_gb']:+.2f} GB)  "
              f"forward passes {fp}  params {row['params_before']:,} → {row['params_after']:,}  "
              f"onnxruntime drift {drift:.3g}", flush=True)


def family(a, results: list) -> None:
    """reconstruct's forward-pass equivalents at 8, 16 and 32 layers of one width."""
    for layers in (8, 16, 32):
        name = f"dec{layers}x{a.family_hidden}"
        model, calib = a.data / f"{name}.onnx", a.data / f"{name}.calib.npz"
        if not model.exists():
            subprocess.run([sys.executable, str(HERE / "make_models.py"), "decoder", "--out", str(a.data), "--name", name,
                            "--layers", str(layers), "--hidden", str(a.family_hidden), "--heads", str(a.family_hidden // 64),
                            "--kv-heads", str(max(1, a.family_hidden // 256)), "--vocab", "32000"], check=True)
        out = a.work / f"{name}.small.onnx"
        r = run_prunec(a.prunec, model, calib, ["fluctuation{params=0.2}", "reconstruct", "fold-masks"], out, a.threads)
        rec = next(p for p in r["report"]["passes"] if p["pass"] == "reconstruct")
        st = rec["statistics"]
        row = {"model": name, "layers": layers, "pipeline": "fluctuation + reconstruct", "seconds": r["seconds"],
               "reconstruct_seconds": rec["seconds"], "forward_passes": st.get("forward-passes"),
               "layers_refit": st.get("layers-refit"), "peak_rss_gb": r["peak_rss"] / GB}
        results.append(row)
        print(f"  {layers:2d} layers: reconstruct re-fits {row['layers_refit']:.0f} layers in {rec['seconds']:.1f} s, "
              f"{row['forward_passes']:.2f} forward-pass equivalents", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunec", default=".build/release/prunec")
    ap.add_argument("--data", type=Path, default=Path(".cache/scale"))
    ap.add_argument("--work", type=Path, default=Path(".cache/scale/out"))
    ap.add_argument("--models", default="llama1b,sd15unet", help="comma-separated: llama1b (decoder), sd15unet (unet)")
    ap.add_argument("--only", default="", help="run the pipelines whose title contains this")
    ap.add_argument("--family", action="store_true", help="also the 8/16/32-layer reconstruct cost check")
    ap.add_argument("--family-hidden", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip onnx.checker and onnxruntime")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--validate", action="store_true", help="keep prunec's own validation (holds both models)")
    a = ap.parse_args()
    global VALIDATE
    VALIDATE = a.validate
    a.data.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    results: list = []
    for name in [m for m in a.models.split(",") if m]:
        bench(a, name, "unet" if "unet" in name else "decoder", results)
    if a.family:
        family(a, results)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
