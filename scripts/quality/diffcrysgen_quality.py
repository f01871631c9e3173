#!/usr/bin/env python3
"""Quality benchmark on a real EDM denoiser: prunec's passes on diffcrysgen's trained 1-D UNet.

Run `make quality-edm` (it builds prunec, makes .venv-quality, exports the model with
scripts/quality/export_diffcrysgen.py, checks scripts/quality/edm_reference.py against the
package's own sampler, then runs this). Each pipeline is run by prunec (then fold-masks), the
written model is loaded by onnxruntime, and the reference EDM sampler (Euler, the package's
Karras schedule and step count) draws final samples from it for held-out seeds:

  drift   relative L2 between the pruned and the original model's final samples (same seeds,
          same batch; diffcrysgen's UNet attends across the batch axis, so the batch is fixed)
  params  initializer values of the written model (prunec's own count adds a few constants)
  prunec  wall seconds of the prunec run

Amounts are fractions of the prunable parameters (the groups `prunec inspect --groups` finds of
--kinds), turned into prunec's `params=` (a fraction of all parameters); ecodiff's `sparsity` is
already such a fraction.

Calibration (for the passes that need data): the original model's Euler trajectories from
calibration seeds disjoint from the held-out ones, one set per recorded step: `sample` = x_i
([batch, 3, 136], x_0 = sigma_max·noise) and `sigma` = sigma_i ([batch]), the first set at
sigma_max, in prunec's layout (the primary set under the input names, then set1.<name>, ...).

Pipelines: --pipeline 'NAME=PASS;PASS' (repeatable) replaces the standard ones. Placeholders:
{P} params fraction, {S} prunable fraction, {kinds}, {edm_steps} (--edm-steps), and the sampler's {sigma_min} {sigma_max}
{sigma_data} {rho} {steps}. fold-masks is appended when a pipeline does not end with it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import run_timed, write_json  # noqa: E402
from edm_reference import Denoiser, karras_sigmas, parse_seeds, relative_l2, sample, seed_noise  # noqa: E402

STANDARD = {
    "magnitude": "magnitude{params={P},kinds={kinds}}",
    "fluctuation": "fluctuation{params={P},kinds={kinds}}",
    "fluctuation + reconstruct": "fluctuation{params={P},kinds={kinds}};reconstruct",
    "ecodiff (output)": "ecodiff{sparsity={S},kinds={kinds},objective=output}",
    # whole sampling runs with the package's Karras schedule (Euler, {edm_steps} steps)
    "ecodiff (edm)": "ecodiff{sparsity={S},kinds={kinds},schedule=edm,precondition=inside,sigma-min={sigma_min},"
                     "sigma-max={sigma_max},sigma-data={sigma_data},rho={rho},denoise-steps={edm_steps}}",
}


def groups(prunec: str, model: Path, kinds: set[str]) -> dict:
    """Prunable groups of `kinds` from `prunec inspect --groups --json`, and their parameter share."""
    p = subprocess.run([prunec, "inspect", str(model), "--groups", "--json", "--no-check"], capture_output=True,
                       text=True, check=True)
    info = json.loads(p.stdout)
    chosen = [g for g in info["groups"] if g["kind"] in kinds and g.get("prunable", True)]
    blocked = [g for g in info["groups"] if g["kind"] in kinds and not g.get("prunable", True)]
    prunable = sum(g["params"] for g in chosen)
    return {"params": info["params"], "prunable": prunable, "share": prunable / info["params"],
            "groups": [{k: g.get(k) for k in ("kind", "name", "units", "params")} for g in chosen],
            "blocked": len(blocked)}


def params_of(path: Path) -> int:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    return int(sum(int(np.prod(t.dims)) for t in m.graph.initializer))


def calibration(den: Denoiser, seeds: list[int], params: dict, sets: int, path: Path) -> list[float]:
    """Writes the calibration npz (trajectory states at `sets` steps spread over the schedule)."""
    sig = karras_sigmas(params["steps"], params["sigma_min"], params["sigma_max"], params["rho"])
    record = sorted({int(round(i)) for i in np.linspace(0, params["steps"] - 1, sets)})
    _, kept = sample(den, seed_noise(seeds, params["shape"]), sig, record=record)
    out = {}
    for k, (_, x, s) in enumerate(kept):
        prefix = "" if k == 0 else f"set{k}."
        out[prefix + "sample"] = x.astype(np.float32)
        out[prefix + "sigma"] = np.full((len(seeds),), s, dtype=np.float32)
    np.savez(path, **out)
    return [s for _, _, s in kept]


def final_samples(model: Path, noise: np.ndarray, sigmas: np.ndarray, threads: int) -> tuple[np.ndarray, float]:
    den = Denoiser(model, threads=threads)
    t0 = time.perf_counter()
    x = sample(den, noise, sigmas, solver="euler")
    return x, time.perf_counter() - t0


def markdown(res: dict) -> str:
    g, s = res["groups"], res["sampler"]
    lines = [
        f"{res['params']:,} parameters, {g['prunable']:,} of them in the prunable groups of kinds {res['kinds']} "
        f"({g['share']:.1%}; {len(g['groups'])} groups: "
        + ", ".join(f"{x['kind']} {x['units']} at {x['name'].rsplit('/', 2)[-2]}" for x in g["groups"])
        + f"; {g['blocked']} groups of these kinds blocked). Removed: a fraction of the prunable parameters. "
        f"Drift: relative L2 between the pruned and the original model's final samples, Euler, {s['steps']} steps, "
        f"sigma {s['sigma_min']}..{s['sigma_max']}, rho {s['rho']}, {res['heldout']} held-out seeds in one batch "
        f"(per sample: mean and max of each sample's own relative L2); for scale, two sets of unrelated original "
        f"samples are {res['unrelated_drift']:.3f} apart.",
        "",
        "| removed | pipeline | params | drift | per sample: mean, max | prunec s |",
        "|---:|---|---:|---:|---:|---:|",
        f"| 0% | original | {res['original_params']:,} | 0 | 0, 0 | 0 |",
    ]
    for r in res["rows"]:
        if "error" in r:
            lines.append(f"| {r['amount']:.0%} | {r['pipeline']} | failed: {r['error'][:80]} | | | |")
        else:
            lines.append(f"| {r['amount']:.0%} | {r['pipeline']} | {r['params']:,} | {r['drift']:.3g} | "
                         f"{r['mean_sample_drift']:.3g}, {r['max_sample_drift']:.3g} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prunec", default=".build/release/prunec")
    ap.add_argument("--data", type=Path, default=Path(".cache/quality/diffcrysgen"),
                    help="denoiser.onnx and sampler.json (export_diffcrysgen.py); results go to its out/")
    ap.add_argument("--amounts", type=lambda t: [float(x) for x in t.split(",")], default=[0.2],
                    help="fractions of the prunable parameters to remove, comma-separated")
    ap.add_argument("--kinds", default="channels+heads+neurons")
    ap.add_argument("--pipeline", action="append", default=[],
                    help="NAME=PASS;PASS... instead of the standard pipelines (placeholders: see the top)")
    ap.add_argument("--only", default="", help="comma-separated substrings of pipeline names to run")
    ap.add_argument("--edm-steps", type=int, default=8, help="denoise-steps of the ecodiff (edm) pipeline")
    ap.add_argument("--heldout", default="2000-2015", help="held-out seeds (one batch)")
    ap.add_argument("--calib-seeds", default="1000-1015", help="calibration seeds (one batch)")
    ap.add_argument("--calib-sets", type=int, default=8)
    ap.add_argument("--unrelated", default="3000-3015", help="seeds of the unrelated-samples scale")
    ap.add_argument("--steps", type=int, default=0, help="sampler steps (0: the package's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=".cache/quality/diffcrysgen/quality.json")
    ap.add_argument("--markdown", help="also write the table (markdown) here")
    a = ap.parse_args()

    model = a.data / "denoiser.onnx"
    params = json.loads((a.data / "sampler.json").read_text())
    if a.steps:
        params["steps"] = a.steps
    work = a.data / "out"
    work.mkdir(parents=True, exist_ok=True)
    kinds = set(a.kinds.split("+"))
    g = groups(a.prunec, model, kinds)
    print(f"{model}: {g['params']:,} params, {g['prunable']:,} in {len(g['groups'])} prunable groups of {a.kinds} "
          f"({g['share']:.1%}; {g['blocked']} groups of these kinds blocked)")
    for x in g["groups"]:
        print(f"  {x['kind']:9s} {x['units']:4d} units {x['params']:>8,} params  {x['name']}")

    den = Denoiser(model, threads=a.threads)
    calib = work / "calib.npz"
    levels = calibration(den, parse_seeds(a.calib_seeds), params, a.calib_sets, calib)
    print(f"calibration: {calib}, {len(levels)} sets at sigma " + ", ".join(f"{s:.3g}" for s in levels))

    sigmas = karras_sigmas(params["steps"], params["sigma_min"], params["sigma_max"], params["rho"])
    held = parse_seeds(a.heldout)
    noise = seed_noise(held, params["shape"])
    ref, ref_secs = final_samples(model, noise, sigmas, a.threads)
    other, _ = final_samples(model, seed_noise(parse_seeds(a.unrelated), params["shape"]), sigmas, a.threads)
    unrelated = relative_l2(other, ref)
    print(f"original: {len(held)} held-out samples in {ref_secs:.0f} s; unrelated samples are {unrelated:.3f} apart")

    pipes = dict(p.split("=", 1) for p in a.pipeline) if a.pipeline else dict(STANDARD)
    keys = [o for o in a.only.split(",") if o]
    pipes = {n: p for n, p in pipes.items() if not keys or any(k in n for k in keys)}

    rows = []
    for amount in a.amounts:
        frac = amount * g["share"]
        print(f"{amount:.0%} of the prunable parameters: params={frac:.5f}")
        fill = {"P": f"{frac:.5f}", "S": f"{amount:.5f}", "kinds": a.kinds, "edm_steps": a.edm_steps,
                **{k: params[k] for k in ("sigma_min", "sigma_max", "sigma_data", "rho", "steps")}}
        for name, spec in pipes.items():
            for key, value in fill.items():
                spec = spec.replace("{" + key + "}", str(value))
            passes = [p for p in spec.split(";") if p]
            if passes[-1] != "fold-masks":
                passes.append("fold-masks")
            stem = "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
            out = work / f"{stem}.{round(amount * 100)}.onnx"
            cmd = [a.prunec, str(model)] + [x for p in passes for x in ("--pass", p)]
            cmd += ["-o", str(out), "--calib", str(calib), "--no-validate"]
            row = {"amount": amount, "params_fraction": frac, "pipeline": name, "passes": passes, "file": str(out)}
            try:
                _, secs = run_timed(cmd)
                x, _ = final_samples(out, noise, sigmas, a.threads)
                per = [relative_l2(x[i], ref[i]) for i in range(len(held))]
                row.update(params=params_of(out), seconds=secs, drift=relative_l2(x, ref),
                           mean_sample_drift=float(np.mean(per)), max_sample_drift=float(np.max(per)),
                           finite=bool(np.isfinite(x).all()))
                print(f"  {name:28s} params {row['params']:>9,}  drift {row['drift']:.3g} "
                      f"(max {row['max_sample_drift']:.3g})  prunec {secs:.0f} s")
            except Exception as e:  # keep going: the other pipelines still measure
                row["error"] = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                print(f"  {name:28s} failed: {row['error']}")
            rows.append(row)

    res = {"model": str(model), "params": g["params"], "original_params": params_of(model), "kinds": a.kinds, "groups": g, "sampler": {k: params[k] for k in ("sigma_min", "sigma_max", "sigma_data", "rho",
                                                                        "steps")} | {"solver": "euler"},
           "heldout": len(held), "heldout_seeds": a.heldout, "calib_seeds": a.calib_seeds,
           "calib_sigmas": levels, "unrelated_drift": unrelated, "rows": rows}
    write_json(a.json, res)
    print(f"result: {a.json}")
    if a.markdown:
        Path(a.markdown).write_text(markdown(res))
        print(f"table: {a.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
