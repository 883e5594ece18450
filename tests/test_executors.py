"""A study's numbers do not depend on where it ran: every executor runs a variant with the study's thread
count (float sums on the CPU depend on it), and records it in each stage's environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunescale.study.runner import run_study

SPEC = """
name: executors
model: tiny-reasoner
dtype: fp32
threads: 1
calibration: {source: tiny, nsamples: 16, seqlen: 64, seed: 0}
variants:
  - {name: sgpt-50, method: sparsegpt, sparsity: 0.5}
  - {name: w50-owl, method: wanda, sparsity: 0.5, allocation: owl}
eval: {benchmarks: [tiny], limit: 16, budgets: [0, 24, 48], answer_budget: 4, batch_size: 16}
"""


def _run(tmp_path: Path, name: str, **kw) -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    out, _ = run_study(spec, tmp_path / name, log=lambda _m: None, **kw)
    return out


def _threads(out: Path) -> set[int]:
    files = [*out.glob("prune/*/pruning_manifest.json"), *out.glob("eval/*/summary.json")]
    return {json.loads(f.read_text())["environment"]["threads"] for f in files}


@pytest.mark.slow
def test_jobs_1_and_2_give_the_same_results(tmp_path):
    one = _run(tmp_path, "one", jobs=1)
    two = _run(tmp_path, "two", jobs=2)
    assert (one / "results.csv").read_text() == (two / "results.csv").read_text()
    assert _threads(one) == _threads(two) == {1}


@pytest.mark.slow
def test_ray_gives_the_local_executors_results(tmp_path):
    ray = pytest.importorskip("ray")
    local = _run(tmp_path, "local")
    try:
        on_ray = _run(tmp_path, "ray", executor="ray")
    finally:
        ray.shutdown()
    assert (local / "results.csv").read_text() == (on_ray / "results.csv").read_text()
    assert _threads(on_ray) == {1}
