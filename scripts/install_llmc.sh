#!/usr/bin/env bash
# The opt-in llm-compressor environment (`make llmc-venv`): the reference GPTQ implementation
# (llmcompressor 0.14, vLLM project) in a venv of its own, for the parity benchmark
# benchmarks/reference/llmc_gptq.py. prunescale is NOT installed here: the reference script runs on its
# own and our side talks to it only through files and a subprocess (benchmarks/reference/llmc.py).
# torch comes first and pinned to the local CPU wheel (2.13.0+cpu): a bare torch requirement from
# llmcompressor could otherwise pull a multi-GB CUDA build. It is pinned again on every later install
# so the resolver never replaces it. llmcompressor 0.14 caps transformers at <=5.17, so this venv has
# an older transformers than the main one; that is what llmcompressor accepts.
set -euo pipefail
venv="${1:-.venv-llmc}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" --no-index --no-deps "torch==2.13.0" 2>/dev/null || true
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" "torch==2.13.0" "llmcompressor==0.14.*" "datasets"
# Like the vLLM venv: PyPI builds of these would not match torch 2.13.0+cpu and break imports if a
# dependency dragged them in.
"$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
"$venv/bin/python" -c "import llmcompressor, compressed_tensors, torch, transformers; print('llmcompressor', llmcompressor.__version__, 'compressed-tensors', compressed_tensors.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
