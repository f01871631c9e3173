#!/usr/bin/env python3
"""Quality benchmark: prunec's passes on real pretrained models, judged on held-out text.

Run `make quality` (it builds prunec, makes .venv-quality, exports the models with
scripts/quality/export_models.py, then runs this). Every pruned model is written by prunec, then
loaded and run by onnxruntime, which computes every figure here:

  minilm   mean cosine of the pruned model's sentence embeddings (mean pooling + L2 normalize, as
           sentence-transformers does) to the original's on held-out sentences; paraphrase retrieval
           top-1 accuracy on 40 hand-written pairs; ORT latency of a batch.
  smollm2  perplexity on held-out text chunks; ORT latency.

Amounts for the encoder are fractions of its prunable encoder parameters (attention heads + FFN
neurons), converted to prunec's `params=` (a fraction of all parameters) with the group analysis
from `prunec inspect --groups --json`.
Writes a JSON result and, with --markdown, the tables for docs/QUALITY.md.
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
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import run_timed, write_json  # noqa: E402


def session(path: Path, threads: int) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def latency(sess, feeds, runs: int) -> float:
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


def embed(sess, ids, mask, batch=64) -> np.ndarray:
    out = []
    for i in range(0, len(ids), batch):
        h = sess.run(None, {"input_ids": ids[i:i + batch], "attention_mask": mask[i:i + batch]})[0]
        m = mask[i:i + batch][..., None].astype(np.float64)
        e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        out.append(e / np.linalg.norm(e, axis=1, keepdims=True))
    return np.concatenate(out)


def retrieval(sess, d, held_emb) -> float:
    """Top-1 accuracy of finding each first sentence's paraphrase among the 40 second sentences and
    the held-out sentences (distractors)."""
    a = embed(sess, d["para_a.input_ids"], d["para_a.attention_mask"])
    b = np.concatenate([embed(sess, d["para_b.input_ids"], d["para_b.attention_mask"]), held_emb])
    return float((np.argmax(a @ b.T, axis=1) == np.arange(len(a))).mean())


def perplexity(sess, ids, batch=4) -> float:
    nll, count = 0.0, 0
    for i in range(0, len(ids), batch):
        x = ids[i:i + batch]
        logits = sess.run(None, {"input_ids": x})[0].astype(np.float64)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        tgt = x[:, 1:]
        nll -= np.take_along_axis(logp[:, :-1], tgt[..., None], -1).sum()
        count += tgt.size
    return float(np.exp(nll / count))


def prunable_fraction(prunec: str, model: Path, kinds: set[str]) -> tuple[float, int, int]:
    """(prunable params / all params, prunable, all) for the groups of `kinds`."""
    p = subprocess.run([prunec, "inspect", str(model), "--groups", "--json", "--no-check"], capture_output=True, text=True,
                       check=True)
    info = json.loads(p.stdout)
    groups = [g for g in info["groups"] if g["kind"] in kinds and g.get("prunable", True)]
    prunable = sum(g["params"] for g in groups)
    return prunable / info["params"], prunable, info["params"]


def selected(pipes: dict[str, list[str]], only: str) -> dict[str, list[str]]:
    """The pipelines whose name contains one of the comma-separated substrings of `only` (all when empty)."""
    keys = [o for o in only.split(",") if o]
    return {n: p for n, p in pipes.items() if not keys or any(k in n for k in keys)}


def out_path(work: Path, prefix: str, name: str) -> Path:
    """A file name for a pipeline's result."""
    return work / f"{prefix}.{''.join(c if c.isalnum() or c in '.-' else '_' for c in name)}.onnx"


def run_pipeline(prunec, model, passes, out, calib, extra=()):
    """Runs prunec; its log goes next to the output (`.log`), its report too (`.report.json`)."""
    cmd = [prunec, str(model)]
    for p in passes:
        cmd += ["--pass", p]
    cmd += ["-o", str(out), "--calib", str(calib), "--no-validate", "--report", str(out.with_suffix(".report.json")), *extra]
    p, secs = run_timed(cmd)
    out.with_suffix(".log").write_text(p.stderr)
    return secs


def blocks_removed(out: Path) -> int:
    """Residual blocks the `depth` passes of a run removed, from its report."""
    try:
        report = json.loads(out.with_suffix(".report.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(sum(p.get("statistics", {}).get("blocks-removed", 0) for p in report.get("passes", [])
                   if str(p.get("pass", "")).startswith("depth")))


def params_of(path: Path) -> int:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(t.dims)) for t in m.graph.initializer))


def encoder_pipelines(frac: float, amount: float) -> dict[str, list[str]]:
    """Named pipelines removing `amount` of the heads+neurons parameters (`frac` of all parameters;
    ecodiff's sparsity is already a share of the prunable parameters; autobot's target is MACs, and
    the heads and FFN neurons carry nearly all of the encoder's, so `amount` of them is close)."""
    t = f"params={frac:.5f},kinds=heads+neurons"
    eco = f"ecodiff{{sparsity={amount:.5f},objective=output,holdout=0}}"
    bot = f"autobot{{flops={amount:.5f},kinds=heads+neurons}}"
    return {
        "magnitude (global L2)": [f"magnitude{{{t},norm=l2}}"],
        "magnitude + reconstruct": [f"magnitude{{{t},norm=l2}}", "reconstruct"],
        "fluctuation": [f"fluctuation{{{t}}}"],
        "fluctuation + reconstruct{mode=bias}": [f"fluctuation{{{t}}}", "reconstruct{mode=bias}"],
        "fluctuation + reconstruct": [f"fluctuation{{{t}}}", "reconstruct"],
        "fluctuation{metric=energy} + reconstruct": [f"fluctuation{{{t},metric=energy}}", "reconstruct"],
        "ld-pruner": [f"ld-pruner{{{t}}}"],
        "ld-pruner + reconstruct": [f"ld-pruner{{{t}}}", "reconstruct"],
        "ecodiff (output)": [eco],
        "ecodiff (output) + reconstruct": [eco, "reconstruct"],
        "autobot (output)": [bot],
        "autobot (output) + reconstruct": [bot, "reconstruct"],
    }


def run_encoder(a, res):
    d = a.data
    model, calib = d / "minilm.onnx", d / "minilm.calib.npz"
    held = dict(np.load(d / "minilm.heldout.npz"))
    ref = session(model, a.threads)
    e0 = embed(ref, held["input_ids"], held["attention_mask"])
    lat_feeds = {"input_ids": held["input_ids"][:32], "attention_mask": held["attention_mask"][:32]}
    share, prunable, total = prunable_fraction(a.prunec, model, {"heads", "neurons"})
    rows = [{"amount": 0, "pipeline": "original", "file": str(model), "params": total, "cosine": 1.0, "retrieval": retrieval(ref, held, e0),
             "ort_ms": latency(ref, lat_feeds, a.runs), "seconds": 0}]
    print(f"minilm: {total:,} params, {prunable:,} in heads+neurons groups ({share:.1%}); retrieval "
          f"{rows[0]['retrieval']:.3f}", flush=True)
    for amount in a.amounts:
        pipes = encoder_pipelines(amount * share, amount)
        if a.pipeline:
            # --pipeline 'NAME=PASS;PASS' with {P} for params= and {S} for ecodiff's sparsity.
            pipes = {n: [p.replace("{P}", f"{amount * share:.5f}").replace("{S}", f"{amount:.5f}") for p in ps.split(";")]
                     for n, ps in (x.split("=", 1) for x in a.pipeline)}
        for name, passes in selected(pipes, a.only).items():
            out = out_path(a.work, f"minilm.{amount:.2f}", name)
            secs = run_pipeline(a.prunec, model, passes + ["fold-masks"], out, calib)
            s = session(out, a.threads)
            e = embed(s, held["input_ids"], held["attention_mask"])
            row = {"amount": amount, "pipeline": name, "passes": passes, "file": str(out), "params": params_of(out),
                   "cosine": float((e * e0).sum(1).mean()), "cosine_min": float((e * e0).sum(1).min()),
                   "retrieval": retrieval(s, held, e), "ort_ms": latency(s, lat_feeds, a.runs), "seconds": secs}
            rows.append(row)
            print(f"  {amount:.0%} {name:34s} params {row['params']:>10,}  cosine {row['cosine']:.4f} "
                  f"(min {row['cosine_min']:.3f})  retrieval {row['retrieval']:.3f}  ORT {row['ort_ms']:.1f} ms  "
                  f"prunec {secs:.0f} s", flush=True)
    res["minilm"] = {"params": total, "prunable": prunable, "rows": rows}


def run_lm(a, res):
    d = a.data
    model, calib = d / "smollm2.onnx", d / "smollm2.calib.npz"
    held = np.load(d / "smollm2.heldout.npz")["input_ids"]
    ref = session(model, a.threads)
    ppl0 = perplexity(ref, held)
    feeds = {"input_ids": held[:1]}
    rows = [{"pipeline": "original", "file": str(model), "blocks": 0, "params": params_of(model), "ppl": ppl0,
             "ort_ms": latency(ref, feeds, a.runs), "seconds": 0}]
    print(f"smollm2: perplexity {ppl0:.2f} on {held.size:,} held-out tokens", flush=True)
    k = a.lm_blocks
    # A share of the query heads, removed as whole kv groups (SmolLM2: 9 query heads read 3 kv
    # heads per layer), against FFN neurons alone at the same parameter count.
    share, heads_params, total = prunable_fraction(a.prunec, model, {"heads"})
    frac = a.lm_heads * share
    # The learned passes on a GQA decoder: heads are whole kv groups (a kv head and the query heads
    # that read it) and FFN neurons, a share of both together, against fluctuation at the same share.
    hn_share, _, _ = prunable_fraction(a.prunec, model, {"heads", "neurons"})
    lp = a.lm_learned
    learned = f"{lp:.0%} of heads (kv groups) + FFN neurons"
    pipes = {
        "depth (ppl, one-shot)": [f"depth{{blocks={k},criterion=ppl,holdout=0}}"],
        "depth (ppl, one-shot) + reconstruct": [f"depth{{blocks={k},criterion=ppl,holdout=0,keep-masks=true}}",
                                                "reconstruct"],
        # Shortened LLaMA: whole layers (attention + MLP), each scored alone; 3 of SmolLM2's 30 are
        # 6.5% of its parameters. Against it, joint choices at the same parameter fraction.
        f"depth (ppl, one-shot), {a.lm_layers} whole layers": [
            f"depth{{unit=layer,blocks={a.lm_layers},criterion=ppl,holdout=0}}"],
        f"depth (ppl, one-shot), {a.lm_layers} whole layers + reconstruct": [
            f"depth{{unit=layer,blocks={a.lm_layers},criterion=ppl,holdout=0,keep-masks=true}}", "reconstruct"],
        f"depth (ppl, greedy), {a.lm_layers} whole layers": [
            f"depth{{unit=layer,search=greedy,blocks={a.lm_layers},criterion=ppl,holdout=0}}"],
        f"depth (ppl, one-shot), sub-blocks, params={a.lm_params}": [
            f"depth{{params={a.lm_params},criterion=ppl,holdout=0}}"],
        f"depth (ppl, greedy), sub-blocks, params={a.lm_params}": [
            f"depth{{search=greedy,shortlist=5,params={a.lm_params},criterion=ppl,holdout=0}}"],
        f"depth (ppl, greedy), sub-blocks, params={a.lm_params} + reconstruct": [
            f"depth{{search=greedy,shortlist=5,params={a.lm_params},criterion=ppl,holdout=0,keep-masks=true}}", "reconstruct"],
        f"fluctuation + reconstruct, {a.lm_heads:.0%} of query heads (kv groups)": [
            f"fluctuation{{params={frac:.5f},kinds=heads}}", "reconstruct"],
        "fluctuation + reconstruct, query heads one by one (single), same params": [
            f"fluctuation{{params={frac:.5f},kinds=query-heads}}", "reconstruct"],
        f"fluctuation + reconstruct, FFN neurons, same params": [f"fluctuation{{params={frac:.5f},kinds=neurons}}", "reconstruct"],
        f"fluctuation + reconstruct, {learned}": [f"fluctuation{{params={lp * hn_share:.5f},kinds=heads+neurons}}", "reconstruct"],
        f"ecodiff (output) + reconstruct, {learned}": [f"ecodiff{{sparsity={lp:.5f},objective=output,holdout=0}}", "reconstruct"],
        f"autobot (output) + reconstruct, {learned}": [f"autobot{{flops={lp:.5f},kinds=heads+neurons}}", "reconstruct"],
    }
    for name, passes in selected(pipes, a.only).items():
        out = out_path(a.work, "smollm2", name)
        secs = run_pipeline(a.prunec, model, passes + ["fold-masks"], out, calib, ["--verbose"] if name.startswith("depth") else [])
        s = session(out, a.threads)
        row = {"pipeline": name, "passes": passes, "file": str(out), "blocks": blocks_removed(out), "params": params_of(out), "ppl": perplexity(s, held),
               "ort_ms": latency(s, feeds, a.runs), "seconds": secs}
        rows.append(row)
        print(f"  {name:40s} params {row['params']:>11,}  ppl {row['ppl']:.2f} ({row['ppl'] / ppl0:.3f}x)  "
              f"ORT {row['ort_ms']:.1f} ms  prunec {secs:.0f} s", flush=True)
    res["smollm2"] = {"ppl": ppl0, "rows": rows}


def retime(a, res) -> None:
    """Re-measures every model's onnxruntime latency in rounds that visit all models of a table in
    turn, and keeps each one's median over the rounds: on a shared machine, load that comes and goes
    then hits every model alike, so the ratios to the original hold."""
    for key, feeds in (("minilm", None), ("smollm2", None)):
        if key not in res:
            continue
        if key == "minilm":
            held = dict(np.load(a.data / "minilm.heldout.npz"))
            feeds = {"input_ids": held["input_ids"][:32], "attention_mask": held["attention_mask"][:32]}
        else:
            feeds = {"input_ids": np.load(a.data / "smollm2.heldout.npz")["input_ids"][:1]}
        rows = [r for r in res[key]["rows"] if Path(r.get("file", "")).exists()]
        sessions = [session(Path(r["file"]), a.threads) for r in rows]
        times = [[] for _ in rows]
        for _ in range(a.rounds):
            for i, s in enumerate(sessions):
                times[i].append(latency(s, feeds, 3))
        for r, t in zip(rows, times):
            r["ort_ms"] = float(np.median(t))
        print(f"{key}: latency of {len(rows)} models re-measured in {a.rounds} interleaved rounds", flush=True)


def markdown(res) -> str:
    """The result tables of docs/QUALITY.md."""
    out = []
    if "minilm" in res:
        m = res["minilm"]
        base = m["rows"][0]
        out += ["### all-MiniLM-L6-v2 (sentence encoder)", "",
                f"{m['params']:,} parameters, {m['prunable']:,} of them in attention heads and FFN neurons (the prunable encoder "
                "parameters the amounts refer to). Cosine: mean (and minimum) cosine of the pruned model's sentence embedding to "
                f"the original's over {256} held-out sentences. Retrieval: top-1 paraphrase retrieval over 40 hand-written pairs "
                "with the held-out sentences as distractors. ORT: onnxruntime, 1 thread, batch of 32 × 48 tokens, median.", "",
                "| removed | pipeline | params | cosine (min) | retrieval | ORT ms | speed-up | prunec s |",
                "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in m["rows"]:
            cos = "1" if r["amount"] == 0 else f"{r['cosine']:.4f} ({r['cosine_min']:.3f})"
            out.append(f"| {r['amount']:.0%} | {r['pipeline']} | {r['params']:,} | {cos} | {r['retrieval']:.3f} | "
                       f"{r['ort_ms']:.1f} | {base['ort_ms'] / r['ort_ms']:.2f}x | {r['seconds']:.0f} |")
        out.append("")
    if "smollm2" in res:
        m = res["smollm2"]
        base = m["rows"][0]
        out += ["### SmolLM2-135M-Instruct (causal LM)", "",
                "Perplexity on held-out text chunks (128 tokens each). ORT: onnxruntime, 1 thread, one chunk, median.", "",
                "| pipeline | residual blocks removed | params | perplexity | × original | ORT ms | speed-up | prunec s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in m["rows"]:
            out.append(f"| {r['pipeline']} | {r['blocks']} | {r['params']:,} | {r['ppl']:.2f} | {r['ppl'] / m['ppl']:.3f} | "
                       f"{r['ort_ms']:.1f} | {base['ort_ms'] / r['ort_ms']:.2f}x | {r['seconds']:.0f} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunec", default=".build/release/prunec")
    ap.add_argument("--data", type=Path, default=Path(".cache/quality"))
    ap.add_argument("--work", type=Path, default=Path(".cache/quality/out"))
    ap.add_argument("--models", default="minilm,smollm2")
    ap.add_argument("--amounts", type=lambda s: [float(x) for x in s.split(",")], default=[0.2, 0.4])
    ap.add_argument("--pipeline", action="append", default=[],
                    help="NAME=PASS;PASS... instead of the standard encoder pipelines ({P}: params fraction, {S}: prunable fraction)")
    ap.add_argument("--only", default="", help="comma-separated substrings of pipeline names to run (names hold commas: pick a substring without one)")
    ap.add_argument("--lm-blocks", type=int, default=6, help="residual blocks to remove from the LM (10%% of 60)")
    ap.add_argument("--lm-layers", type=int, default=3, help="whole layers for the Shortened-LLaMA baseline (6.5%% of SmolLM2)")
    ap.add_argument("--lm-params", default="0.065", help="parameter fraction of the joint depth rows (that of --lm-layers layers)")
    ap.add_argument("--lm-learned", type=float, default=0.1,
                    help="share of the LM's prunable head+FFN parameters the learned-pass rows remove")
    ap.add_argument("--lm-heads", type=float, default=0.25, help="share of the LM's query heads to remove (as kv groups)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", default=".cache/quality/quality.json")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds at the end (0 = keep the first timings)")
    ap.add_argument("--retime-only", action="store_true", help="re-measure the latencies of the models in --json and rewrite it")
    ap.add_argument("--markdown", help="also write the result tables (markdown) here")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.retime_only:
        res = json.loads(Path(a.json).read_text())
    else:
        res = {}
        if "minilm" in a.models:
            run_encoder(a, res)
        if "smollm2" in a.models:
            run_lm(a, res)
    if a.rounds > 0:
        retime(a, res)
    write_json(a.json, res)
    if a.markdown:
        Path(a.markdown).write_text(markdown(res))
        print(f"tables: {a.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
