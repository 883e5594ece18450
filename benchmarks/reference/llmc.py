"""Run llm-compressor's GPTQ (the reference implementation) from prunescale's venv, in its own venv.

Only the standard library and torch are imported here: llm-compressor lives in ``.venv-llmc`` (``make
llmc-venv``), with its own transformers, and runs :mod:`llmc_gptq` (beside this file) as a subprocess. The
two sides exchange files only: the calibration samples go in as a ``torch.save``d list, the quantized
model, its ``qparams.pt`` and ``reference.json`` come back in ``out``.

    from benchmarks.reference.llmc import available, run_reference
    if available():
        ref = run_reference(model_dir, samples, bits=4, group_size=64, act_order=False, out=Path("runs/ref"))
        ref["seconds_gptq"], ref["peak_rss_mib"], ref["out_dir"]  # a plain HF folder, weights dequantized
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("llmc_gptq.py")
DEFAULT_VENV = Path(".venv-llmc")
_STDERR_TAIL = 4000  # characters of the child's stderr quoted in a failure


def _python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


@cache
def _available(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, timeout=120,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def available(venv: Path = DEFAULT_VENV) -> bool:
    """Whether ``venv`` has a python that imports llmcompressor (checked once per venv path; cached)."""
    python = _python(venv)
    return python.is_file() and _available(str(python.absolute()))  # not resolve(): the venv link


def run_reference(model_dir: Path, samples: list[torch.Tensor], bits: int, group_size: int, act_order: bool,
                  out: Path, venv: Path = DEFAULT_VENV, *, damp: float = 0.01, block: int = 128,
                  threads: int | None = None, timeout: float | None = None) -> dict:
    """Quantize ``model_dir`` with llm-compressor's GPTQ on exactly ``samples`` (1-D LongTensors of one
    length, each one sample, in order) into ``out``; return its ``reference.json`` plus ``out_dir``.

    ``group_size`` -1 is one group per row; ``act_order`` uses llm-compressor's ``actorder="weight"``.
    Raises RuntimeError (with the tail of the child's stderr) when the reference run fails.
    """
    python = _python(venv)
    if not python.is_file():
        raise RuntimeError(f"no llm-compressor venv at {venv}: run `make llmc-venv`")
    if not samples:
        raise ValueError("run_reference needs at least one calibration sample")
    lengths = {int(s.numel()) for s in samples}
    if len(lengths) != 1 or any(s.dim() != 1 for s in samples):
        raise ValueError(f"samples must be 1-D and of one length (got lengths {sorted(lengths)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    calib = out / "calibration.pt"
    torch.save([s.detach().to("cpu", torch.long).contiguous() for s in samples], calib)
    cmd = [str(python), str(SCRIPT), "--model", str(model_dir), "--calib", str(calib), "--bits", str(bits),
           "--group-size", str(group_size), "--damp", repr(float(damp)), "--block", str(block), "--out", str(out)]
    if act_order:
        cmd.append("--act-order")
    if threads:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PYTHONPATH", None)  # nothing of this venv (or of prunescale) leaks into the reference run
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-_STDERR_TAIL:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise RuntimeError(f"llm-compressor GPTQ timed out after {timeout} s:\n{tail}") from exc
    if done.returncode != 0:
        raise RuntimeError(f"llm-compressor GPTQ failed (exit {done.returncode}): {' '.join(cmd)}\n"
                           f"{done.stderr[-_STDERR_TAIL:]}")
    result = json.loads((out / "reference.json").read_text())
    result["out_dir"] = str(out)
    return result


if __name__ == "__main__":  # a quick check: python benchmarks/reference/llmc.py [VENV]
    print(available(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VENV))
