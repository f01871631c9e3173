#!/usr/bin/env bash
# Creates .venv at the repository root with the pinned Python oracle
# (onnx, onnxruntime, numpy) from scripts/oracle/requirements.txt.
# Idempotent: does nothing when .venv already holds exactly these requirements.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/scripts/oracle/requirements.txt"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]] \
   && "$venv/bin/python" -c 'import onnx, onnxruntime, numpy' >/dev/null 2>&1; then
  echo "setup-venv: .venv is up to date ($(basename "$req") sha256 ${want:0:12})"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >&2; then
    echo "setup-venv: '$python -m venv' failed (on Debian: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    exit 1
  fi
fi

rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" >&2
"$venv/bin/python" -c 'import onnx, onnxruntime, numpy' >&2
echo "$want" > "$stamp"
echo "setup-venv: .venv ready ($("$venv/bin/python" -c 'import onnx, onnxruntime, numpy; print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}")'))"
