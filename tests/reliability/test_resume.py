"""SIGKILL a study at ≥ 10 deterministic points spread over pruning, generation, grading and reporting,
resume each time, and check results.csv equals an uninterrupted run with no lost or duplicated samples
and no stray temp files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import tiny_model
from prunescale.toy.tokenizer import build_tokenizer

# The child patches one function to SIGKILL itself on its N-th call, then runs the CLI as a user would.
CHILD = textwrap.dedent(
    """
    import importlib, os, signal, sys
    target, attr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    module = importlib.import_module(target)
    owner_name, _, fn_name = attr.rpartition(".")
    owner = getattr(module, owner_name) if owner_name else module
    original = getattr(owner, fn_name)
    calls = {"n": 0}
    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    setattr(owner, fn_name, wrapped)
    from prunescale.cli import app
    sys.argv = ["prunescale", *sys.argv[4:]]
    app()
    """
)

KILL_POINTS = [
    ("prunescale.prune.block_runner", "run_block", 3),  # inside block-by-block calibration
    ("prunescale.models.save", "save_checkpoint", 1),  # while writing the first pruned model
    ("prunescale.models.save", "save_checkpoint", 3),
    ("prunescale.tts.engines.hf", "HFEngine.generate", 1),  # first generation call
    ("prunescale.tts.engines.hf", "HFEngine.generate", 5),  # mid-way through the evaluations
    ("prunescale.tts.engines.hf", "HFEngine.generate", 14),
    ("prunescale.tts.run", "grade", 7),  # grading the first group
    ("prunescale.tts.run", "grade", 130),  # grading, later evaluation
    ("prunescale.tts.run", "summarise", 2),  # after samples, before a summary is written
    ("prunescale.study.runner", "collect_results", 1),  # all stages done, results.csv not yet written
    ("prunescale.study.store", "write_text_atomic", 1),  # while writing results.csv
    ("prunescale.report.study_report", "write_report", 1),  # everything done but the report
]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    tok = build_tokenizer()
    tiny_model("qwen3", layers=3, vocab=len(tok)).save_pretrained(root / "m")
    tok.save_pretrained(root / "m")
    (root / "math.jsonl").write_text("".join(json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i)})
                                             + "\n" for i in range(10)))  # graded by Math-Verify
    p = root / "spec.yaml"
    p.write_text(f"""
name: crash
model: {root / 'm'}
dtype: fp32
calibration: {{source: tiny, nsamples: 4, seqlen: 32, seed: 0}}
grid:
  unstructured: {{methods: [wanda, magnitude], allocations: [uniform], sparsities: [0.5]}}
  structured: {{methods: [shortgpt], remove_layers: [1]}}
eval: {{benchmarks: [tiny, "jsonl:{root / 'math.jsonl'}"], limit: 10, budgets: [0, 6, 12], answer_budget: 3,
        batch_size: 4, temperature: 1.0, seeds: [1, 2]}}
""")
    return p


def _run(args: list[str], kill: tuple[str, str, int] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", CHILD, *map(str, kill or ("prunescale.cli", "say", 10**9)), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _samples(out: Path) -> list[tuple]:
    keys = []
    for f in sorted(out.rglob("samples.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            keys.append((f.parent.name, r["item_id"], r["seed"], r["sample"], r["budget"], r["answer"]))
    return keys


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_equals_uninterrupted(spec: Path, tmp_path: Path):
    clean = tmp_path / "clean"
    done = _run(["study", spec, "--out", clean])
    assert done.returncode == 0, done.stderr[-2000:]
    reference_csv = (clean / "results.csv").read_text()
    reference_samples = _samples(clean)
    survived = 0
    for point in KILL_POINTS:
        out = tmp_path / f"kill-{point[1]}-{point[2]}"
        killed = _run(["study", spec, "--out", out], kill=point)
        assert killed.returncode == -9, (point, killed.stderr[-2000:])
        resumed = _run(["study", spec, "--out", out])
        assert resumed.returncode == 0, (point, resumed.stderr[-2000:])
        assert (out / "results.csv").read_text() == reference_csv, point
        got = _samples(out)
        assert len(got) == len(set(got)) == len(reference_samples), point  # none lost, none duplicated
        assert sorted(got) == sorted(reference_samples), point
        strays = [p for p in out.rglob("*") if ".tmp" in p.name]
        assert not strays, (point, strays)
        survived += 1
        shutil.rmtree(out)
    print(f"\nfaults injected and survived: {survived}")
    assert survived == len(KILL_POINTS)
