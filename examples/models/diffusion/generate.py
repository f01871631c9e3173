#!/usr/bin/env python3
"""Generate prunec's corpus of diffusion denoisers, laid out as diffusers/optimum pipeline folders.

Tiny models with random, seeded weights, built from diffusers configurations (nothing is
downloaded). Each model gets a pipeline-style folder:

    <name>/unet/model.onnx                  legacy (TorchScript) exporter, opset 17
    <name>/unet/model.dynamo.onnx           dynamo (torch.export) exporter, opset 18 (where listed)
    <name>/transformer/model.onnx           (DiT, Flux: the denoiser is a transformer)
    <name>/scheduler/scheduler_config.json  written by the diffusers scheduler class's save_config
    <name>/calib.npz                        the denoiser's inputs: primary keys + set1. ... set7.

edm-precond has no scheduler folder: its preconditioning is inside the graph (inputs `sample`
and `sigma`), which is how prunec recognises it.

Every file is checked with onnx.checker (full_check) and onnxruntime (CPU) on all 8 calibration
sets and compared with torch on set 0; the results, package versions and a description of each
model go to manifest.json. A second run gives the same bytes (on the same package versions).

Regenerate from the repository root (the environment of examples/models/requirements.txt):

    python examples/models/diffusion/generate.py                 # all, rewrites manifest.json
    python examples/models/diffusion/generate.py --only flux     # some (manifest.json is left alone)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
GENERATOR = "examples/models/diffusion/generate.py"
MAX_MODEL_BYTES = 1024 * 1024


def _load_examples_generator():
    """examples/models/generate.py, imported under its own name (this file is also called generate.py)."""
    import importlib.util

    if "prunec_examples_generate" in sys.modules:
        return sys.modules["prunec_examples_generate"]
    spec = importlib.util.spec_from_file_location("prunec_examples_generate", EXAMPLES / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


base = _load_examples_generator()
SEED = base.SEED
N_SETS = base.N_SETS


# --------------------------------------------------------------------------------------
# Source models (diffusers configurations, random weights)
# --------------------------------------------------------------------------------------


def _randomize_norms(model: nn.Module) -> nn.Module:
    """diffusers initializes norm weights to ones and biases to zero (and some output layers to
    zero): every GroupNorm would share one constant, which the dynamo exporter deduplicates, and
    zero-initialized layers hide whole branches. Make them distinct and non-zero."""
    with torch.no_grad():
        for m in model.modules():
            if "Norm" in type(m).__name__ and isinstance(getattr(m, "weight", None), torch.Tensor):
                m.weight.normal_(1.0, 0.1)
                if isinstance(getattr(m, "bias", None), torch.Tensor):
                    m.bias.normal_(0.0, 0.1)
        for name, p in model.named_parameters():
            if p.dim() >= 2 and float(p.abs().max()) == 0.0:  # zero-initialized projections (adaLN-Zero, proj_out)
                p.normal_(0.0, 0.02)
            elif p.dim() == 1 and float(p.abs().max()) == 0.0 and "norm" not in name:
                p.normal_(0.0, 0.02)
    return model


class UNetConditionWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class UNetWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep):
        return self.model(sample, timestep, return_dict=False)[0]


class DiTWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, class_labels):
        return self.model(sample, timestep=timestep, class_labels=class_labels, return_dict=False)[0]


class FluxWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, guidance):
        return self.model(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            pooled_projections=pooled_projections,
            timestep=timestep,
            img_ids=img_ids,
            txt_ids=txt_ids,
            guidance=guidance,
            return_dict=False,
        )[0]


class EDMPrecond(nn.Module):
    """NVIDIA's EDMPrecond (Karras et al. 2022, Table 1, "Ours"): D(x; sigma) = c_skip x +
    c_out F(c_in x; c_noise), with the raw network F a diffusers UNet2DModel."""

    def __init__(self, model, sigma_data: float = 0.5):
        super().__init__()
        self.model = model
        self.sigma_data = sigma_data

    def forward(self, sample, sigma):
        sd = self.sigma_data
        s = sigma.reshape(-1, 1, 1, 1)
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + s**2).sqrt()
        c_noise = sigma.log() / 4
        f = self.model(c_in * sample, c_noise, return_dict=False)[0]
        return c_skip * sample + c_out * f


def build_unet2d_condition() -> nn.Module:
    from diffusers import UNet2DConditionModel

    model = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 24),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    return UNetConditionWrapper(_randomize_norms(model))


def _unet2d(in_channels=3) -> nn.Module:
    from diffusers import UNet2DModel

    return _randomize_norms(
        UNet2DModel(
            sample_size=16,
            in_channels=in_channels,
            out_channels=in_channels,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(16, 32),
            layers_per_block=1,
            attention_head_dim=8,
            norm_num_groups=8,
        )
    )


def build_unet2d() -> nn.Module:
    return UNetWrapper(_unet2d())


def build_edm_precond() -> nn.Module:
    return EDMPrecond(_unet2d())


def build_dit_sigma() -> nn.Module:
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,  # learned sigma: the prediction and the variance, concatenated on channels
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=10,
        norm_type="ada_norm_zero",
    )
    return DiTWrapper(_randomize_norms(model))


FLUX = dict(in_channels=64, heads=4, head_dim=8, joint_attention_dim=32, pooled_projection_dim=32,
            num_layers=1, num_single_layers=1, axes_dims_rope=(2, 2, 4), latent_hw=4, text_len=8)


def build_flux() -> nn.Module:
    from diffusers import FluxTransformer2DModel

    a = FLUX
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=a["in_channels"],
        num_layers=a["num_layers"],
        num_single_layers=a["num_single_layers"],
        attention_head_dim=a["head_dim"],
        num_attention_heads=a["heads"],
        joint_attention_dim=a["joint_attention_dim"],
        pooled_projection_dim=a["pooled_projection_dim"],
        guidance_embeds=True,
        axes_dims_rope=a["axes_dims_rope"],
    )
    return FluxWrapper(_randomize_norms(model))


# --------------------------------------------------------------------------------------
# Calibration data: what the pipeline feeds the denoiser
# --------------------------------------------------------------------------------------


def _karras_sigmas(rng, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """A sigma from the Karras schedule at a random position (what EDM samplers visit)."""
    u = rng.uniform(0.0, 1.0)
    return (sigma_max ** (1 / rho) + u * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def calib_unet2d_condition(rng, i):
    return {
        "sample": rng.standard_normal((1, 4, 16, 16)).astype(np.float32),
        "timestep": np.array([rng.integers(0, 1000)], dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((1, 8, 32)).astype(np.float32),
    }


def calib_unet2d(rng, i):
    return {
        "sample": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
        "timestep": np.array([rng.integers(0, 1000)], dtype=np.float32),
    }


def calib_edm(rng, i):
    """EDMEulerScheduler: the UNet gets c_in(sigma) * x (unit variance) and c_noise = log(sigma) / 4."""
    sigma = _karras_sigmas(rng)
    return {
        "sample": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
        "timestep": np.array([0.25 * np.log(sigma)], dtype=np.float32),
    }


def calib_consistency(rng, i):
    """CMStochasticIterativeScheduler: the UNet gets c_in(sigma) * x and t = 1000 * log(sigma) / 4."""
    sigma = _karras_sigmas(rng)
    return {
        "sample": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
        "timestep": np.array([1000 * 0.25 * np.log(sigma + 1e-44)], dtype=np.float32),
    }


def calib_edm_precond(rng, i):
    """The preconditioned denoiser takes the noisy image x = y + sigma n itself."""
    sigma = _karras_sigmas(rng)
    y = np.tanh(rng.standard_normal((1, 3, 16, 16)))  # image-like values in [-1, 1]
    x = y + sigma * rng.standard_normal((1, 3, 16, 16))
    return {"sample": x.astype(np.float32), "sigma": np.array([sigma], dtype=np.float32)}


def calib_dit(rng, i):
    return {
        "sample": rng.standard_normal((1, 4, 8, 8)).astype(np.float32),
        "timestep": np.array([rng.integers(0, 1000)], dtype=np.float32),
        "class_labels": np.array([rng.integers(0, 10)], dtype=np.int64),
    }


def _flux_ids():
    """FluxPipeline._prepare_latent_image_ids (row, column in channels 1 and 2) and zero text ids."""
    hw = FLUX["latent_hw"]
    ids = np.zeros((hw, hw, 3), dtype=np.float32)
    ids[..., 1] += np.arange(hw, dtype=np.float32)[:, None]
    ids[..., 2] += np.arange(hw, dtype=np.float32)[None, :]
    return ids.reshape(hw * hw, 3), np.zeros((FLUX["text_len"], 3), dtype=np.float32)


def calib_flux(rng, i):
    """FluxPipeline: packed 2x2 latent patches [B, (H/2)(W/2), 4C], timestep t/1000 in (0, 1],
    guidance scale (the model multiplies timestep and guidance by 1000 itself)."""
    img_ids, txt_ids = _flux_ids()
    hw = FLUX["latent_hw"]
    return {
        "hidden_states": rng.standard_normal((1, hw * hw, FLUX["in_channels"])).astype(np.float32),
        "encoder_hidden_states": rng.standard_normal((1, FLUX["text_len"], FLUX["joint_attention_dim"])).astype(np.float32),
        "pooled_projections": rng.standard_normal((1, FLUX["pooled_projection_dim"])).astype(np.float32),
        "timestep": np.array([rng.uniform(0.02, 1.0)], dtype=np.float32),
        "img_ids": img_ids,
        "txt_ids": txt_ids,
        "guidance": np.array([rng.choice([1.0, 3.5, 5.0])], dtype=np.float32),
    }


# --------------------------------------------------------------------------------------
# Schedulers (diffusers classes; save_config writes scheduler_config.json)
# --------------------------------------------------------------------------------------


def ddim_scaled_linear():
    from diffusers import DDIMScheduler

    # Stable Diffusion v1's scheduler
    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def ddpm_linear():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                         prediction_type="epsilon", variance_type="fixed_small", clip_sample=True)


def ddim_linear():
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                         clip_sample=False, prediction_type="epsilon")


def flow_match_flux():
    from diffusers import FlowMatchEulerDiscreteScheduler

    # black-forest-labs/FLUX.1-dev's scheduler: resolution-dependent shift
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096)


def edm_euler():
    from diffusers import EDMEulerScheduler

    return EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, sigma_schedule="karras",
                             num_train_timesteps=1000, prediction_type="epsilon", rho=7.0)


def cm_stochastic_iterative():
    from diffusers import CMStochasticIterativeScheduler

    # openai/diffusers-cd_imagenet64_l2's scheduler
    return CMStochasticIterativeScheduler(num_train_timesteps=40, sigma_min=0.002, sigma_max=80.0, sigma_data=0.5,
                                          s_noise=1.0, rho=7.0, clip_denoised=True)


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str
    component: str  # "unet" or "transformer": the pipeline folder the denoiser lives in
    description: str
    pattern: str
    build: Callable[[], nn.Module]
    calib: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    input_names: list[str]
    output_names: list[str]
    scheduler: Callable[[], object] | None
    exporters: tuple = ("legacy", "dynamo")
    arch: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def spec(self) -> base.Spec:
        return base.Spec(self.name, self.description, self.build, self.calib, self.input_names, self.output_names)


UNET2D_DESC = ("diffusers UNet2DModel (16x16x3 pixels, blocks (16, 32), DownBlock2D + AttnDownBlock2D, "
               "1 layer per block, GroupNorm 8 groups, self-attention head_dim 8, mid block with attention)")

MODELS = [
    Model(
        "unet2d-condition",
        "unet",
        "diffusers UNet2DConditionModel (Stable Diffusion layout): 16x16x4 latents, blocks (16, 24), CrossAttnDownBlock2D "
        "+ DownBlock2D, 1 layer per block, cross-attention dim 32, GroupNorm 8 groups, head_dim 8, default "
        "attention processor (scaled_dot_product_attention); DDIMScheduler scaled_linear epsilon (SD v1)",
        "GroupNorm (both exporters: Reshape -> InstanceNormalization -> Reshape, then a per-channel Mul/Add) between "
        "convs; ResNet blocks with 1x1 shortcut convs; time embedding added per channel; transformer blocks with "
        "self- and cross-attention over text embeddings; up-block skip Concat of encoder feature maps",
        build_unet2d_condition,
        calib_unet2d_condition,
        ["sample", "timestep", "encoder_hidden_states"],
        ["out_sample"],
        ddim_scaled_linear,
        arch={"norm_groups": 8, "block_out_channels": [16, 24]},
    ),
    Model(
        "unet2d",
        "unet",
        UNET2D_DESC + "; DDPMScheduler linear epsilon",
        "unconditional pixel-space UNet (DDPM): GroupNorm conv channels, spatial self-attention blocks (a Linear "
        "over channels between reshapes), up-block skip Concat, no conditioning input",
        build_unet2d,
        calib_unet2d,
        ["sample", "timestep"],
        ["out_sample"],
        ddpm_linear,
        arch={"norm_groups": 8, "block_out_channels": [16, 32]},
    ),
    Model(
        "dit-sigma",
        "transformer",
        "diffusers DiTTransformer2DModel with learned sigma: 8x8x4 latents, patch 2, 2 layers, 4 heads x 8, adaLN-Zero, "
        "10 class labels, out_channels 8 = 2 x in_channels; DDIMScheduler linear epsilon",
        "learned variance: the output holds the noise prediction and the variance concatenated on the channel "
        "axis (twice the latent's channels); adaLN-Zero modulation from timestep + class embeddings; unpatchify "
        "as an Einsum (nhwpqc->nchpwq)",
        build_dit_sigma,
        calib_dit,
        ["sample", "timestep", "class_labels"],
        ["out_sample"],
        ddim_linear,
        exporters=("legacy",),
        arch={"heads": 4, "head_dim": 8, "layers": 2, "intermediate": 128},
    ),
    Model(
        "flux",
        "transformer",
        "diffusers FluxTransformer2DModel: packed latents [1, 16, 64] (4x4 grid of 2x2 patches of 16 channels), "
        "1 double-stream (MMDiT) block + 1 single-stream block, 4 heads x 8, RoPE axes (2, 2, 4) from img_ids/"
        "txt_ids, text embeddings [1, 8, 32], pooled projection 32, guidance embedding; "
        "FlowMatchEulerDiscreteScheduler as FLUX.1-dev (shift 3, dynamic shifting 0.5 .. 1.15)",
        "joint attention over concatenated text and image tokens (double-stream block: separate q/k/v per stream, "
        "per-head RMSNorm on q and k), single-stream block with fused attention+MLP input projection and one output "
        "projection over their Concat, 3-axis RoPE from position ids, flow-matching (velocity) prediction",
        build_flux,
        calib_flux,
        ["hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids", "guidance"],
        ["out_sample"],
        flow_match_flux,
        exporters=("dynamo",),
        notes=["the legacy (TorchScript) exporter fails (aten::rms_norm has no symbolic at opset 17), so model.onnx is "
               "the dynamo export (opset 18); RMSNorm is decomposed (Pow, ReduceMean, Sqrt), attention is MatMul/Softmax"],
        arch={"heads": FLUX["heads"], "head_dim": FLUX["head_dim"], "layers": 2},
    ),
    Model(
        "edm",
        "unet",
        UNET2D_DESC + " as the raw EDM network F; EDMEulerScheduler (Karras sigmas 0.002 .. 80, sigma_data 0.5): "
        "the pipeline applies c_in and c_noise = log(sigma)/4 outside the graph",
        "EDM in diffusers' convention: the exported graph is the raw network F(c_in x; c_noise), the "
        "preconditioning (c_skip, c_out) lives in the scheduler; calibration timesteps are c_noise values",
        build_unet2d,
        calib_edm,
        ["sample", "timestep"],
        ["out_sample"],
        edm_euler,
        exporters=("legacy",),
        arch={"norm_groups": 8, "block_out_channels": [16, 32]},
    ),
    Model(
        "consistency",
        "unet",
        UNET2D_DESC + " as a consistency-model network; CMStochasticIterativeScheduler (openai/diffusers-cd_imagenet64_l2 "
        "settings): the pipeline applies c_in and t = 250 log(sigma) outside the graph",
        "consistency model in diffusers' convention: raw network, boundary-condition preconditioning in the "
        "scheduler; calibration timesteps are 1000 * log(sigma) / 4",
        build_unet2d,
        calib_consistency,
        ["sample", "timestep"],
        ["out_sample"],
        cm_stochastic_iterative,
        exporters=("legacy",),
        arch={"norm_groups": 8, "block_out_channels": [16, 32]},
    ),
    Model(
        "edm-precond",
        "unet",
        "NVIDIA EDMPrecond around a " + UNET2D_DESC + ": forward(sample, sigma) = c_skip x + c_out F(c_in x; log(sigma)/4), "
        "sigma_data 0.5; no scheduler config",
        "preconditioning inside the graph: the input is `sigma` (not a timestep), c_in/c_skip/c_out are computed "
        "from it (Pow, Sqrt, Div, Log) and multiply the sample and the network's output; the output is the "
        "denoised image D(x; sigma)",
        build_edm_precond,
        calib_edm_precond,
        ["sample", "sigma"],
        ["denoised"],
        None,
        exporters=("legacy",),
        arch={"norm_groups": 8, "block_out_channels": [16, 32], "sigma_data": 0.5},
    ),
]


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def stamp(model: onnx.ModelProto, m: Model, exporter: str) -> onnx.ModelProto:
    model = base.strip_and_stamp(model, m.spec(), exporter)
    for p in model.metadata_props:
        if p.key == "prunec.generator":
            p.value = GENERATOR
        if p.key == "prunec.example":
            p.key = "prunec.diffusion"
    return model


def check(path: Path, sets, ref) -> dict:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    diff = 0.0
    for i, s in enumerate(sets):
        outs = sess.run(None, {k: s[k] for k in names})
        for o in outs:
            if not np.all(np.isfinite(o)):
                raise RuntimeError(f"non-finite output on set {i}")
        if i == 0:
            diff = float(max(np.max(np.abs(o - r)) for o, r in zip(outs, ref)))
    return {"checker": True, "ort_runs": True, "ort_sets_run": len(sets), "max_abs_diff_vs_torch": diff}


def write_scheduler(m: Model, folder: Path) -> dict | None:
    """The scheduler's own save_config, into a temporary folder, then atomically into place."""
    import tempfile

    if m.scheduler is None:
        return None
    sched = m.scheduler()
    target = folder / "scheduler"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sched.save_config(tmp)
        data = (Path(tmp) / "scheduler_config.json").read_bytes()
    base.atomic_write(target / "scheduler_config.json", data)
    return {"file": f"{m.name}/scheduler/scheduler_config.json", "class": type(sched).__name__,
            "sha256": base.sha256(data), "config": json.loads(data)}


def generate(m: Model, out: Path, log) -> tuple[list[dict], dict, list[dict]]:
    folder = out / m.name
    comp = folder / m.component
    comp.mkdir(parents=True, exist_ok=True)
    entries, failures = [], []
    spec = m.spec()
    sets = base.calibration_sets(spec)
    arch = base.calibration_archive(sets)
    calib_data = base.npz_bytes(arch)
    base.atomic_write(folder / "calib.npz", calib_data)
    calib = {"file": f"{m.name}/calib.npz", "model": m.name, "sha256": base.sha256(calib_data),
             "bytes": len(calib_data), "samples": N_SETS,
             "keys": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in sorted(arch.items())}}
    scheduler = write_scheduler(m, folder)
    args = tuple(torch.from_numpy(sets[0][n].copy()) for n in m.input_names)
    for exporter in ("legacy", "dynamo"):
        # The pipeline's model.onnx is the legacy export, or the dynamo one where that is the only exporter.
        fname = "model.dynamo.onnx" if exporter == "dynamo" and "legacy" in m.exporters else "model.onnx"
        path = comp / fname
        if exporter not in m.exporters:
            continue
        base.seed_everything(SEED)
        module = m.build().eval()
        with torch.no_grad():
            ref = module(*args)
        ref = [r.detach().numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
        notes = list(m.notes)
        try:
            with torch.no_grad():
                if exporter == "legacy":
                    model = base.export_legacy(spec, module, args)
                else:
                    model, extra = base.export_dynamo(spec, module, args)
                    notes += extra
            base.assert_no_external_data(model)
            model = stamp(model, m, exporter)
            data = model.SerializeToString(deterministic=True)
            if len(data) > MAX_MODEL_BYTES:
                raise RuntimeError(f"model is {len(data)} bytes, over {MAX_MODEL_BYTES}")
            for needle in (str(HERE), str(Path.home()), "site-packages"):
                if needle.encode() in data:
                    raise RuntimeError(f"model contains a machine-specific string {needle!r}")
            base.atomic_write(path, data)
            res = check(path, sets, ref)
        except Exception as e:
            if path.exists():
                path.unlink()
            line = base.one_line(e)
            failures.append({"model": m.name, "exporter": exporter, "error": line})
            log(f"  {exporter:6s} FAILED {line}")
            continue
        onx = onnx.load_from_string(data)
        inits = {t.name for t in onx.graph.initializer}
        entry = {
            "file": f"{m.name}/{m.component}/{fname}",
            "name": m.name,
            "component": m.component,
            "exporter": exporter,
            "description": m.description,
            "pattern": m.pattern,
            "arch": m.arch,
            "sha256": base.sha256(data),
            "bytes": len(data),
            "params": base.param_count(onx),
            "nodes": len(onx.graph.node),
            "ir_version": onx.ir_version,
            "opsets": {(o.domain or "ai.onnx"): o.version for o in onx.opset_import},
            "producer": f"{onx.producer_name} {onx.producer_version}".strip(),
            "inputs": [base.io_desc(i) for i in onx.graph.input if i.name not in inits],
            "outputs": [base.io_desc(o) for o in onx.graph.output],
            "ops": base.op_histogram(onx),
            "calibration": calib["file"],
            "scheduler": scheduler["file"] if scheduler else None,
            **res,
        }
        if notes:
            entry["notes"] = notes
        entries.append(entry)
        log(f"  {entry['file']:42s} {entry['bytes']:>8d} B params={entry['params']:>7d} nodes={entry['nodes']:>4d} "
            f"max|ort-torch|={res['max_abs_diff_vs_torch']:.2e}" + (f" notes={notes}" if notes else ""))
    return entries, {"calibration": calib, "scheduler": scheduler}, failures


def _pin_hash_seed() -> None:
    """The legacy exporter names nodes in execution order, and some diffusers code iterates sets: run
    again with PYTHONHASHSEED=0 so the bytes do not change from run to run."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve())] + sys.argv[1:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=[m.name for m in MODELS], help="only these (no manifest)")
    ap.add_argument("--out", type=Path, default=HERE)
    opts = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    warnings.filterwarnings("ignore")
    opts.out.mkdir(parents=True, exist_ok=True)
    models, calibration, schedulers, failures = [], [], [], []
    for m in MODELS:
        if opts.only and m.name not in opts.only:
            continue
        print(f"{m.name}:", flush=True)
        entries, files, fails = generate(m, opts.out, lambda s: print(s, flush=True))
        models += entries
        failures += fails
        calibration.append(files["calibration"])
        if files["scheduler"]:
            schedulers.append(files["scheduler"])
    if not opts.only:
        manifest = {
            "generator": GENERATOR,
            "seed": SEED,
            "layout": "diffusers/optimum pipeline folders: <name>/<unet|transformer>/model[.dynamo].onnx, "
                      "<name>/scheduler/scheduler_config.json (the scheduler class's save_config), <name>/calib.npz",
            "versions": {
                "torch": torch.__version__.split("+")[0],
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "numpy": np.__version__,
                "diffusers": base._version("diffusers"),
                "onnxscript": base._version("onnxscript"),
            },
            "checks": "onnx.checker.check_model(full_check=True) passes for every listed file; onnxruntime "
                      "(CPUExecutionProvider) runs all calibration sets with finite outputs; max_abs_diff_vs_torch "
                      "compares set 0 with the torch module",
            "descriptions": {m.name: m.description for m in MODELS},
            "models": models,
            "calibration": calibration,
            "schedulers": schedulers,
            "failures": failures,
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        base.atomic_write(opts.out / "manifest.json", text.encode())
        print(f"wrote {opts.out / 'manifest.json'}", flush=True)
    if failures:
        print(f"{len(failures)} failure(s) recorded", flush=True)
    return 0


if __name__ == "__main__":
    _pin_hash_seed()
    sys.exit(main())
