#!/usr/bin/env python3
"""A reference EDM sampler (Karras et al. 2022) over an ONNX denoiser, in numpy + onnxruntime.

The denoiser is D(x; sigma) with EDM's preconditioning inside the graph (as export_diffcrysgen.py
writes it): inputs `sample` (the latent) and `sigma` ([batch], or [batch, 1, 1] — read from the
graph), any other inputs are conditioning, fed unchanged; the first output is D.

Schedule: sigma_i = (smax^(1/rho) + i/(N-1)·(smin^(1/rho) - smax^(1/rho)))^rho for i < N, sigma_N = 0;
x_0 = sigma_max·eps. Solvers:
  euler  x_{i+1} = x_i + (sigma_{i+1} - sigma_i)·(x_i - D(x_i, sigma_i))/sigma_i   (N evaluations)
  heun   EDM's Algorithm 2 as diffcrysgen/sampler.py runs it: optional churn (gamma = min(S_churn/N,
         sqrt(2)-1) where S_min <= sigma_i <= S_max, x_hat = x_i + sqrt(t_hat² - sigma_i²)·S_noise·eps_i),
         an Euler step from t_hat, and the trapezoidal correction except on the last step (2N-1
         evaluations). Churn noise is passed in, so a run is a function of its noise arrays.
The sampler state is float64 (as the package's is: its float64 sigmas promote x), D runs in float32.

Noise for a seed: numpy.random.default_rng(seed).standard_normal(shape), seeds stacked as one batch.
All samples of a call go through the denoiser as one batch (diffcrysgen's UNet attends across the
batch axis, so a sample's result depends on its batch).

Library: karras_sigmas, Denoiser, sample, seed_noise. CLI: sample seeds into an npz, or
--check-package: run diffcrysgen's own generate_samples (stochastic Heun, its parameters) and this
sampler's Heun on the same noise, and report how close they are.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """The N+1 noise levels of EDM's schedule, the last one 0 (float64)."""
    i = np.arange(steps, dtype=np.float64)
    s = (sigma_max ** (1 / rho) + i / max(steps - 1, 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return np.concatenate([s, [0.0]])


class Denoiser:
    """D(x; sigma) from an ONNX file (onnxruntime, CPU)."""

    def __init__(self, path: str | Path, threads: int = 0, sample: str = "sample", sigma: str = "sigma",
                 conditioning: dict[str, np.ndarray] | None = None):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        if sample not in inputs or sigma not in inputs:
            raise ValueError(f"{path}: needs inputs '{sample}' and '{sigma}', has {sorted(inputs)}")
        self.sample, self.sigma = sample, sigma
        self.sigma_rank = len(inputs[sigma].shape)
        self.shape = inputs[sample].shape  # [batch, ...], batch possibly symbolic
        self.conditioning = conditioning or {}
        self.evaluations = 0

    def __call__(self, x: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
        b = x.shape[0]
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float32).reshape(-1), (b,)).astype(np.float32)
        feed = {self.sample: x.astype(np.float32), self.sigma: s.reshape((b,) + (1,) * (self.sigma_rank - 1)),
                **self.conditioning}
        self.evaluations += 1
        return self.session.run(None, feed)[0].astype(np.float64)


def seed_noise(seeds, shape) -> np.ndarray:
    """One standard normal array of `shape` per seed, stacked: [len(seeds), *shape]."""
    return np.stack([np.random.default_rng(int(s)).standard_normal(tuple(shape)) for s in seeds])


def sample(denoise, noise: np.ndarray, sigmas: np.ndarray, solver: str = "euler", churn: dict | None = None,
           churn_noise: list[np.ndarray] | None = None, record: list[int] | tuple = ()) -> np.ndarray | tuple:
    """Runs the sampler from x_0 = sigmas[0]·noise. `denoise(x, sigma)` is D; sigmas from karras_sigmas.
    churn: {S_churn, S_min, S_max, S_noise} (heun only); churn_noise: one array per step for it.
    record: step indices i whose (x_i, sigma_i) to return too, as (final, [(i, x_i, sigma_i), ...])."""
    steps = len(sigmas) - 1
    x = noise.astype(np.float64) * sigmas[0]
    kept = []
    for i in range(steps):
        t_cur, t_next = float(sigmas[i]), float(sigmas[i + 1])
        if i in record:
            kept.append((i, x.copy(), t_cur))
        if solver == "euler":
            d = (x - denoise(x, t_cur)) / t_cur
            x = x + (t_next - t_cur) * d
            continue
        if solver != "heun":
            raise ValueError(f"unknown solver {solver!r}")
        t_hat, x_hat = t_cur, x
        if churn and churn.get("S_churn", 0) > 0:
            s_max = float(churn.get("S_max", "inf"))
            gamma = min(churn["S_churn"] / steps, np.sqrt(2) - 1) if churn.get("S_min", 0) <= t_cur <= s_max else 0.0
            t_hat = t_cur + gamma * t_cur
            if churn_noise is None:
                raise ValueError("heun with churn needs churn_noise (one array per step)")
            x_hat = x + np.sqrt(t_hat ** 2 - t_cur ** 2) * churn.get("S_noise", 1.0) * churn_noise[i]
        d_cur = (x_hat - denoise(x_hat, t_hat)) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if i < steps - 1:
            d_prime = (x - denoise(x, t_next)) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return (x, kept) if record else x


def relative_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_package(src: Path, model: Path, params: dict, count: int, seed: int, threads: int) -> dict:
    """diffcrysgen's generate_samples against this sampler's heun, on the noise the package drew."""
    import torch
    sys.path.insert(0, str(src))
    import diffcrysgen.sampler as pkg
    torch.set_num_threads(threads or 2)

    drawn: list[torch.Tensor] = []
    latent_out: list[np.ndarray] = []
    randn, randn_like, inv = torch.randn, torch.randn_like, pkg.inv_minmax

    def rec_randn(*a, **k):
        t = randn(*a, **k)
        drawn.append(t.clone())
        return t

    def rec_randn_like(*a, **k):
        t = randn_like(*a, **k)
        drawn.append(t.clone())
        return t

    def rec_inv(x, scaler):  # x = (x_N permuted to [batch, F, C] + 1) / 2
        latent_out.append(np.transpose(2 * np.asarray(x, dtype=np.float64) - 1, (0, 2, 1)))
        return inv(x, scaler)

    torch.manual_seed(seed)
    torch.randn, torch.randn_like, pkg.inv_minmax = rec_randn, rec_randn_like, rec_inv
    try:
        out_pkg = pkg.generate_samples(num_samples=count, batch_size=count,
                                       model_path=str(src / "assets" / "saved-model" / "sdm.pt"))
    finally:
        torch.randn, torch.randn_like, pkg.inv_minmax = randn, randn_like, inv
    noise = drawn[0].double().numpy()
    churn_noise = [t.double().numpy() for t in drawn[1:]]
    sig = karras_sigmas(params["steps"], params["sigma_min"], params["sigma_max"], params["rho"])
    den = Denoiser(model, threads=threads)
    churn = {k: params[k] for k in ("S_churn", "S_min", "S_max", "S_noise")}
    ours = sample(den, noise, sig, solver="heun", churn=churn, churn_noise=churn_noise)
    ours_pkg_space = pkg.inv_minmax(np.transpose(ours, (0, 2, 1)).astype(np.float32) * 0.5 + 0.5,
                                    pkg.load_saved_diffusion_scaler(str(src / "assets" / "ircr_diffusion_scaler.pkl")))
    return {"samples": count, "seed": seed, "evaluations": den.evaluations, "noise_arrays": len(drawn),
            "latent_relative_l2": relative_l2(ours, latent_out[0]),
            "latent_max_abs": float(np.abs(ours - latent_out[0]).max()),
            "output_relative_l2": relative_l2(np.asarray(ours_pkg_space, np.float64), np.asarray(out_pkg, np.float64)),
            "euler_vs_package_latent_relative_l2": relative_l2(sample(den, noise, sig, solver="euler"), latent_out[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path(".cache/quality/diffcrysgen/denoiser.onnx"))
    ap.add_argument("--sampler", type=Path, default=Path(".cache/quality/diffcrysgen/sampler.json"),
                    help="sigma_min, sigma_max, rho, steps (and churn for heun) as export_diffcrysgen.py writes them")
    ap.add_argument("--solver", choices=["euler", "heun"], default="euler")
    ap.add_argument("--steps", type=int, default=0, help="override the sampler's step count")
    ap.add_argument("--seeds", default="1000-1015", help="seeds, e.g. 1000-1015 or 1,2,3 (one batch)")
    ap.add_argument("--out", type=Path, help="npz of the final samples (key 'samples', float64) and seeds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-package", type=Path, metavar="SRC",
                    help="the unpacked diffcrysgen sdist: compare its generate_samples with this heun on the same noise")
    ap.add_argument("--check-count", type=int, default=8)
    ap.add_argument("--check-tolerance", type=float, default=1e-2, help="largest latent relative L2 accepted")
    ap.add_argument("--json", type=Path, help="write the check's result here")
    a = ap.parse_args()

    params = json.loads(a.sampler.read_text())
    if a.steps:
        params["steps"] = a.steps
    if a.check_package:
        res = check_package(a.check_package, a.model, params, a.check_count, 0, a.threads)
        print(json.dumps(res, indent=2))
        if a.json:
            a.json.write_text(json.dumps(res, indent=2) + "\n")
        if res["latent_relative_l2"] > a.check_tolerance:
            sys.exit(f"heun reference and diffcrysgen's sampler differ: relative L2 {res['latent_relative_l2']:.3g}")
        return
    seeds = parse_seeds(a.seeds)
    den = Denoiser(a.model, threads=a.threads)
    noise = seed_noise(seeds, params["shape"])
    sig = karras_sigmas(params["steps"], params["sigma_min"], params["sigma_max"], params["rho"])
    churn = {k: params[k] for k in ("S_churn", "S_min", "S_max", "S_noise")} if a.solver == "heun" else None
    if churn:  # seeded churn noise: a second stream per seed
        rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        churn_noise = [np.stack([r.standard_normal(tuple(params["shape"])) for r in rngs]) for _ in range(params["steps"])]
    else:
        churn_noise = None
    x = sample(den, noise, sig, solver=a.solver, churn=churn, churn_noise=churn_noise)
    print(f"{len(seeds)} samples, {a.solver}, {params['steps']} steps, {den.evaluations} evaluations; "
          f"mean {x.mean():.4f} std {x.std():.4f} min {x.min():.4f} max {x.max():.4f}")
    if a.out:
        np.savez(a.out, samples=x, seeds=np.asarray(seeds))


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


if __name__ == "__main__":
    main()
