#!/usr/bin/env python3
"""Generates the scale benchmark's models (random weights, nothing downloaded, never committed).

  decoder  A Llama-3.2-1B configuration (hidden 2048, FFN 8192, 32 query heads reading 8 kv heads,
           vocabulary 128,256, tied embeddings, RoPE theta 500,000), random weights in float16,
           exported with torch.onnx's TorchScript exporter (opset 17) to ONNX with one external
           data file, as a user exporting a Hugging Face decoder gets it. Input input_ids
           [batch, sequence]; output logits. --layers and --hidden change its depth and width (the
           8/16/32-layer family of the reconstruct cost check keeps one width).
           Calibration: <name>.calib.npz, one batch of --calib-rows sequences of --seq random tokens
           (prunec counts rows as samples).
  unet     A Stable Diffusion 1.5 UNet2DConditionModel configuration (diffusers; 860M parameters),
           random weights in float16, same exporter: inputs sample [1, 4, 64, 64], timestep [1],
           encoder_hidden_states [1, 77, 768]; output out_sample. --blocks-channels shrinks it.
           Calibration: <name>.calib.npz, --calib-rows sets of random latents and text states.

Usage (the scale venv is .venv-quality, see scripts/quality/requirements.txt):
  .venv-quality/bin/python scripts/scale/make_models.py decoder --out .cache/scale
  .venv-quality/bin/python scripts/scale/make_models.py decoder --layers 8 --hidden 512 --name dec8
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

OPSET = 17

# The quality benchmark's exporter wraps a causal LM the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "quality"))
from export_models import causal_lm_logits  # noqa: E402


def save_external(src: Path, out: Path) -> None:
    """Re-saves an exported model with all its tensors in one data file beside it."""
    import onnx

    m = onnx.load(str(src), load_external_data=True)
    data = out.name + ".data"
    if (out.parent / data).exists():
        (out.parent / data).unlink()
    onnx.save_model(m, str(out), save_as_external_data=True, all_tensors_to_one_file=True, location=data,
                    size_threshold=1024)


def export(module, args, out: Path, input_names, output_names, dynamic_axes) -> None:
    import torch

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        raw = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(raw), dynamo=False, opset_version=OPSET, input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True,
                              external_data=True)
        save_external(raw, out)


def decoder(a) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(a.seed)
    heads = a.heads or max(1, a.hidden // 64)
    kv = a.kv_heads or max(1, heads // 4)
    cfg = LlamaConfig(hidden_size=a.hidden, intermediate_size=a.intermediate or 4 * a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=heads, num_key_value_heads=kv, vocab_size=a.vocab, tie_word_embeddings=True,
                      rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5, head_dim=a.hidden // heads,
                      attn_implementation="eager", use_cache=False)
    t0 = time.time()
    model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"{a.name}: {params:,} parameters ({a.layers} layers, hidden {a.hidden}, {heads} heads / {kv} kv), "
          f"initialized in {time.time() - t0:.0f} s", flush=True)

    rng = np.random.default_rng(a.seed)
    ex = torch.from_numpy(rng.integers(0, a.vocab, size=(1, 8), dtype=np.int64))
    out = a.out / f"{a.name}.onnx"
    t0 = time.time()
    export(causal_lm_logits(model), (ex,), out, ["input_ids"], ["logits"],
           {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}})
    print(f"{out}: exported in {time.time() - t0:.0f} s", flush=True)
    ids = rng.integers(0, a.vocab, size=(a.calib_rows, a.seq), dtype=np.int64)
    np.savez(a.out / f"{a.name}.calib.npz", input_ids=ids)


def unet(a) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(a.seed)
    channels = tuple(int(c) for c in a.block_channels.split(","))
    model = UNet2DConditionModel(sample_size=a.latent, in_channels=4, out_channels=4, layers_per_block=2,
                                 block_out_channels=channels, cross_attention_dim=768, attention_head_dim=8,
                                 down_block_types=("CrossAttnDownBlock2D",) * (len(channels) - 1) + ("DownBlock2D",),
                                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (len(channels) - 1),
                                 norm_num_groups=32).to(torch.float16).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"{a.name}: {params:,} parameters (block channels {channels})", flush=True)

    class Denoiser(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.m(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    rng = np.random.default_rng(a.seed)

    def inputs():
        return {"sample": rng.standard_normal((1, 4, a.latent, a.latent)).astype(np.float16),
                "timestep": np.array([rng.integers(1, 1000)], dtype=np.int64),
                "encoder_hidden_states": rng.standard_normal((1, 77, 768)).astype(np.float16)}

    ex = inputs()
    out = a.out / f"{a.name}.onnx"
    t0 = time.time()
    export(Denoiser(model), tuple(torch.from_numpy(ex[k]) for k in ("sample", "timestep", "encoder_hidden_states")), out,
           ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], None)
    print(f"{out}: exported in {time.time() - t0:.0f} s", flush=True)
    sets = [inputs() for _ in range(a.calib_rows)]
    np.savez(a.out / f"{a.name}.calib.npz",
             **{(f"set{i + 1}.{k}" if len(sets) > 1 else k): v for i, s in enumerate(sets) for k, v in s.items()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["decoder", "unet"])
    ap.add_argument("--out", type=Path, default=Path(".cache/scale"))
    ap.add_argument("--name", default=None, help="file name stem (default: llama1b / sd15unet)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--seq", type=int, default=128, help="calibration sequence length (decoder)")
    ap.add_argument("--calib-rows", type=int, default=16, help="calibration sequences (decoder) or sets (unet)")
    ap.add_argument("--block-channels", default="320,640,1280,1280", help="UNet block channels (SD 1.5)")
    ap.add_argument("--latent", type=int, default=64, help="UNet latent size (SD 1.5 at 512 px: 64)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.name is None:
        a.name = "llama1b" if a.kind == "decoder" else "sd15unet"
    if a.kind == "decoder" and a.hidden != 2048 and a.intermediate == 8192:
        a.intermediate = 4 * a.hidden
    (decoder if a.kind == "decoder" else unet)(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
