#!/usr/bin/env python3
"""Generate the small example ONNX models that prunec's tests and examples use.

Every model is built from a configuration with random weights (seeded with
torch.manual_seed): nothing is downloaded from a model hub. Each model is exported
with both torch exporters where they work:

    legacy (TorchScript) exporter, opset 17  -> <name>.onnx
    dynamo (torch.export) exporter, opset 18 -> <name>.dynamo.onnx

and gets a calibration file <name>.calib.npz. The script then checks every file
(onnx.checker full_check, onnxruntime on all calibration sets) and writes
manifest.json. It is deterministic and idempotent: run it again and the same
bytes come out (on the same package versions, see requirements.txt).

Regenerate from the repository root:

    python3 -m venv .venv-models
    .venv-models/bin/pip install -r examples/models/requirements.txt
    .venv-models/bin/python examples/models/generate.py
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
N_SETS = 8  # calibration samples per model: the primary one + set1..set7
LEGACY_OPSET = 17
DYNAMO_OPSET = 18
MAX_MODEL_BYTES = 10 * 1024 * 1024


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu-conv-bn (+ 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class TinyResNet(nn.Module):
    """CIFAR-sized ResNet: stem, 3 stages (16, 32, 64 channels), global average pool, Linear."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def build_resnet() -> nn.Module:
    model = TinyResNet()
    # Non-trivial batch-norm statistics and affine parameters, so BN is not an identity.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


class BertWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state, out.pooler_output


def build_bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = "eager"
    return BertWrapper(BertModel(config, add_pooling_layer=True))


class LlamaWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        # An explicit all-ones mask: without one, transformers probes position ids for packed
        # sequences with aten::diff, which the legacy exporter cannot export.
        mask = torch.ones_like(input_ids)
        return self.model(input_ids=input_ids, attention_mask=mask, use_cache=False, return_dict=True).logits


def build_llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        use_cache=False,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    config._attn_implementation = "eager"
    return LlamaWrapper(LlamaForCausalLM(config))


class PlainAttnProcessor:
    """Attention as explicit MatMul/Softmax over a [batch, heads, seq, head_dim] layout.

    Replaces diffusers' processors: the default one calls fused SDPA, and the classic
    AttnProcessor bakes an uninitialized torch.empty tensor (baddbmm with beta=0) into the
    exported graph as a large, non-deterministic constant.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        assert attention_mask is None and attn.spatial_norm is None and attn.group_norm is None
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        q = attn.to_q(hidden_states)
        k = attn.to_k(encoder_hidden_states)
        v = attn.to_v(encoder_hidden_states)
        batch, q_len, inner = q.shape
        kv_len = k.shape[1]
        heads = attn.heads
        head_dim = inner // heads
        q = q.view(batch, q_len, heads, head_dim).transpose(1, 2)
        k = k.view(batch, kv_len, heads, head_dim).transpose(1, 2)
        v = v.view(batch, kv_len, heads, head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scale
        probs = scores.softmax(dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, q_len, inner)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _classic_attention(model: nn.Module) -> None:
    """Use explicit MatMul/Softmax attention instead of fused SDPA."""
    from diffusers.models.attention_processor import Attention

    for m in model.modules():
        if isinstance(m, Attention):
            m.set_processor(PlainAttnProcessor())


class UNetWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def build_unet() -> nn.Module:
    from diffusers import UNet2DConditionModel

    model = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    _classic_attention(model)
    return UNetWrapper(model)


class DiTWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, class_labels):
        return self.model(sample, timestep=timestep, class_labels=class_labels, return_dict=False)[0]


def build_dit() -> nn.Module:
    from diffusers import DiTTransformer2DModel

    model = DiTTransformer2DModel(
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=10,
        norm_type="ada_norm_zero",
    )
    _classic_attention(model)
    return DiTWrapper(model)


# --------------------------------------------------------------------------------------
# Calibration data
# --------------------------------------------------------------------------------------


def calib_resnet(rng: np.random.Generator, i: int) -> dict[str, np.ndarray]:
    return {"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}


def _token_batch(rng: np.random.Generator, i: int, with_mask: bool) -> dict[str, np.ndarray]:
    seq = 16
    ids = rng.integers(0, 1000, size=(1, seq), dtype=np.int64)
    out = {"input_ids": ids}
    if with_mask:
        pad = [0, 0, 2, 4, 0, 3, 1, 5][i % 8]  # trailing padding in some samples
        mask = np.ones((1, seq), dtype=np.int64)
        if pad:
            mask[:, seq - pad :] = 0
            ids[:, seq - pad :] = 0
        out["attention_mask"] = mask
    return out


def calib_bert(rng, i):
    return _token_batch(rng, i, with_mask=True)


def calib_llama(rng, i):
    return _token_batch(rng, i, with_mask=False)


def calib_unet(rng, i):
    return {
        "sample": rng.standard_normal((1, 4, 16, 16)).astype(np.float32),
        "timestep": np.array([rng.integers(0, 1000)], dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((1, 8, 32)).astype(np.float32),
    }


def calib_dit(rng, i):
    return {
        "sample": rng.standard_normal((1, 4, 8, 8)).astype(np.float32),
        "timestep": np.array([rng.integers(0, 1000)], dtype=np.float32),
        "class_labels": np.array([rng.integers(0, 10)], dtype=np.int64),
    }


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


@dataclass
class Spec:
    name: str
    description: str
    build: Callable[[], nn.Module]
    calib: Callable[[np.random.Generator, int], dict[str, np.ndarray]]
    input_names: list[str]
    output_names: list[str]
    legacy_dynamic_axes: dict | None = None
    dynamo_dynamic_shapes: Callable[[], dict] | None = None
    legacy_constant_folding: bool = True
    notes: list[str] = field(default_factory=list)


def _bert_dynamic_shapes():
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("sequence", min=2, max=64)
    return {
        "input_ids": {0: batch, 1: seq},
        "attention_mask": {0: batch, 1: seq},
    }


SPECS = [
    Spec(
        "resnet",
        "ResNet-style CNN (Conv+BatchNorm+ReLU, residual Adds, strided blocks with 1x1 projection, "
        "global average pool, Linear), CIFAR-sized, 10 classes",
        build_resnet,
        calib_resnet,
        ["input"],
        ["logits"],
        legacy_constant_folding=False,  # keep BatchNormalization nodes (no Conv+BN fusion)
    ),
    Spec(
        "bert",
        "BERT encoder (transformers BertModel: hidden 64, 2 layers, 4 heads, FFN 128, vocab 1000, "
        "eager attention) with pooler",
        build_bert,
        calib_bert,
        ["input_ids", "attention_mask"],
        ["last_hidden_state", "pooler_output"],
        legacy_dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "last_hidden_state": {0: "batch", 1: "sequence"},
            "pooler_output": {0: "batch"},
        },
        dynamo_dynamic_shapes=_bert_dynamic_shapes,
    ),
    Spec(
        "llama",
        "Llama decoder (transformers LlamaForCausalLM: hidden 64, 2 layers, 4 heads, SwiGLU FFN 128, "
        "RMSNorm, RoPE, vocab 1000, eager attention, no KV cache) -> logits",
        build_llama,
        calib_llama,
        ["input_ids"],
        ["logits"],
    ),
    Spec(
        "unet",
        "diffusers UNet2DConditionModel denoiser (16x16x4 latents, blocks (32, 64), 1 layer per block, "
        "cross-attention dim 32, GroupNorm 8 groups, 8 heads, explicit MatMul/Softmax attention)",
        build_unet,
        calib_unet,
        ["sample", "timestep", "encoder_hidden_states"],
        ["out_sample"],
    ),
    Spec(
        "dit",
        "diffusers DiTTransformer2DModel denoiser (8x8x4 latents, patch 2, 2 layers, 4 heads x 8, "
        "adaLN-Zero, 10 class labels, explicit MatMul/Softmax attention)",
        build_dit,
        calib_dit,
        ["sample", "timestep", "class_labels"],
        ["out_sample"],
    ),
]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (as np.savez writes) with fixed zip timestamps, so the bytes are reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            arr = np.ascontiguousarray(arrays[key])
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def calibration_sets(spec: Spec) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    return [spec.calib(rng, i) for i in range(N_SETS)]


def calibration_archive(sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = dict(sets[0])
    for i, s in enumerate(sets[1:], start=1):
        for k, v in s.items():
            out[f"set{i}.{k}"] = v
    return out


def strip_and_stamp(model: onnx.ModelProto, spec: Spec, exporter: str) -> onnx.ModelProto:
    """Drop doc strings and node metadata (stack traces hold machine-specific paths)."""

    def clean_graph(g: onnx.GraphProto) -> None:
        g.doc_string = ""
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            vi.doc_string = ""
            del vi.metadata_props[:]
        for t in g.initializer:
            t.doc_string = ""
            del t.metadata_props[:]
        del g.metadata_props[:]
        for n in g.node:
            n.doc_string = ""
            del n.metadata_props[:]
            for a in n.attribute:
                a.doc_string = ""
                if a.type == onnx.AttributeProto.GRAPH:
                    clean_graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        clean_graph(sg)

    model.doc_string = ""
    clean_graph(model.graph)
    for fn in model.functions:
        fn.doc_string = ""
        del fn.metadata_props[:]
        for n in fn.node:
            n.doc_string = ""
            del n.metadata_props[:]
    del model.metadata_props[:]
    for k, v in (
        ("prunec.example", spec.name),
        ("prunec.exporter", exporter),
        ("prunec.generator", "examples/models/generate.py"),
        ("prunec.seed", str(SEED)),
        ("prunec.weights", "random (seeded), not a trained model"),
    ):
        p = model.metadata_props.add()
        p.key, p.value = k, v
    model.graph.name = spec.name
    return model


def assert_no_external_data(model: onnx.ModelProto) -> None:
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"initializer {t.name} uses external data")


def export_legacy(spec: Spec, module: nn.Module, args: tuple) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buf,
            dynamo=False,
            opset_version=LEGACY_OPSET,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.legacy_dynamic_axes,
            do_constant_folding=spec.legacy_constant_folding,
            export_params=True,
            keep_initializers_as_inputs=False,
        )
    return onnx.load_from_string(buf.getvalue())


def export_dynamo(spec: Spec, module: nn.Module, args: tuple) -> tuple[onnx.ModelProto, list[str]]:
    notes = []

    def run(dynamic_shapes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=DYNAMO_OPSET,
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
        return prog.model_proto

    if spec.dynamo_dynamic_shapes is not None:
        try:
            return run(spec.dynamo_dynamic_shapes()), notes
        except Exception as e:  # fall back to static shapes
            notes.append(f"dynamic shapes failed, exported static: {one_line(e)}")
    return run(None), notes


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def dims(vi: onnx.ValueInfoProto) -> list:
    out = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(d.dim_value)
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def io_desc(vi: onnx.ValueInfoProto) -> dict:
    return {
        "name": vi.name,
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name,
        "shape": dims(vi),
    }


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    hist: collections.Counter = collections.Counter()

    def walk(g: onnx.GraphProto):
        for n in g.node:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            hist[key] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)

    walk(model.graph)
    return dict(sorted(hist.items()))


def param_count(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        total += n
    return total


def verify(path: Path, sets: list[dict[str, np.ndarray]], torch_ref: list[np.ndarray]) -> float:
    model = onnx.load(str(path), load_external_data=False)
    assert_no_external_data(model)
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path.read_bytes(), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    max_diff = 0.0
    for i, s in enumerate(sets):
        outs = sess.run(None, {k: s[k] for k in names})
        for o in outs:
            if not np.all(np.isfinite(o)):
                raise RuntimeError(f"{path.name}: non-finite output on set {i}")
        if i == 0:
            for o, r in zip(outs, torch_ref):
                max_diff = max(max_diff, float(np.max(np.abs(o - r))))
    return max_diff


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_entry(path: Path, exporter: str, spec: Spec, notes: list[str]) -> dict:
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    graph_inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    entry = {
        "file": path.name,
        "model": spec.name,
        "exporter": exporter,
        "sha256": sha256(data),
        "bytes": len(data),
        "params": param_count(model),
        "initializers": len(model.graph.initializer),
        "nodes": len(model.graph.node),
        "ir_version": model.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [io_desc(i) for i in graph_inputs],
        "outputs": [io_desc(o) for o in model.graph.output],
        "ops": op_histogram(model),
        "calibration": f"{spec.name}.calib.npz",
    }
    if notes:
        entry["notes"] = notes
    return entry


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def generate(spec: Spec, out_dir: Path, manifest: dict, log) -> None:
    sets = calibration_sets(spec)
    calib = calibration_archive(sets)
    calib_path = out_dir / f"{spec.name}.calib.npz"
    calib_data = npz_bytes(calib)
    atomic_write(calib_path, calib_data)
    manifest["calibration"].append(
        {
            "file": calib_path.name,
            "model": spec.name,
            "sha256": sha256(calib_data),
            "bytes": len(calib_data),
            "samples": N_SETS,
            "keys": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in sorted(calib.items())},
        }
    )

    args = tuple(torch.from_numpy(sets[0][n].copy()) for n in spec.input_names)

    for exporter, suffix in (("legacy", ".onnx"), ("dynamo", ".dynamo.onnx")):
        path = out_dir / f"{spec.name}{suffix}"
        seed_everything(SEED)
        module = spec.build().eval()
        with torch.no_grad():
            ref = module(*args)
        ref = [r.detach().numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
        notes = list(spec.notes)
        try:
            with torch.no_grad():
                if exporter == "legacy":
                    model = export_legacy(spec, module, args)
                else:
                    model, extra = export_dynamo(spec, module, args)
                    notes += extra
            assert_no_external_data(model)
            model = strip_and_stamp(model, spec, exporter)
            data = model.SerializeToString(deterministic=True)
            if len(data) > MAX_MODEL_BYTES:
                raise RuntimeError(f"model is {len(data)} bytes, over {MAX_MODEL_BYTES}")
            for needle in (str(HERE), str(Path.home()), "site-packages"):
                if needle.encode() in data:
                    raise RuntimeError(f"model contains a machine-specific string {needle!r}")
            atomic_write(path, data)
            diff = verify(path, sets, ref)
        except Exception as e:
            if path.exists():
                path.unlink()
            line = one_line(e)
            manifest["failures"].append({"model": spec.name, "exporter": exporter, "error": line})
            log(f"  {exporter:6s} FAILED {line}")
            continue
        entry = manifest_entry(path, exporter, spec, notes)
        manifest["models"].append(entry)
        log(
            f"  {exporter:6s} {path.name:22s} {entry['bytes']:>9d} B  params={entry['params']:>8d}  "
            f"nodes={entry['nodes']:>5d}  max|ort-torch|={diff:.2e}" + (f"  notes={notes}" if notes else "")
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="generate only these models (no manifest is written)")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    opts = ap.parse_args(argv)

    torch.set_num_threads(1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    specs = [s for s in SPECS if not opts.only or s.name in opts.only]
    if opts.only and len(specs) != len(set(opts.only)):
        ap.error(f"unknown model in --only; known: {[s.name for s in SPECS]}")
    out_dir = opts.out
    out_dir.mkdir(parents=True, exist_ok=True)

    manifest = {
        "generator": "examples/models/generate.py",
        "seed": SEED,
        "versions": {
            "torch": torch.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "transformers": _version("transformers"),
            "diffusers": _version("diffusers"),
            "onnxscript": _version("onnxscript"),
        },
        "models": [],
        "calibration": [],
        "failures": [],
        "descriptions": {s.name: s.description for s in specs},
    }

    def log(msg):
        print(msg, flush=True)

    for spec in specs:
        log(f"{spec.name}:")
        generate(spec, out_dir, manifest, log)

    if not opts.only:
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        atomic_write(out_dir / "manifest.json", text.encode())
        log(f"wrote {out_dir / 'manifest.json'}")
    if manifest["failures"]:
        log(f"{len(manifest['failures'])} export(s) failed (recorded in the manifest)")
    return 0


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


if __name__ == "__main__":
    sys.exit(main())
