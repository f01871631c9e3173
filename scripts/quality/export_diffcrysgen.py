#!/usr/bin/env python3
"""Exports the real EDM denoiser of PyPI's `diffcrysgen` (sdist 0.1.1) to ONNX, with its sampler's parameters.

The sdist ships a trained 1-D UNet score network (assets/saved-model/sdm.pt, a state dict of
diffcrysgen.model.Model) and its stochastic Heun sampler (diffcrysgen/sampler.py, EDM of Karras et al.).
Nothing of it is committed: `pip download` fetches the sdist into --out, and this script imports the
package's own model code from the unpacked folder.

Exported: diffcrysgen.model.Precond (the package's D(x; sigma) = c_skip·x + c_out·F(c_in·x; log(sigma)/4),
sigma_data 0.5) around the trained UNet, so EDM's preconditioning is inside the graph:
  inputs  sample [batch, 3, 136] float32 (the latent: 3 channels × 136 features, IRCR in [-1, 1])
          sigma  [batch] float32 (noise level, > 0)
  output  denoised [batch, 3, 136] float32 (D)
TorchScript exporter, opset 17, constant folding on (the UNet's weight standardization of its
WSConv1d layers depends on the weights alone, so it folds into plain Conv weights).

Caution, exactly as the package computes it: the UNet's two AttentionBlocks call
nn.MultiheadAttention (batch_first=False) on [batch, 128, 17], so attention runs across the *batch*
axis (sequence = batch). A sample's D depends on the other samples in its batch; compare samplers
and pruned models on the same batches.

Writes into --out (default .cache/quality/diffcrysgen): denoiser.onnx, sampler.json, and the
unpacked sdist under src/.
"""
from __future__ import annotations

import argparse
import ast
import copy
import inspect
import io
import json
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np

PACKAGE, VERSION = "diffcrysgen", "0.1.1"
OPSET = 17


def fetch(out: Path) -> Path:
    """Downloads and unpacks the sdist (once); returns the unpacked package root."""
    root = out / "src" / f"{PACKAGE}-{VERSION}"
    if (root / PACKAGE / "model.py").exists():
        return root
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-deps",
                    "--no-binary", ":all:", "-d", str(out), "-q"], check=True)
    sdist = out / f"{PACKAGE}-{VERSION}.tar.gz"
    with tarfile.open(sdist) as tar:
        tar.extractall(out / "src", filter="data")
    return root


def sampler_literals(path: Path) -> dict[str, object]:
    """The literal assignments (name = constant) in generate_samples of the package's sampler.py."""
    tree = ast.parse(path.read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "generate_samples")
    found = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "float":
                    found[node.targets[0].id] = float(ast.literal_eval(node.value.args[0]))
    return found


def load_model(root: Path):
    """The package's Model (Precond around UNet), built as sampler.generate_samples builds it, in eval mode."""
    import torch
    sys.path.insert(0, str(root))
    from diffcrysgen.model import Model, UNet
    denoise_fn = UNet(in_c=3, out_c=3, time_emb_dim=256)
    model = Model(denoise_fn=denoise_fn)
    state = torch.load(root / "assets" / "saved-model" / "sdm.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def plain_convs(module) -> int:
    """Replaces every WSConv1d by an nn.Conv1d holding the package's own weight_standardization of its
    weight (what WSConv1d.forward computes on every call), so the graph has plain Conv weights."""
    import torch
    from diffcrysgen.model import WSConv1d, weight_standardization
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, WSConv1d):
            conv = torch.nn.Conv1d(child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                                   padding=child.padding, dilation=child.dilation, groups=child.groups,
                                   bias=child.bias is not None, padding_mode=child.padding_mode)
            with torch.no_grad():
                conv.weight.copy_(weight_standardization(child.weight, child.eps))
                if child.bias is not None:
                    conv.bias.copy_(child.bias)
            setattr(module, name, conv.eval())
            count += 1
        else:
            count += plain_convs(child)
    return count


def dynamic_batch(model, traced: int) -> int:
    """The tracer bakes in Python ints taken from the example batch: UNet.forward reshapes the time
    embeddings with n = len(x), and nn.MultiheadAttention (batch_first=False, so its sequence axis is
    the batch) views k and v with the sequence length. Rewrites those shapes: a Reshape shape
    [traced, -1, 1] becomes [0, -1, 1] (0: copy the input's batch), and a constant [traced] that a
    Concat puts first into a Reshape shape becomes -1 (the other entries there come from Shape).
    Returns how many it rewrote. The onnxruntime check after the export runs batches 1, 4 and 16."""
    from onnx import numpy_helper
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def tensor_of(name):
        return inits.get(name) or (consts[name].attribute[0].t if name in consts else None)

    def rewrite(tensor, values) -> None:
        shape = numpy_helper.to_array(tensor)
        tensor.CopyFrom(numpy_helper.from_array(np.array(values, dtype=shape.dtype), tensor.name))

    count = 0
    for node in model.graph.node:
        if node.op_type == "Reshape":
            tensor = tensor_of(node.input[1])
            if tensor is not None and numpy_helper.to_array(tensor).tolist() == [traced, -1, 1]:
                rewrite(tensor, [0, -1, 1])
                count += 1
        elif node.op_type == "Concat" and node.input:
            tensor = tensor_of(node.input[0])
            users = readers.get(node.output[0], [])
            if (tensor is not None and numpy_helper.to_array(tensor).tolist() == [traced] and users
                    and all(u.op_type == "Reshape" and u.input[1] == node.output[0] for u in users)
                    and all(tensor_of(i) is None for i in node.input[1:])):
                rewrite(tensor, [-1])
                count += 1
    return count


def strip(model):
    for n in model.graph.node:
        n.doc_string = ""
        del n.metadata_props[:]
    model.graph.doc_string = ""
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".cache/quality/diffcrysgen"))
    ap.add_argument("--batch", type=int, default=4, help="batch of the onnxruntime-vs-torch check")
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort
    import torch
    torch.set_num_threads(2)

    root = fetch(a.out)
    weights = root / "assets" / "saved-model" / "sdm.pt"
    if not weights.exists():
        sys.exit(f"{PACKAGE} {VERSION}: the sdist has no trained weights ({weights.relative_to(a.out)} missing)")
    model = load_model(root)
    net = model.denoise_fn_D  # diffcrysgen.model.Precond, the D the sampler calls
    from diffcrysgen.model import Precond

    lit = sampler_literals(root / PACKAGE / "sampler.py")
    pre_defaults = {k: v.default for k, v in inspect.signature(Precond.__init__).parameters.items()
                    if v.default is not inspect.Parameter.empty}
    # generate_samples clamps: sigma_min = max(sigma_min, net.sigma_min), sigma_max = min(sigma_max, net.sigma_max)
    sampler = {
        "sigma_min": max(float(lit["sigma_min"]), float(net.sigma_min)),
        "sigma_max": min(float(lit["sigma_max"]), float(net.sigma_max)),
        "sigma_data": float(net.sigma_data),
        "rho": float(lit["rho"]),
        "steps": int(lit["num_steps"]),
        "solver": "heun",
        "S_churn": float(lit["S_churn"]), "S_min": float(lit["S_min"]), "S_max": str(float(lit["S_max"])),
        "S_noise": float(lit["S_noise"]),
        "shape": [int(lit["img_channels"]), int(lit["img_resolution"])],
        "source": {
            "sigma_min, sigma_max, rho, steps (num_steps), S_churn, S_min, S_max, S_noise, shape "
            "(img_channels, img_resolution)": f"{PACKAGE}/sampler.py, literals in generate_samples; sigma_min/max "
                                              "clamped there to Precond's sigma_min=0 / sigma_max=inf",
            "sigma_data": f"{PACKAGE}/model.py, Precond.__init__ default sigma_data={pre_defaults['sigma_data']} "
                          "(Model builds Precond(denoise_fn) with defaults)",
            "weights": "assets/saved-model/sdm.pt (state dict of diffcrysgen.model.Model, UNet(in_c=3, out_c=3, "
                       "time_emb_dim=256))",
            "package": f"PyPI {PACKAGE}=={VERSION} sdist",
        },
        "notes": "The package's sampler is stochastic: gamma = min(S_churn/steps, sqrt(2)-1) = "
                 f"{min(float(lit['S_churn']) / int(lit['num_steps']), 2 ** 0.5 - 1):g} at every step "
                 "(S_min=0, S_max=inf), with fresh noise. Its outputs are x_N permuted to [batch, 136, 3], "
                 "mapped (x+1)/2 and through the MinMax scaler in assets/ircr_diffusion_scaler.pkl.",
    }
    (a.out / "sampler.json").write_text(json.dumps(sampler, indent=2) + "\n")

    ch, length = sampler["shape"]
    g = torch.Generator().manual_seed(0)
    traced = 5  # an example batch no other dimension or constant of the model has
    example = (torch.randn(traced, ch, length, generator=g), torch.tensor([1.0, 0.1, 10.0, 0.5, 2.0]))
    export_net = copy.deepcopy(net)
    convs = plain_convs(export_net)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(export_net, example, buf, dynamo=False, opset_version=OPSET, input_names=["sample", "sigma"],
                          output_names=["denoised"], do_constant_folding=True, export_params=True,
                          keep_initializers_as_inputs=False,
                          dynamic_axes={"sample": {0: "batch"}, "sigma": {0: "batch"}, "denoised": {0: "batch"}})
    proto = strip(onnx.load_from_string(buf.getvalue()))
    reshapes = dynamic_batch(proto, traced)
    print(f"export: {convs} WSConv1d as plain Conv1d, {reshapes} Reshape shapes made batch-independent")
    onnx.checker.check_model(proto)
    path = a.out / "denoiser.onnx"
    path.write_bytes(proto.SerializeToString())

    # onnxruntime against the package's torch module, at noise levels across the sampler's range.
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for sigma in [sampler["sigma_max"], 10.0, 1.0, sampler["sigma_data"], 0.05, sampler["sigma_min"]]:
        for b in (1, a.batch, 16):
            x = (torch.randn(b, ch, length, generator=g) * max(sigma, 1.0)).float()
            s = torch.full((b,), sigma, dtype=torch.float32)
            with torch.no_grad():
                want = net(x, s).numpy()
            got = sess.run(None, {"sample": x.numpy(), "sigma": s.numpy()})[0]
            err = float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))
            worst = max(worst, err)
            print(f"  sigma {sigma:<8g} batch {b}: max |ort - torch| (relative to max(1, |D|)) {err:.2e}")
    params = int(sum(int(np.prod(t.dims)) for t in proto.graph.initializer))
    torch_params = sum(p.numel() for p in net.parameters())
    print(f"{path}: {params:,} initializer values ({torch_params:,} torch parameters); ort vs torch worst {worst:.2e}")
    if worst > 1e-4:
        sys.exit("onnxruntime and torch disagree by more than 1e-4")
    print(f"{a.out / 'sampler.json'}: " + ", ".join(f"{k}={sampler[k]}" for k in
                                                   ("sigma_min", "sigma_max", "sigma_data", "rho", "steps", "S_churn")))


if __name__ == "__main__":
    main()
