#!/usr/bin/env python3
"""Writes unet2d/unet/model.ort-unet.onnx: the legacy UNet2DModel export through onnxruntime's
Stable Diffusion optimizer (`optimize_model(model_type="unet")`), which fuses every GroupNorm
(Reshape + InstanceNormalization + Reshape + Mul + Add, and the SiLU after it) into
com.microsoft GroupNorm with NHWC Transposes around it. NhwcConv and SkipGroupNorm are turned off:
they exist only on GPU. onnxruntime's CPU provider has no GroupNorm either, so prunec's tests
compare the fused graph with the original instead (Tests/PruneKitTests/ContribGroupNormTests.swift).

usage (from the repository root, in an environment with onnxruntime and sympy, e.g. the quality venv):
  python examples/models/diffusion/ort_fuse.py
"""
from pathlib import Path

from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.transformers.optimizer import optimize_model

HERE = Path(__file__).resolve().parent


def main():
    options = FusionOptions("unet")
    options.enable_nhwc_conv = False
    options.enable_skip_group_norm = False
    src = HERE / "unet2d/unet/model.onnx"
    m = optimize_model(str(src), model_type="unet", num_heads=0, hidden_size=0, optimization_options=options, opt_level=0)
    m.model.producer_name = "prunec-corpus"
    m.save_model_to_file(str(HERE / "unet2d/unet/model.ort-unet.onnx"))


if __name__ == "__main__":
    main()
