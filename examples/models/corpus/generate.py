#!/usr/bin/env python3
"""Generate prunec's corpus of transformer variants that users actually export.

Small models (hidden 64, 2 layers, vocab 256) with random, seeded weights, built from
transformers configurations (nothing is downloaded), plus derived files:

  * exports: legacy (TorchScript) opset 17 -> <name>.onnx, dynamo opset 18 -> <name>.dynamo.onnx
  * low precision: <name>.fp16.onnx (onnxruntime's float16 converter, fp32 I/O) and
    <name>.bf16.onnx (this script's converter: bf16 weights and compute, fp32 I/O)
  * onnxruntime transformer-optimizer outputs: <name>.ort-<model_type>.onnx (com.microsoft ops)
  * a hand-built opset-23 decoder with the standard Attention / RMSNormalization /
    RotaryEmbedding ops (weights taken from a transformers Llama, so it is checked against torch)

Every file is checked with onnx.checker (full_check) and run with onnxruntime (CPU) on all 8
calibration sets, and on a second sequence length where the sequence dim is dynamic. Failures are
recorded in manifest.json (`failures`, or `ort_runs: false` on the entry), never dropped silently.

Regenerate from the repository root (same venv as examples/models/generate.py):

    python examples/models/corpus/generate.py            # all
    python examples/models/corpus/generate.py --only qwen2  # some (no manifest is written)
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent

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
VOCAB = 256  # smaller than the examples' 1000: the embedding and LM head dominate the file sizes
SEQ = 16
SEQ_ALT = 9  # the second sequence length run where the sequence dim is dynamic
MAX_MODEL_BYTES = 3 * 1024 * 1024
GENERATOR = "examples/models/corpus/generate.py"

TOKEN_IO_AXES = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}


# --------------------------------------------------------------------------------------
# Source models (transformers configurations, random weights)
# --------------------------------------------------------------------------------------


class CausalLMWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=True
        ).logits


class EncoderWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


def _randomize_norms(model: nn.Module, center: float = 1.0) -> nn.Module:
    """transformers initializes norm weights to ones (biases to zero): every norm would share one
    constant, and the dynamo exporter's optimizer deduplicates equal initializers. Make them distinct."""
    with torch.no_grad():
        for m in model.modules():
            if "Norm" in type(m).__name__ and isinstance(getattr(m, "weight", None), torch.Tensor):
                m.weight.normal_(center, 0.1)
                if isinstance(getattr(m, "bias", None), torch.Tensor):
                    m.bias.normal_(0.0, 0.1)
    return model


def _eager(config, impl="eager"):
    config._attn_implementation = impl
    return config


LLAMA_GQA = dict(hidden=64, heads=8, kv_heads=2, head_dim=8, intermediate=128, layers=2)
QWEN2 = dict(hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, layers=2)
GEMMA = dict(hidden=64, heads=4, kv_heads=1, head_dim=32, intermediate=128, layers=2)
GEMMA2 = dict(hidden=64, heads=4, kv_heads=2, head_dim=32, intermediate=128, layers=2)
GEMMA3 = dict(hidden=64, heads=4, kv_heads=2, head_dim=32, intermediate=128, layers=2)
MPNET = dict(hidden=64, heads=4, kv_heads=4, head_dim=16, intermediate=128, layers=2)
DEBERTA = dict(hidden=64, heads=4, kv_heads=4, head_dim=16, intermediate=128, layers=2)
GPT2 = dict(hidden=64, heads=4, kv_heads=4, head_dim=16, intermediate=256, layers=2)
BERT = dict(hidden=64, heads=4, kv_heads=4, head_dim=16, intermediate=128, layers=2, vocab=1000)
OPSET23 = dict(hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, layers=2)


def _llama_config(a, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        max_position_embeddings=64,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        use_cache=False,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        **kw,
    )


def build_llama_gqa(impl="eager") -> nn.Module:
    from transformers import LlamaForCausalLM

    return CausalLMWrapper(_randomize_norms(LlamaForCausalLM(_eager(_llama_config(LLAMA_GQA), impl))))


def build_qwen2() -> nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    a = QWEN2
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        use_cache=False,
        tie_word_embeddings=False,
        use_sliding_window=False,
        attention_dropout=0.0,
    )
    model = _randomize_norms(Qwen2ForCausalLM(_eager(config)))
    with torch.no_grad():  # transformers initializes biases to zero; make them visible
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.1)
    return CausalLMWrapper(model)


def build_gemma() -> nn.Module:
    from transformers import GemmaConfig, GemmaForCausalLM

    a = GEMMA
    config = GemmaConfig(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        max_position_embeddings=64,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        use_cache=False,
        attention_dropout=0.0,
    )
    # Gemma's RMSNorm scales by (1 + w) and initializes w to zero
    return CausalLMWrapper(_randomize_norms(GemmaForCausalLM(_eager(config)), center=0.0))


def build_gemma2() -> nn.Module:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    a = GEMMA2
    config = Gemma2Config(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        max_position_embeddings=64,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=a["head_dim"],
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        rms_norm_eps=1e-6,
        use_cache=False,
        attention_dropout=0.0,
    )
    return CausalLMWrapper(_randomize_norms(Gemma2ForCausalLM(_eager(config)), center=0.0))


def build_gemma3() -> nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    a = GEMMA3
    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        intermediate_size=a["intermediate"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        num_key_value_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        max_position_embeddings=64,
        hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=a["head_dim"],
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        rms_norm_eps=1e-6,
        use_cache=False,
        attention_dropout=0.0,
    )
    return CausalLMWrapper(_randomize_norms(Gemma3ForCausalLM(_eager(config)), center=0.0))


def build_mpnet() -> nn.Module:
    from transformers import MPNetConfig, MPNetModel

    a = MPNET
    config = MPNetConfig(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        intermediate_size=a["intermediate"],
        max_position_embeddings=66,
        relative_attention_num_buckets=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return EncoderWrapper(_randomize_norms(MPNetModel(_eager(config), add_pooling_layer=False)))


def build_deberta() -> nn.Module:
    from transformers import DebertaV2Config, DebertaV2Model

    a = DEBERTA
    config = DebertaV2Config(
        vocab_size=VOCAB,
        hidden_size=a["hidden"],
        num_hidden_layers=a["layers"],
        num_attention_heads=a["heads"],
        intermediate_size=a["intermediate"],
        max_position_embeddings=64,
        relative_attention=True,
        position_buckets=32,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return EncoderWrapper(_randomize_norms(DebertaV2Model(_eager(config))))


def build_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    a = GPT2
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=a["hidden"],
        n_layer=a["layers"],
        n_head=a["heads"],
        n_inner=a["intermediate"],
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
    )
    return CausalLMWrapper(_randomize_norms(GPT2LMHeadModel(_eager(config))))


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


def calib_tokens(rng, i):
    """Like the examples' token batches (trailing padding in some sets), with this corpus's vocabulary."""
    ids = rng.integers(0, VOCAB, size=(1, SEQ), dtype=np.int64)
    mask = np.ones((1, SEQ), dtype=np.int64)
    pad = [0, 0, 2, 4, 0, 3, 1, 5][i % 8]
    if pad:
        mask[:, SEQ - pad :] = 0
        ids[:, SEQ - pad :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _token_dynamic_shapes():
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("sequence", min=2, max=64)
    return {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}


@dataclass
class Source:
    name: str
    description: str
    pattern: str
    arch: dict
    build: Callable[[], nn.Module]
    output_names: list[str]
    exporters: tuple = ("legacy", "dynamo")
    notes: list[str] = field(default_factory=list)

    def spec(self) -> base.Spec:
        out_axes = {o: {0: "batch", 1: "sequence"} for o in self.output_names}
        return base.Spec(
            self.name,
            self.description,
            self.build,
            calib_tokens,
            ["input_ids", "attention_mask"],
            self.output_names,
            legacy_dynamic_axes={**TOKEN_IO_AXES, **out_axes},
            dynamo_dynamic_shapes=_token_dynamic_shapes,
        )


SOURCES = [
    Source(
        "llama-gqa",
        "transformers LlamaForCausalLM: hidden 64, 2 layers, 8 query heads / 2 KV heads (GQA, 4 query "
        "heads per KV head), head_dim 8, SwiGLU FFN 128, RMSNorm, RoPE, vocab 256, eager attention, "
        "no KV cache -> logits",
        "GQA: repeat_kv (Unsqueeze/Expand/Reshape of K and V from 2 to 8 heads) before the score MatMul; "
        "RoPE rotate_half (Slice/Neg/Concat) on q and k",
        LLAMA_GQA,
        build_llama_gqa,
        ["logits"],
    ),
    Source(
        "qwen2",
        "transformers Qwen2ForCausalLM: hidden 64, 2 layers, 4 query heads / 2 KV heads (GQA), head_dim 16, "
        "q/k/v projections with (non-zero) biases, o_proj without, SwiGLU FFN 128, RMSNorm, RoPE, vocab 256",
        "GQA + biased q/k/v projections (MatMul+Add per projection; pruning a KV head must slice the bias too)",
        QWEN2,
        build_qwen2,
        ["logits"],
    ),
    Source(
        "gemma",
        "transformers GemmaForCausalLM: hidden 64, 2 layers, 4 query heads / 1 KV head (MQA), head_dim 32 "
        "(heads*head_dim = 128 != hidden 64), GeGLU (tanh GELU) FFN 128, RMSNorm with (1 + w), embeddings "
        "scaled by sqrt(hidden), tied LM head, RoPE, vocab 256",
        "MQA (1 KV head shared by all query heads) and head_dim != hidden/heads (q_proj 64->128, o_proj 128->64); "
        "tied embedding/LM head",
        GEMMA,
        build_gemma,
        ["logits"],
    ),
    Source(
        "gemma2",
        "transformers Gemma2ForCausalLM: hidden 64, 2 layers (sliding-window 8, then full attention), 4 query heads / "
        "2 KV heads, head_dim 32, attention-logit soft-capping 50 and final-logit soft-capping 30, pre- and post-norms "
        "around attention and FFN (4 RMSNorms per layer), GeGLU FFN 128, tied LM head, RoPE, vocab 256",
        "soft-capping (Div, Tanh, Mul) between the score MatMul and Softmax; sandwich norms; a sliding-window "
        "causal mask in layer 0 (the window of 8 is shorter than the 16-token calibration sequences)",
        GEMMA2,
        build_gemma2,
        ["logits"],
    ),
    Source(
        "gemma3",
        "transformers Gemma3ForCausalLM (text): hidden 64, 2 layers (sliding-window 8 with rope theta 1e4, then full "
        "attention with rope theta 1e6), 4 query heads / 2 KV heads, head_dim 32, per-head q/k RMSNorm (q_norm, "
        "k_norm), sandwich norms, GeGLU FFN 128, tied LM head, vocab 256",
        "per-head q_norm/k_norm (an RMSNorm over head_dim whose [head_dim] weight every head shares) between the "
        "projection and RoPE; two RoPE tables; sliding-window mask",
        GEMMA3,
        build_gemma3,
        ["logits"],
    ),
    Source(
        "mpnet",
        "transformers MPNetModel encoder: hidden 64, 2 layers, 4 heads, FFN 128, vocab 256, 32 relative "
        "position buckets, no pooler",
        "relative position bias: a bucketed [heads, seq, seq] bias (Embedding lookup, computed once) added to "
        "every layer's attention scores before Softmax; pruning heads must slice the bias table's head axis",
        MPNET,
        build_mpnet,
        ["last_hidden_state"],
    ),
    Source(
        "deberta",
        "transformers DebertaV2Model encoder: hidden 64, 2 layers, 4 heads, FFN 128, vocab 256, disentangled "
        "attention (c2p + p2c), shared attention keys, 32 position buckets, no absolute positions",
        "disentangled relative attention: relative position embeddings projected by the layer's own query/key "
        "projections, c2p/p2c scores gathered (GatherElements) and added to the content scores",
        DEBERTA,
        build_deberta,
        ["last_hidden_state"],
    ),
    Source(
        "gpt2",
        "transformers GPT2LMHeadModel: hidden 64, 2 layers, 4 heads, FFN 256, learned positions, Conv1D "
        "(fused c_attn: one 64->192 projection split into q/k/v), tied LM head, vocab 256",
        "fused QKV projection (one MatMul then Split into q/k/v); the source of gpt2.ort-gpt2.onnx",
        GPT2,
        build_gpt2,
        ["logits"],
    ),
]

BERT_DESC = (
    "examples/models/bert.onnx (transformers BertModel: hidden 64, 2 layers, 4 heads, FFN 128, vocab 1000, "
    "pooler; legacy exporter, opset 17)"
)


# --------------------------------------------------------------------------------------
# bf16 converter
# --------------------------------------------------------------------------------------

FLOAT, BF16 = TensorProto.FLOAT, TensorProto.BFLOAT16


def _bf16_tensor(t: TensorProto) -> TensorProto:
    import ml_dtypes

    arr = numpy_helper.to_array(t).astype(ml_dtypes.bfloat16)
    out = TensorProto()
    out.name = t.name
    out.data_type = BF16
    out.dims.extend(arr.shape)
    out.raw_data = np.ascontiguousarray(arr).view(np.uint16).tobytes()
    return out


def convert_float_to_bfloat16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """float32 -> bfloat16 weights and compute, float32 graph inputs and outputs.

    A node computes in bf16 when every type constraint that binds one of its float tensors allows
    tensor(bfloat16) at the model's opset; otherwise it stays fp32 and gets Casts around it. Float
    initializers feeding a bf16 node become bfloat16; Cast(to=FLOAT) and float Constants whose
    consumers all compute in bf16 now produce bfloat16. value_info is inferred again.
    """
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = model.graph
    for n in g.node:
        for a in n.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise RuntimeError("subgraphs are not supported")
    opset = {(o.domain or ""): o.version for o in model.opset_import}
    types: dict[str, int] = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    inits = {t.name: t for t in g.initializer}
    for t in g.initializer:
        types[t.name] = t.data_type
    is_float = lambda name: bool(name) and types.get(name) == FLOAT  # noqa: E731

    consumers = collections.defaultdict(list)
    for idx, n in enumerate(g.node):
        for x in n.input:
            if x:
                consumers[x].append(idx)
    graph_outputs = {o.name for o in g.output}

    def bf16_capable(n: onnx.NodeProto) -> bool:
        schema = onnx.defs.get_schema(n.op_type, opset[n.domain], n.domain)
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        involved = False
        for formals, names in ((schema.inputs, n.input), (schema.outputs, n.output)):
            for i, name in enumerate(names):
                if not is_float(name):
                    continue
                involved = True
                f = formals[min(i, len(formals) - 1)]
                if "tensor(bfloat16)" not in allowed.get(f.type_str, {f.type_str}):
                    return False
        return involved

    # Modes: "bf16", "fp32" (computes in float, casts around it), "free" (Cast/Constant: decided below).
    mode = []
    for n in g.node:
        if not any(is_float(x) for x in list(n.input) + list(n.output)):
            mode.append("none")  # no float tensors (shape arithmetic, integer ops)
        elif n.domain not in ("", "ai.onnx"):
            mode.append("fp32")
        elif n.op_type in ("Cast", "Constant"):
            mode.append("free")
        else:
            mode.append("bf16" if bf16_capable(n) else "fp32")
    stats = collections.Counter()
    for idx, n in enumerate(g.node):
        if mode[idx] == "fp32":
            stats[f"fp32 (no bf16 at opset {opset[n.domain]}): {n.op_type}"] += 1
        if mode[idx] == "bf16":
            stats["bf16 nodes"] += 1
        if mode[idx] != "free":
            continue
        out = n.output[0]
        users = [mode[c] for c in consumers[out] if mode[c] not in ("free", "none")]
        if is_float(out) and users and all(u == "bf16" for u in users) and out not in graph_outputs:
            mode[idx] = "bf16"
            if n.op_type == "Cast":
                for a in n.attribute:
                    if a.name == "to":
                        a.i = BF16
            else:
                for a in n.attribute:
                    if a.name == "value" and a.t.data_type == FLOAT:
                        a.t.CopyFrom(_bf16_tensor(a.t))
        stats[f"{n.op_type}:{mode[idx]}"] += 1

    new_type: dict[str, int] = {}
    for name in types:
        if types[name] == FLOAT:
            new_type[name] = FLOAT
    for name, t in inits.items():
        if t.data_type == FLOAT and any(mode[c] == "bf16" for c in consumers[name]):
            new_type[name] = BF16
            t.CopyFrom(_bf16_tensor(t))
            stats["initializers->bf16"] += 1
    for idx, n in enumerate(g.node):
        if mode[idx] == "bf16":
            for o in n.output:
                if is_float(o):
                    new_type[o] = BF16
            for a in n.attribute:  # e.g. ConstantOfShape's value at opsets where it allows bf16
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT:
                    a.t.CopyFrom(_bf16_tensor(a.t))

    nodes: list[onnx.NodeProto] = []
    cast_cache: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in cast_cache:
            out = f"{name}/to_{'bf16' if to == BF16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=out + "/Cast", to=to))
            cast_cache[key] = out
            stats["inserted Cast"] += 1
        return cast_cache[key]

    for idx, n in enumerate(g.node):
        if mode[idx] in ("bf16", "fp32") and not (n.op_type == "Cast"):
            want = BF16 if mode[idx] == "bf16" else FLOAT
            for i, x in enumerate(n.input):
                if is_float(x) and new_type[x] != want:
                    n.input[i] = cast(x, want)
        nodes.append(n)
    # fp32 graph outputs
    renames = {}
    for o in g.output:
        if new_type.get(o.name) == BF16:
            renames[o.name] = o.name + "/bf16"
    for n in nodes:
        for i, x in enumerate(n.input):
            if x in renames:
                n.input[i] = renames[x]
        for i, x in enumerate(n.output):
            if x in renames:
                n.output[i] = renames[x]
    for orig, inner in renames.items():
        nodes.append(helper.make_node("Cast", [inner], [orig], name=orig + "/to_fp32/Cast", to=FLOAT))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return model, dict(sorted(stats.items()))


# --------------------------------------------------------------------------------------
# Hand-built opset-23 decoder (Attention, RMSNormalization, RotaryEmbedding)
# --------------------------------------------------------------------------------------


def build_opset23_decoder() -> tuple[onnx.ModelProto, nn.Module]:
    """A 2-layer GQA decoder with the opset-23 standard ops, weights from a transformers Llama.

    Returns the ONNX model and the torch module it reproduces (for the reference output)."""
    from transformers import LlamaForCausalLM

    a = OPSET23
    seed_all()
    torch_model = CausalLMWrapper(_randomize_norms(LlamaForCausalLM(_eager(_llama_config(a))))).eval()
    m = torch_model.model
    H, Hq, Hkv, D, F = a["hidden"], a["heads"], a["kv_heads"], a["head_dim"], a["intermediate"]
    eps = m.config.rms_norm_eps
    inits: list[TensorProto] = []

    def w(name, t: torch.Tensor) -> str:
        inits.append(numpy_helper.from_array(t.detach().numpy().astype(np.float32), name))
        return name

    def const(name, arr) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    # RoPE caches [max_pos, head_dim/2] (RotaryEmbedding with position_ids)
    rope = m.model.rotary_emb
    inv_freq = rope.inv_freq.detach().double().numpy()
    pos = np.arange(m.config.max_position_embeddings, dtype=np.float64)
    freqs = np.outer(pos, inv_freq) * float(getattr(rope, "attention_scaling", 1.0))
    const("rope.cos", np.cos(freqs).astype(np.float32))
    const("rope.sin", np.sin(freqs).astype(np.float32))
    const("one_i64", np.array(1, np.int64))
    const("zero_i64", np.array(0, np.int64))
    const("axes_1", np.array([1], np.int64))
    const("axes_12", np.array([1, 2], np.int64))
    const("ones_1", np.array([1], np.int64))
    const("ones_2", np.array([1, 1], np.int64))

    nodes = [
        helper.make_node("Gather", ["embed.weight", "input_ids"], ["h0"], name="embed"),
        # position_ids = cumsum(mask) - 1, clamped at 0 (what transformers does for padded batches)
        helper.make_node("CumSum", ["attention_mask", "one_i64"], ["mask_cumsum"], name="pos/cumsum"),
        helper.make_node("Sub", ["mask_cumsum", "one_i64"], ["pos_raw"], name="pos/sub"),
        helper.make_node("Max", ["pos_raw", "zero_i64"], ["position_ids"], name="pos/max"),
        # padding mask [batch, 1, seq, seq] (bool, keys only; Attention applies is_causal on top).
        # onnxruntime wants the mask's query dim to equal the query length (no broadcast there).
        helper.make_node("Cast", ["attention_mask"], ["mask_bool"], name="mask/cast", to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["mask_bool", "axes_12"], ["mask_b11s"], name="mask/unsqueeze"),
        helper.make_node("Shape", ["input_ids"], ["seq_len"], name="mask/seq_len", start=1, end=2),
        helper.make_node("Concat", ["ones_2", "seq_len", "ones_1"], ["mask_shape"], name="mask/shape", axis=0),
        helper.make_node("Expand", ["mask_b11s", "mask_shape"], ["attn_mask"], name="mask/expand"),
    ]
    w("embed.weight", m.model.embed_tokens.weight)
    h = "h0"
    for li, layer in enumerate(m.model.layers):
        p = f"layers.{li}"
        att = layer.self_attn
        w(f"{p}.input_layernorm.weight", layer.input_layernorm.weight)
        w(f"{p}.q_proj", att.q_proj.weight.T)
        w(f"{p}.k_proj", att.k_proj.weight.T)
        w(f"{p}.v_proj", att.v_proj.weight.T)
        w(f"{p}.o_proj", att.o_proj.weight.T)
        w(f"{p}.post_attention_layernorm.weight", layer.post_attention_layernorm.weight)
        w(f"{p}.gate_proj", layer.mlp.gate_proj.weight.T)
        w(f"{p}.up_proj", layer.mlp.up_proj.weight.T)
        w(f"{p}.down_proj", layer.mlp.down_proj.weight.T)
        n = lambda op, ins, outs, **kw: helper.make_node(op, ins, outs, name=f"{p}/{outs[0]}", **kw)  # noqa
        nodes += [
            n("RMSNormalization", [h, f"{p}.input_layernorm.weight"], [f"{p}.ln1"], axis=-1, epsilon=eps),
            n("MatMul", [f"{p}.ln1", f"{p}.q_proj"], [f"{p}.q"]),
            n("MatMul", [f"{p}.ln1", f"{p}.k_proj"], [f"{p}.k"]),
            n("MatMul", [f"{p}.ln1", f"{p}.v_proj"], [f"{p}.v"]),
            n("RotaryEmbedding", [f"{p}.q", "rope.cos", "rope.sin", "position_ids"], [f"{p}.q_rot"],
              num_heads=Hq, interleaved=0),
            n("RotaryEmbedding", [f"{p}.k", "rope.cos", "rope.sin", "position_ids"], [f"{p}.k_rot"],
              num_heads=Hkv, interleaved=0),
            n("Attention", [f"{p}.q_rot", f"{p}.k_rot", f"{p}.v", "attn_mask"], [f"{p}.attn"],
              q_num_heads=Hq, kv_num_heads=Hkv, is_causal=1, scale=float(D) ** -0.5),
            n("MatMul", [f"{p}.attn", f"{p}.o_proj"], [f"{p}.attn_out"]),
            n("Add", [h, f"{p}.attn_out"], [f"{p}.h_mid"]),
            n("RMSNormalization", [f"{p}.h_mid", f"{p}.post_attention_layernorm.weight"], [f"{p}.ln2"],
              axis=-1, epsilon=eps),
            n("MatMul", [f"{p}.ln2", f"{p}.gate_proj"], [f"{p}.gate"]),
            n("Sigmoid", [f"{p}.gate"], [f"{p}.gate_sig"]),
            n("Mul", [f"{p}.gate", f"{p}.gate_sig"], [f"{p}.gate_silu"]),
            n("MatMul", [f"{p}.ln2", f"{p}.up_proj"], [f"{p}.up"]),
            n("Mul", [f"{p}.gate_silu", f"{p}.up"], [f"{p}.act"]),
            n("MatMul", [f"{p}.act", f"{p}.down_proj"], [f"{p}.mlp_out"]),
            n("Add", [f"{p}.h_mid", f"{p}.mlp_out"], [f"{p}.h_out"]),
        ]
        h = f"{p}.h_out"
    w("norm.weight", m.model.norm.weight)
    w("lm_head", m.lm_head.weight.T)
    nodes += [
        helper.make_node("RMSNormalization", [h, "norm.weight"], ["h_final"], name="norm", axis=-1, epsilon=eps),
        helper.make_node("MatMul", ["h_final", "lm_head"], ["logits"], name="lm_head"),
    ]
    graph = helper.make_graph(
        nodes,
        "decoder-opset23",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], producer_name="prunec-corpus")
    model.ir_version = 11
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return model, torch_model


def build_contrib_decoder() -> tuple[onnx.ModelProto, nn.Module]:
    """The same decoder in the layout onnxruntime-genai's model builder emits for Llama-family models:
    SimplifiedLayerNormalization / com.microsoft SkipSimplifiedLayerNormalization, one packed QKV MatMul,
    com.microsoft GroupQueryAttention (do_rotary=1: RoPE inside the op, seqlens_k from the mask), no KV cache
    inputs. Weights from the same seeded transformers Llama as decoder-opset23."""
    from transformers import LlamaForCausalLM

    a = OPSET23
    seed_all()
    torch_model = CausalLMWrapper(_randomize_norms(LlamaForCausalLM(_eager(_llama_config(a))))).eval()
    m = torch_model.model
    Hq, Hkv, D = a["heads"], a["kv_heads"], a["head_dim"]
    eps = m.config.rms_norm_eps
    inits: list[TensorProto] = []

    def w(name, t) -> str:
        arr = t.detach().numpy() if isinstance(t, torch.Tensor) else t
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    rope = m.model.rotary_emb
    inv_freq = rope.inv_freq.detach().double().numpy()
    freqs = np.outer(np.arange(m.config.max_position_embeddings, dtype=np.float64), inv_freq)
    freqs *= float(getattr(rope, "attention_scaling", 1.0))
    w("cos_cache", np.cos(freqs).astype(np.float32))
    w("sin_cache", np.sin(freqs).astype(np.float32))
    w("one_i64", np.array([1], np.int64))
    w("one_i32", np.array(1, np.int32))
    w("embed.weight", m.model.embed_tokens.weight)
    nodes = [
        helper.make_node("Gather", ["embed.weight", "input_ids"], ["h0"], name="embed"),
        helper.make_node("ReduceSum", ["attention_mask", "one_i64"], ["mask_sum"], name="seqlens/sum", keepdims=0),
        helper.make_node("Cast", ["mask_sum"], ["mask_sum_i32"], name="seqlens/cast", to=TensorProto.INT32),
        helper.make_node("Sub", ["mask_sum_i32", "one_i32"], ["seqlens_k"], name="seqlens/sub"),
        helper.make_node("Shape", ["attention_mask"], ["total_len_1d"], name="total/shape", start=1, end=2),
        helper.make_node("Squeeze", ["total_len_1d"], ["total_len_i64"], name="total/squeeze"),
        helper.make_node("Cast", ["total_len_i64"], ["total_sequence_length"], name="total/cast",
                         to=TensorProto.INT32),
    ]
    layers = list(m.model.layers)
    w("layers.0.input_layernorm.weight", layers[0].input_layernorm.weight)
    nodes.append(helper.make_node("SimplifiedLayerNormalization", ["h0", "layers.0.input_layernorm.weight"],
                                  ["layers.0.ln1"], name="layers.0/ln1", axis=-1, epsilon=eps, stash_type=1))
    residual = "h0"
    for li, layer in enumerate(layers):
        p = f"layers.{li}"
        att = layer.self_attn
        qkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight], 0).T
        w(f"{p}.qkv_proj", qkv)
        w(f"{p}.o_proj", att.o_proj.weight.T)
        w(f"{p}.post_attention_layernorm.weight", layer.post_attention_layernorm.weight)
        w(f"{p}.gate_proj", layer.mlp.gate_proj.weight.T)
        w(f"{p}.up_proj", layer.mlp.up_proj.weight.T)
        w(f"{p}.down_proj", layer.mlp.down_proj.weight.T)
        ms = "com.microsoft"
        nodes += [
            helper.make_node("MatMul", [f"{p}.ln1", f"{p}.qkv_proj"], [f"{p}.qkv"], name=f"{p}/qkv"),
            helper.make_node("GroupQueryAttention",
                             [f"{p}.qkv", "", "", "", "", "seqlens_k", "total_sequence_length", "cos_cache",
                              "sin_cache"],
                             [f"{p}.attn", f"{p}.present_key", f"{p}.present_value"], name=f"{p}/gqa", domain=ms,
                             num_heads=Hq, kv_num_heads=Hkv, do_rotary=1, rotary_interleaved=0,
                             scale=float(D) ** -0.5),
            helper.make_node("MatMul", [f"{p}.attn", f"{p}.o_proj"], [f"{p}.attn_out"], name=f"{p}/o_proj"),
            helper.make_node("SkipSimplifiedLayerNormalization",
                             [f"{p}.attn_out", residual, f"{p}.post_attention_layernorm.weight"],
                             [f"{p}.ln2", "", "", f"{p}.h_mid"], name=f"{p}/ln2", domain=ms, epsilon=eps),
            helper.make_node("MatMul", [f"{p}.ln2", f"{p}.gate_proj"], [f"{p}.gate"], name=f"{p}/gate"),
            helper.make_node("Sigmoid", [f"{p}.gate"], [f"{p}.gate_sig"], name=f"{p}/gate_sig"),
            helper.make_node("Mul", [f"{p}.gate", f"{p}.gate_sig"], [f"{p}.gate_silu"], name=f"{p}/silu"),
            helper.make_node("MatMul", [f"{p}.ln2", f"{p}.up_proj"], [f"{p}.up"], name=f"{p}/up"),
            helper.make_node("Mul", [f"{p}.gate_silu", f"{p}.up"], [f"{p}.act"], name=f"{p}/act"),
            helper.make_node("MatMul", [f"{p}.act", f"{p}.down_proj"], [f"{p}.mlp_out"], name=f"{p}/down"),
        ]
        nxt = f"layers.{li + 1}" if li + 1 < len(layers) else "final"
        norm_w = layers[li + 1].input_layernorm.weight if li + 1 < len(layers) else m.model.norm.weight
        w(f"{nxt}.norm.weight", norm_w)
        nodes.append(helper.make_node(
            "SkipSimplifiedLayerNormalization", [f"{p}.mlp_out", f"{p}.h_mid", f"{nxt}.norm.weight"],
            [f"{nxt}.ln1" if nxt != "final" else "h_final", "", "", f"{p}.h_out"], name=f"{nxt}/ln1", domain=ms,
            epsilon=eps))
        residual = f"{p}.h_out"
    w("lm_head", m.lm_head.weight.T)
    nodes.append(helper.make_node("MatMul", ["h_final", "lm_head"], ["logits"], name="lm_head"))
    graph = helper.make_graph(
        nodes, "decoder-ort-contrib",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="prunec-corpus")
    model.ir_version = 10
    return model, torch_model


# --------------------------------------------------------------------------------------
# Checks and manifest
# --------------------------------------------------------------------------------------


def seed_all():
    base.seed_everything(SEED)


def stamp(model: onnx.ModelProto, name: str, exporter: str, source: str | None = None) -> onnx.ModelProto:
    spec = base.Spec(name, "", lambda: None, lambda r, i: {}, [], [])
    model = base.strip_and_stamp(model, spec, exporter)
    for p in model.metadata_props:
        if p.key == "prunec.generator":
            p.value = GENERATOR
        if p.key == "prunec.example":
            p.key = "prunec.corpus"
    if source:
        q = model.metadata_props.add()
        q.key, q.value = "prunec.source", source
    return model


def dynamic_dims(model: onnx.ModelProto) -> dict:
    out = {}
    inits = {t.name for t in model.graph.initializer}
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name in inits:
            continue
        d = {str(i): x for i, x in enumerate(base.dims(vi)) if not isinstance(x, int)}
        if d:
            out[vi.name] = d
    return out


def alt_length_set(model: onnx.ModelProto, seq: int) -> dict[str, np.ndarray] | None:
    """Token inputs at another sequence length, if every token input's sequence dim is dynamic."""
    names = [i.name for i in model.graph.input if i.name in ("input_ids", "attention_mask", "token_type_ids")]
    if not names:
        return None
    for vi in model.graph.input:
        if vi.name in names and isinstance(base.dims(vi)[1], int):
            return None
    rng = np.random.default_rng(SEED + seq)
    s = {"input_ids": rng.integers(0, VOCAB, size=(1, seq), dtype=np.int64)}
    if "attention_mask" in names:
        s["attention_mask"] = np.ones((1, seq), dtype=np.int64)
    return s


def check(path: Path, sets, ref=None, checker_may_fail=False) -> dict:
    """checker full_check (raises unless checker_may_fail) + onnxruntime on every set (+ a second
    sequence length)."""
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    base.assert_no_external_data(model)
    res: dict = {"checker": True}
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        if not checker_may_fail:
            raise
        res["checker"] = False
        res["checker_error"] = base.one_line(e)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        outs0 = None
        for i, s in enumerate(sets):
            outs = sess.run(None, {k: s[k] for k in names})
            for o in outs:
                if not np.all(np.isfinite(o)):
                    raise RuntimeError(f"non-finite output on set {i}")
            if i == 0:
                outs0 = outs
        res["ort_runs"] = True
        res["ort_sets_run"] = len(sets)
        lens = [int(sets[0]["input_ids"].shape[1])] if "input_ids" in sets[0] else []
        alt = alt_length_set(model, SEQ_ALT)
        if alt is not None:
            outs = sess.run(None, {k: alt[k] for k in names})
            if outs[0].shape[1] != SEQ_ALT or not all(np.all(np.isfinite(o)) for o in outs):
                raise RuntimeError(f"bad output at sequence length {SEQ_ALT}: {outs[0].shape}")
            lens.append(SEQ_ALT)
        res["sequence_lengths_run"] = lens
        if ref is not None:
            res["max_abs_diff_vs_reference"] = float(
                max(np.max(np.abs(o.astype(np.float32) - r)) for o, r in zip(outs0, ref))
            )
        res["_outputs0"] = outs0
    except Exception as e:
        res["ort_runs"] = False
        res["ort_error"] = base.one_line(e)
    return res


def entry_for(path: Path, name: str, family: str, variant: str, exporter: str, source: dict, res: dict,
              calib: str, notes=None, extra=None) -> dict:
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    inits = {t.name for t in model.graph.initializer}
    elem_types = collections.Counter(onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
                                     if t.data_type != BF16 else "bfloat16" for t in model.graph.initializer)
    ops = base.op_histogram(model)
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    e = {
        "file": path.name,
        "name": name,
        "family": family,
        "variant": variant,
        "description": source["description"],
        "pattern": source["pattern"],
        "arch": {"vocab": VOCAB, **source["arch"]},
        "dtype": variant if variant in ("fp16", "bf16") else "fp32",
        "initializer_dtypes": dict(sorted(elem_types.items())),
        "exporter": exporter,
        "opset": opsets.get("ai.onnx"),
        "opsets": opsets,
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "sha256": base.sha256(data),
        "bytes": len(data),
        "params": base.param_count(model),
        "nodes": len(model.graph.node),
        "inputs": [base.io_desc(i) for i in model.graph.input if i.name not in inits],
        "outputs": [base.io_desc(o) for o in model.graph.output],
        "dynamic_dims": dynamic_dims(model),
        "ops": ops,
        "contrib_ops": {k: v for k, v in ops.items() if "::" in k},
        # ops in the default domain that the ONNX standard does not define (onnxruntime registers them there)
        "nonstandard_default_domain_ops": sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")
                                                  and not onnx.defs.has(n.op_type, "")}),
        "calibration": calib,
        **{k: v for k, v in res.items() if not k.startswith("_")},
    }
    if extra:
        e.update(extra)
    if notes:
        e["notes"] = notes
    return e


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


class Corpus:
    def __init__(self, out: Path, log):
        self.out = out
        self.log = log
        self.models: list[dict] = []
        self.calibration: list[dict] = []
        self.failures: list[dict] = []
        self.sets: dict[str, list] = {}
        self.fp32_out: dict[str, list] = {}  # file -> ORT outputs on set 0

    def fail(self, name, what, e):
        line = base.one_line(e) if isinstance(e, BaseException) else str(e)
        self.failures.append({"model": name, "step": what, "error": line})
        self.log(f"  {what:14s} FAILED {line}")

    def write_calib(self, family: str, sets) -> str:
        arch = base.calibration_archive(sets)
        data = base.npz_bytes(arch)
        path = self.out / f"{family}.calib.npz"
        base.atomic_write(path, data)
        self.sets[family] = sets
        self.calibration.append({
            "file": path.name, "model": family, "sha256": base.sha256(data), "bytes": len(data),
            "samples": N_SETS,
            "keys": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in sorted(arch.items())},
        })
        return path.name

    def save(self, model: onnx.ModelProto, fname: str) -> Path:
        data = model.SerializeToString(deterministic=True)
        if len(data) > MAX_MODEL_BYTES:
            raise RuntimeError(f"model is {len(data)} bytes, over {MAX_MODEL_BYTES}")
        for needle in (str(HERE), str(Path.home()), "site-packages"):
            if needle.encode() in data:
                raise RuntimeError(f"model contains a machine-specific string {needle!r}")
        path = self.out / fname
        base.atomic_write(path, data)
        return path

    def add(self, model, fname, name, family, variant, exporter, source, ref=None, notes=None, extra=None,
            keep_if_ort_fails=True, checker_may_fail=False):
        """Save, check, record. A file failing the checker is deleted and recorded as a failure
        (unless checker_may_fail: then it is kept if onnxruntime runs it, with checker: false)."""
        path = self.save(model, fname)
        try:
            res = check(path, self.sets[family], ref, checker_may_fail)
            if not res["checker"] and not res["ort_runs"]:
                raise RuntimeError(f"{res['checker_error']}; onnxruntime: {res['ort_error']}")
        except Exception as e:
            path.unlink()
            self.fail(name, f"{variant}/{exporter} checker", e)
            return None
        if not res["ort_runs"] and not keep_if_ort_fails:
            path.unlink()
            self.fail(name, f"{variant}/{exporter} onnxruntime", res["ort_error"])
            return None
        if res["ort_runs"]:
            self.fp32_out[fname] = res["_outputs0"]
        entry = entry_for(path, name, family, variant, exporter, source, res, f"{family}.calib.npz", notes, extra)
        self.models.append(entry)
        diff = res.get("max_abs_diff_vs_reference")
        self.log(
            f"  {fname:34s} {entry['bytes']:>9d} B nodes={entry['nodes']:>4d} ort_runs={res['ort_runs']}"
            + ("" if res["checker"] else f" CHECKER FAILS ({res['checker_error'][:120]})")
            + (f" seqs={res.get('sequence_lengths_run')}" if res["ort_runs"] else f" ({res['ort_error'][:160]})")
            + (f" diff={diff:.2e}" if diff is not None else "")
            + (f" contrib={entry['contrib_ops']}" if entry["contrib_ops"] else "")
        )
        return entry


def source_info(s: Source) -> dict:
    return {"description": s.description, "pattern": s.pattern, "arch": s.arch}


def export_source(c: Corpus, s: Source):
    spec = s.spec()
    sets = base.calibration_sets(spec)
    c.write_calib(s.name, sets)
    args = tuple(torch.from_numpy(sets[0][n].copy()) for n in spec.input_names)
    for exporter, suffix in (("legacy", ".onnx"), ("dynamo", ".dynamo.onnx")):
        if exporter not in s.exporters:
            continue
        seed_all()
        module = spec.build().eval()
        with torch.no_grad():
            ref = module(*args)
        ref = [r.detach().numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
        notes = list(s.notes)
        try:
            with torch.no_grad():
                if exporter == "legacy":
                    model = base.export_legacy(spec, module, args)
                else:
                    model, extra = base.export_dynamo(spec, module, args)
                    notes += extra
            base.assert_no_external_data(model)
            model = stamp(model, s.name, exporter)
        except Exception as e:
            c.fail(s.name, f"{exporter} export", e)
            continue
        variant = "fp32"
        c.add(model, s.name + suffix, s.name, s.name, variant, exporter, source_info(s), ref=ref, notes=notes)


def reference_evaluator_check(c: Corpus, entry: dict | None, family: str, src_name: str) -> None:
    """Run onnx.reference.ReferenceEvaluator on set 0 (it computes in bf16 where onnxruntime CPU cannot) and
    compare with the fp32 source's onnxruntime output; recorded on the entry."""
    if entry is None:
        return
    from onnx.reference import ReferenceEvaluator

    s0 = c.sets[family][0]
    ref = c.fp32_out.get(src_name)
    try:
        ev = ReferenceEvaluator(str(c.out / entry["file"]))
        outs = ev.run(None, {k: s0[k] for k in ev.input_names})
        res = {"runs": True}
        if ref is not None:
            res["max_abs_diff_vs_fp32"] = float(
                max(np.max(np.abs(o.astype(np.float32) - r)) for o, r in zip(outs, ref)))
            res["max_abs_fp32_output"] = float(max(np.max(np.abs(r)) for r in ref))
    except Exception as e:
        res = {"runs": False, "error": base.one_line(e)}
    entry["onnx_reference_evaluator"] = res
    c.log(f"    onnx.reference on {entry['file']}: {res}")


def derive_fp16(c: Corpus, src_path: Path, name: str, family: str, info: dict):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = onnx.load(str(src_path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp16 = convert_float_to_float16(model, keep_io_types=True)
        fp16 = stamp(fp16, name, "onnxruntime.transformers.float16 (keep_io_types=True)", src_path.name)
    except Exception as e:
        c.fail(name, "fp16 convert", e)
        return
    info = dict(info, pattern=info["pattern"] + "; fp16 weights and compute, fp32 I/O (Cast at the edges; "
                "onnxruntime's default op block list stays fp32)")
    entry = c.add(fp16, f"{family}.fp16.onnx", name, family, "fp16", "onnxruntime float16 converter", info,
                  ref=c.fp32_out.get(src_path.name), extra={"source": src_path.name, "reference": "fp32 ORT output"})
    reference_evaluator_check(c, entry, family, src_path.name)


def derive_bf16(c: Corpus, src_path: Path, name: str, family: str, info: dict):
    try:
        model = onnx.load(str(src_path))
        bf16, stats = convert_float_to_bfloat16(model)
        bf16 = stamp(bf16, name, "prunec corpus bf16 converter", src_path.name)
    except Exception as e:
        c.fail(name, "bf16 convert", e)
        return
    info = dict(info, pattern=info["pattern"] + "; bf16 initializers and compute, fp32 I/O (Cast at the edges, "
                "Cast(to=FLOAT) retargeted to BFLOAT16, ops without bf16 at this opset kept fp32 between Casts)")
    entry = c.add(bf16, f"{family}.bf16.onnx", name, family, "bf16", "prunec corpus bf16 converter", info,
                  ref=c.fp32_out.get(src_path.name),
                  extra={"source": src_path.name, "reference": "fp32 ORT output", "conversion": stats})
    reference_evaluator_check(c, entry, family, src_path.name)


def derive_ort_optimized(c: Corpus, src_path: Path, family: str, info: dict, model_type: str, arch: dict,
                         expect: tuple = (), use_gpu: bool = False, keep_unfused: bool = False):
    from onnxruntime.transformers.optimizer import optimize_model

    name = f"{family}.ort-{model_type}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("onnxruntime").setLevel(logging.ERROR)
            opt = optimize_model(str(src_path), model_type=model_type, num_heads=arch["heads"],
                                 hidden_size=arch["hidden"], use_gpu=use_gpu)
        model = opt.model
        stats = opt.get_fused_operator_statistics()
    except Exception as e:
        c.fail(name, "ort optimize", e)
        return None
    before = base.op_histogram(onnx.load(str(src_path)))
    after = base.op_histogram(model)
    fused = {k: v for k, v in stats.items() if v}
    c.log(f"  optimize_model({model_type}) fused: {fused}")
    missing = [op for op in expect if not stats.get(op)]
    notes = [f"not fused by optimize_model(model_type={model_type!r}): {', '.join(missing)}"] if missing else None
    if after == before and not keep_unfused:
        c.failures.append({"model": name, "step": f"optimize_model(model_type={model_type!r})",
                           "error": "nothing fused (op histogram unchanged); file not written",
                           "fused_operator_statistics": fused})
        return None
    model = stamp(model, name, f"onnxruntime.transformers.optimizer (model_type={model_type}, use_gpu={use_gpu})",
                  src_path.name)
    info = dict(info, pattern=f"onnxruntime transformer-optimizer output (model_type={model_type}) of "
                f"{src_path.name}: com.microsoft fused ops; " + info["pattern"])
    return c.add(model, f"{name}.onnx", name, family, "fp32", "onnxruntime transformer optimizer", info,
                 ref=c.fp32_out.get(src_path.name), notes=notes,
                 extra={"source": src_path.name, "reference": "fp32 ORT output of the source",
                        "optimizer": {"model_type": model_type, "num_heads": arch["heads"],
                                      "hidden_size": arch["hidden"], "use_gpu": use_gpu,
                                      "fused_operator_statistics": fused}},
                 checker_may_fail=True)


def bert_corpus(c: Corpus):
    """Copy the example bert (and its calibration) in, derive fp16, bf16 and the ORT-optimized model."""
    src = EXAMPLES / "bert.onnx"
    info = {"description": BERT_DESC, "pattern": "BERT encoder (post-LN, GELU(erf), additive padding mask)",
            "arch": BERT}
    data = (EXAMPLES / "bert.calib.npz").read_bytes()
    base.atomic_write(c.out / "bert.calib.npz", data)
    with np.load(c.out / "bert.calib.npz") as z:
        arch = {k: z[k] for k in z.files}
    sets = [{k: v for k, v in arch.items() if "." not in k}]
    for i in range(1, N_SETS):
        sets.append({k.split(".", 1)[1]: v for k, v in arch.items() if k.startswith(f"set{i}.")})
    c.sets["bert"] = sets
    c.calibration.append({"file": "bert.calib.npz", "model": "bert", "sha256": base.sha256(data),
                          "bytes": len(data), "samples": N_SETS, "copied_from": "examples/models/bert.calib.npz",
                          "keys": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in sorted(arch.items())}})
    res = check(src, sets)  # the source itself lives in examples/models; only its outputs are needed
    c.fp32_out[src.name] = res["_outputs0"]
    derive_fp16(c, src, "bert.fp16", "bert", info)
    derive_bf16(c, src, "bert.bf16", "bert", info)
    derive_ort_optimized(c, src, "bert", info, "bert", BERT,
                         ("Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"))


def opset23_corpus(c: Corpus):
    name = "decoder-opset23"
    info = {
        "description": "hand-built (onnx.helper) 2-layer Llama-style decoder at opset 23: hidden 64, 4 query heads / "
                       "2 KV heads (GQA), head_dim 16, SwiGLU FFN 128, vocab 256; weights from a seeded "
                       "transformers LlamaForCausalLM with the same configuration (checked against it)",
        "pattern": "standard opset-23 ops: Attention (q_num_heads=4, kv_num_heads=2, is_causal=1, bool padding "
                   "mask; GQA inside the op), RMSNormalization, RotaryEmbedding (3D input, num_heads attribute, "
                   "position_ids from cumsum(mask)-1); no Reshape/Transpose around attention",
        "arch": OPSET23,
    }
    sets = base.calibration_sets(base.Spec(name, "", None, calib_tokens, [], []))
    c.write_calib(name, sets)
    try:
        model, torch_model = build_opset23_decoder()
        with torch.no_grad():
            ref = torch_model(*(torch.from_numpy(sets[0][k]) for k in ("input_ids", "attention_mask")))
        model = stamp(model, name, "onnx.helper (hand-built)")
    except Exception as e:
        c.fail(name, "build", e)
        return
    c.add(model, f"{name}.onnx", name, name, "fp32", "onnx.helper", info, ref=[ref.numpy()],
          extra={"reference": "transformers LlamaForCausalLM (eager) with the same weights"})


def probe_ort_bf16_kernels() -> dict[str, bool]:
    """Which single ops onnxruntime's CPU provider runs on bfloat16 tensors: opset-17 models
    float input -> Cast(bf16) -> op -> Cast(float) (numpy cannot feed bfloat16 through the Python API)."""
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    cases = {
        "Cast": ("Identity", ["xb"], {}),
        "Add": ("Add", ["xb", "xb"], {}), "Sub": ("Sub", ["xb", "xb"], {}), "Mul": ("Mul", ["xb", "xb"], {}),
        "Div": ("Div", ["xb", "xb"], {}), "MatMul": ("MatMul", ["xb", "xtb"], {}),
        "Softmax": ("Softmax", ["xb"], {}), "Where": ("Where", ["cond", "xb", "xb"], {}),
        "Gather": ("Gather", ["xb", "idx"], {}), "LayerNormalization": ("LayerNormalization", ["xb", "w4b"], {"axis": -1}),
        "Sqrt": ("Sqrt", ["xb"], {}), "Pow": ("Pow", ["xb", "xb"], {}), "ReduceMean": ("ReduceMean", ["xb"], {}),
        "Erf": ("Erf", ["xb"], {}), "Tanh": ("Tanh", ["xb"], {}), "Sigmoid": ("Sigmoid", ["xb"], {}),
        "Transpose": ("Transpose", ["xb"], {}), "Reshape": ("Reshape", ["xb", "shape"], {}),
        "Concat": ("Concat", ["xb", "xb"], {"axis": 0}),
    }
    inits = [
        numpy_helper.from_array(x.T.copy(), "xt"), numpy_helper.from_array(np.ones(4, np.float32), "w4"),
        numpy_helper.from_array(np.array([[True, False, True, False]] * 2), "cond"),
        numpy_helper.from_array(np.array([1], np.int64), "idx"), numpy_helper.from_array(np.array([4, 2], np.int64), "shape"),
    ]
    out = {}
    for label, (op, ins, attrs) in cases.items():
        nodes = [helper.make_node("Cast", ["x"], ["xb"], to=BF16), helper.make_node("Cast", ["xt"], ["xtb"], to=BF16),
                 helper.make_node("Cast", ["w4"], ["w4b"], to=BF16), helper.make_node(op, ins, ["yb"], **attrs),
                 helper.make_node("Cast", ["yb"], ["y"], to=FLOAT)]
        graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", FLOAT, [2, 4])],
                                  [helper.make_tensor_value_info("y", FLOAT, None)], initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        try:
            so = ort.SessionOptions()
            so.log_severity_level = 4
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            sess.run(None, {"x": x})
            out[label] = True
        except Exception:
            out[label] = False
    return out


def contrib_corpus(c: Corpus):
    name = "decoder-ort-contrib"
    info = {
        "description": "hand-built (onnx.helper) 2-layer Llama-style decoder in onnxruntime-genai's layout: hidden 64, "
                       "4 query heads / 2 KV heads, head_dim 16, SwiGLU FFN 128, vocab " + str(VOCAB) + "; weights from "
                       "the same seeded LlamaForCausalLM as decoder-opset23 (checked against it)",
        "pattern": "com.microsoft GroupQueryAttention (packed QKV input: one MatMul 64 -> (4+2+2)*16, do_rotary=1 "
                   "with cos/sin caches, seqlens_k/total_sequence_length from the mask), SimplifiedLayerNormalization "
                   "(ai.onnx domain, registered by onnxruntime only), com.microsoft SkipSimplifiedLayerNormalization "
                   "chaining the residual stream",
        "arch": OPSET23,
    }
    c.write_calib(name, c.sets.get("decoder-opset23") or base.calibration_sets(
        base.Spec(name, "", None, calib_tokens, [], [])))
    try:
        model, torch_model = build_contrib_decoder()
        sets = c.sets[name]
        with torch.no_grad():
            ref = torch_model(*(torch.from_numpy(sets[0][k]) for k in ("input_ids", "attention_mask")))
        model = stamp(model, name, "onnx.helper (hand-built)")
    except Exception as e:
        c.fail(name, "build", e)
        return
    c.add(model, f"{name}.onnx", name, name, "fp32", "onnx.helper", info, ref=[ref.numpy()], checker_may_fail=True,
          extra={"reference": "transformers LlamaForCausalLM (eager) with the same weights, set 0 (no padding)",
                 "padding_note": "GroupQueryAttention takes key lengths (seqlens_k) from the mask: trailing padding "
                                 "masks keys; outputs at padded query positions are not meaningful"})


def opset23_dynamo(c: Corpus):
    """llama-gqa through the dynamo exporter at opset 23 with SDPA attention (does it emit Attention?)."""
    name = "llama-gqa"
    s = next(x for x in SOURCES if x.name == name)
    spec = s.spec()
    spec = base.Spec(spec.name, spec.description, lambda: build_llama_gqa("sdpa"), spec.calib, spec.input_names,
                     spec.output_names, spec.legacy_dynamic_axes, spec.dynamo_dynamic_shapes)
    sets = c.sets[name]
    args = tuple(torch.from_numpy(sets[0][n].copy()) for n in spec.input_names)
    seed_all()
    module = spec.build().eval()
    with torch.no_grad():
        ref = [module(*args).numpy()]
    saved = base.DYNAMO_OPSET
    try:
        base.DYNAMO_OPSET = 23
        with torch.no_grad():
            model, notes = base.export_dynamo(spec, module, args)
        model = stamp(model, name + ".opset23", "dynamo (opset 23, sdpa attention)")
    except Exception as e:
        c.fail(name + ".opset23.dynamo", "dynamo export", e)
        return
    finally:
        base.DYNAMO_OPSET = saved
    info = dict(source_info(s), pattern="dynamo exporter at opset 23 with transformers' SDPA attention: "
                "what torch emits for scaled_dot_product_attention / RMSNorm at opset 23; " + s.pattern)
    c.add(model, f"{name}.opset23.dynamo.onnx", name + ".opset23", name, "fp32", "dynamo", info, ref=ref,
          notes=notes)


DECODER_FUSIONS = ("MultiHeadAttention", "GroupQueryAttention", "Attention", "RotaryEmbedding",
                   "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization")

STEPS = ["llama-gqa", "qwen2", "gemma", "gemma2", "gemma3", "mpnet", "deberta", "gpt2", "bert", "decoder-opset23", "decoder-ort-contrib"]


def _pin_hash_seed() -> None:
    """Gemma3 computes its two RoPE tables in the iteration order of a set of strings, which follows Python's
    per-process hash seed; the legacy exporter names nodes in execution order. Re-run with PYTHONHASHSEED=0 so
    the bytes do not change from run to run."""
    import os

    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve())] + sys.argv[1:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=STEPS, help="only these (no manifest is written)")
    ap.add_argument("--out", type=Path, default=HERE)
    opts = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    opts.out.mkdir(parents=True, exist_ok=True)
    c = Corpus(opts.out, lambda m: print(m, flush=True))
    todo = [s for s in STEPS if not opts.only or s in opts.only]
    by_name = {s.name: s for s in SOURCES}
    for step in todo:
        c.log(f"{step}:")
        if step in by_name:
            s = by_name[step]
            export_source(c, s)
            legacy = c.out / f"{s.name}.onnx"
            if step == "llama-gqa" and legacy.exists():
                derive_fp16(c, legacy, "llama-gqa.fp16", "llama-gqa", source_info(s))
                derive_bf16(c, legacy, "llama-gqa.bf16", "llama-gqa", source_info(s))
                for mt in ("qwen3", "gpt2"):
                    derive_ort_optimized(c, legacy, "llama-gqa", source_info(s), mt, s.arch, DECODER_FUSIONS)
                opset23_dynamo(c)
            if step == "gpt2" and legacy.exists():
                derive_ort_optimized(c, legacy, "gpt2", source_info(s), "gpt2", s.arch,
                                     ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "FastGelu"))
        elif step == "bert":
            bert_corpus(c)
        elif step == "decoder-opset23":
            opset23_corpus(c)
        elif step == "decoder-ort-contrib":
            contrib_corpus(c)

    if not opts.only:
        written = {e["file"] for e in c.models} | {e["file"] for e in c.calibration}
        for stale in sorted(list(c.out.glob("*.onnx")) + list(c.out.glob("*.npz"))):
            if stale.name not in written:
                c.log(f"removing stale {stale.name}")
                stale.unlink()
        manifest = {
            "generator": GENERATOR,
            "seed": SEED,
            "versions": {
                "torch": torch.__version__.split("+")[0],
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "numpy": np.__version__,
                "transformers": base._version("transformers"),
                "onnxscript": base._version("onnxscript"),
                "ml_dtypes": base._version("ml_dtypes"),
            },
            "checks": "onnx.checker.check_model(full_check=True) passes for every listed file; ort_runs says whether "
                      "onnxruntime (CPUExecutionProvider) ran all calibration sets (+ sequence length "
                      f"{SEQ_ALT} where the sequence dim is dynamic); max_abs_diff_vs_reference compares set 0 with "
                      "torch (exports) or with the fp32 source's ORT output (derived files)",
            "ort_cpu_bf16_kernels": probe_ort_bf16_kernels(),
            "models": c.models,
            "calibration": c.calibration,
            "failures": c.failures,
        }
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        base.atomic_write(c.out / "manifest.json", text.encode())
        c.log(f"wrote {c.out / 'manifest.json'}")
    if c.failures:
        c.log(f"{len(c.failures)} failure(s) recorded")
    return 0


if __name__ == "__main__":
    _pin_hash_seed()
    sys.exit(main())
