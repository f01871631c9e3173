#!/usr/bin/env python3
"""Reference sampler runs from diffusers' schedulers, for Tests/PruneRuntimeTests/DiffusionProcessTests.

A fake, elementwise "model" F(x_in, t) = 0.3·x_in + k·t stands in for the network, so the runs
test the schedulers' arithmetic (the fed latent scaling, the fed timestep, the step update), not a
network. Each case records the scheduler's config, the number of steps, the first latent and the
final one, and the (timestep, scaled-input factor) sequence the model saw.

usage: diffusers_samplers.py OUT.json   (needs diffusers, torch: the quality venv has them)
"""
import json
import sys

import torch
from diffusers import DDIMScheduler, DDPMScheduler, EDMEulerScheduler, FlowMatchEulerDiscreteScheduler

CASES = [
    ("edm-euler-epsilon", EDMEulerScheduler, dict(), 6, 1e-2),
    ("edm-euler-v", EDMEulerScheduler, dict(prediction_type="v_prediction", sigma_data=1.0), 5, 1e-2),
    ("flow-shift3", FlowMatchEulerDiscreteScheduler, dict(shift=3.0), 6, 5e-4),
    ("flow-noshift", FlowMatchEulerDiscreteScheduler, dict(), 4, 5e-4),
    ("ddim-linear-sample", DDIMScheduler, dict(beta_schedule="linear", prediction_type="sample", timestep_spacing="leading", set_alpha_to_one=True), 5, 1e-4),
    ("ddim-cosine-v", DDIMScheduler, dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", timestep_spacing="leading", set_alpha_to_one=True), 5, 1e-4),
]


def main():
    out = []
    for name, cls, kwargs, steps, k in CASES:
        s = cls(**kwargs)
        s.set_timesteps(steps)
        x = torch.tensor([0.7, -1.2], dtype=torch.float64) * float(getattr(s, "init_noise_sigma", 1.0))
        first = x.clone()
        fed = []
        for t in s.timesteps:
            xin = s.scale_model_input(x, t) if hasattr(s, "scale_model_input") else x
            ratio = float(xin[0] / x[0])
            fed.append([float(t), ratio])
            model_out = 0.3 * xin + k * float(t)
            x = s.step(model_out, t, x).prev_sample.to(torch.float64)
        out.append(dict(name=name, config={**{kk: v for kk, v in s.config.items() if not kk.startswith("_")}, "_class_name": cls.__name__},
                        steps=steps, k=k, first=first.tolist(), final=x.tolist(), fed=fed))
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
