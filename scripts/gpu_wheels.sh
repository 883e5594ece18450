#!/usr/bin/env bash
# Wheels the GPU machine's CUDA PyTorch image lacks (Python 3.12 there), for benchmarks/gpu_smoke.py.
# Then, with the device tool: carry [".whl"], command:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:src && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_smoke.py
set -euo pipefail
py="${PYTHON:-python3}"
rm -rf .whl && mkdir -p .whl
for pkg in pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
           math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "$pkg"
done
ls -la .whl
