#!/usr/bin/env python3
"""Converts a float32 ONNX model to float16 or bfloat16 compute with float32 inputs and outputs.

usage: convert_half.py {fp16,bf16} MODEL OUT

fp16: onnxruntime's own converter,
  ``onnxruntime.transformers.float16.convert_float_to_float16(model, keep_io_types=True)``.
bf16: float initializers and Constant values become bfloat16, Cast-to-float becomes
  Cast-to-bfloat16, float graph inputs get a Cast to bfloat16 and float graph outputs a Cast
  back to float, so that all compute runs in bfloat16. Ops whose opset-17 schema has no
  bfloat16 (Sin, Cos, Range, ConstantOfShape) stay float32 between Casts.
"""
import argparse
import sys

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Ops without bfloat16 in their opset-17 type constraints: computed in float32.
BF16_BLOCKED = {"Sin", "Cos", "Range", "ConstantOfShape"}
FLOAT = TensorProto.FLOAT
BF16 = TensorProto.BFLOAT16


def bf16_tensor(t):
    a = numpy_helper.to_array(t).astype(ml_dtypes.bfloat16)
    out = TensorProto(name=t.name, data_type=BF16, dims=list(a.shape))
    out.raw_data = a.view(np.uint16).tobytes()
    return out


def to_bf16(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    elem = {}
    for vi in list(inferred.graph.value_info) + list(g.input) + list(g.output):
        elem[vi.name] = vi.type.tensor_type.elem_type
    for t in g.initializer:
        elem[t.name] = t.data_type

    for i, t in enumerate(g.initializer):
        if t.data_type == FLOAT:
            g.initializer[i].CopyFrom(bf16_tensor(t))

    nodes = []
    counter = [0]

    def fresh(base):
        counter[0] += 1
        return f"{base}__bf16_{counter[0]}"

    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    a.t.CopyFrom(bf16_tensor(a.t))
                elif a.name in ("value_float", "value_floats"):
                    raise SystemExit(f"convert_half: Constant {n.name} uses {a.name}")
            nodes.append(n)
        elif n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == FLOAT:
                    a.i = BF16
            nodes.append(n)
        elif n.op_type in BF16_BLOCKED:
            # Float inputs are bfloat16 now: cast them up, compute in float, cast results down.
            for k, name in enumerate(n.input):
                if name and elem.get(name) == FLOAT:
                    up = fresh(name)
                    nodes.append(helper.make_node("Cast", [name], [up], to=FLOAT, name=fresh("cast_up")))
                    n.input[k] = up
            nodes.append(n)
            for k, name in enumerate(n.output):
                if elem.get(name) == FLOAT:
                    wide = fresh(name)
                    n.output[k] = wide
                    nodes.append(helper.make_node("Cast", [wide], [name], to=BF16, name=fresh("cast_down")))
        else:
            nodes.append(n)

    head = []
    for inp in g.input:
        if inp.type.tensor_type.elem_type == FLOAT and inp.name not in {t.name for t in g.initializer}:
            low = fresh(inp.name)
            head.append(helper.make_node("Cast", [inp.name], [low], to=BF16, name=fresh("cast_in")))
            for n in nodes:
                for k, name in enumerate(n.input):
                    if name == inp.name:
                        n.input[k] = low
    tail = []
    for out in g.output:
        if out.type.tensor_type.elem_type == FLOAT:
            low = fresh(out.name)
            for n in nodes:
                for k, name in enumerate(n.output):
                    if name == out.name:
                        n.output[k] = low
                for k, name in enumerate(n.input):
                    if name == out.name:
                        n.input[k] = low
            tail.append(helper.make_node("Cast", [low], [out.name], to=FLOAT, name=fresh("cast_out")))
    del g.node[:]
    g.node.extend(head + nodes + tail)
    del g.value_info[:]
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dtype", choices=["fp16", "bf16"])
    p.add_argument("model")
    p.add_argument("out")
    args = p.parse_args()
    model = onnx.load(args.model)
    if args.dtype == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16
        model = convert_float_to_float16(model, keep_io_types=True)
    else:
        model = to_bf16(model)
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    print(f"convert_half: {args.model} -> {args.out} ({args.dtype})", file=sys.stderr)


if __name__ == "__main__":
    main()
