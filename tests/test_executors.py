"""A study's numbers do not depend on where it ran: every executor runs a variant with the study's thread
count (float sums on the CPU depend on it), and records it in each stage's environment."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.cli import app
from prunescale.errors import PrunescaleError
from prunescale.study.executors import TOKEN, check_token, write_token
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


def _run(tmp_path: Path, name: str, text: str = SPEC, **kw) -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(text)  # the study's threads (1) fit every node of a test cluster
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


@pytest.mark.slow
def test_a_two_node_ray_cluster_runs_a_study_to_the_end(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        small = SPEC.replace("limit: 16, budgets: [0, 24, 48]", "limit: 6, budgets: [0, 24, 48]")
        out = _run(tmp_path, "two-nodes", small, executor="ray", ray_address=cluster.address)
        assert len(ray.nodes()) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 3 and (out / "report.md").exists()  # 3 variants × 3 budgets
    assert (out / TOKEN).exists()


def test_a_node_without_the_study_folder_fails_with_its_name_and_the_path(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    token = write_token(shared)
    check_token(str(shared), token)  # the same folder: fine
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(PrunescaleError, match=f"node {socket.gethostname()} does not see the study folder "
                                              f"{elsewhere}.*no {TOKEN}.*storage every node mounts"):
        check_token(str(elsewhere), token)


def test_a_failed_variant_does_not_lose_the_others(tmp_path):
    folder = tmp_path / "m"
    from prunescale.toy.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tiny_model("qwen3", layers=2, vocab=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model.layers.0.no_such_proj": 0.5}))  # valid JSON, wrong for this model
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: fails
model: {folder}
dtype: fp32
calibration: {{source: tiny, nsamples: 2, seqlen: 16}}
variants:
  - {{name: broken, method: wanda, sparsity: 0.5, allocation: "file:{bad}"}}
  - {{name: fine, method: magnitude, sparsity: 0.5}}
eval: {{benchmarks: [tiny], limit: 2, budgets: [0], answer_budget: 2}}
""")
    out = tmp_path / "study"
    r = CliRunner().invoke(app, ["study", str(spec), "--out", str(out)])
    assert r.exit_code == 2 and "1 variant(s) failed (broken: allocation file: unknown module" in r.output
    assert "re-run the study to resume" in r.output
    variants = {row.split(",")[0] for row in (out / "results.csv").read_text().splitlines()[1:]}
    assert variants == {"dense", "fine"}
    index = json.loads((out / "index.json").read_text())
    assert {v["name"]: v["prune"]["status"] for v in index["variants"] if v["prune"]} == {"broken": "todo",
                                                                                          "fine": "done"}


def test_a_variants_benchmarks_share_one_model_load_and_give_the_same_samples(tmp_path, monkeypatch):
    import prunescale.models.loader as loader
    from prunescale.api import evaluate, evaluation, loading
    from prunescale.config import EvalSpec
    from prunescale.toy.tokenizer import build_tokenizer

    folder = tmp_path / "m"
    tok = build_tokenizer()
    tiny_model("qwen3", layers=2, vocab=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    loads: list[str] = []
    real = loader.load_model
    for stage in (loading, evaluation):  # every place a stage loads a model
        monkeypatch.setattr(stage, "load_model", lambda name, **kw: loads.append(name) or real(name, **kw))
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""
name: shared
model: {folder}
dtype: fp32
variants: [{{name: m50, method: magnitude, sparsity: 0.5}}]
eval: {{benchmarks: [tiny, tiny_hard], limit: 3, budgets: [0, 4], answer_budget: 2, batch_size: 2}}
""")
    out, _ = run_study(spec, tmp_path / "study", log=lambda _m: None)
    assert len(loads) == 3  # the pruning run, then one load per variant for both benchmarks (was 1 + 2 × 2)
    (alone_dir,) = out.glob("eval/dense-tiny_hard-*")
    alone = evaluate(EvalSpec(model=str(folder), benchmark="tiny_hard", limit=3, budgets=[0, 4], answer_budget=2,
                              batch_size=2, dtype="fp32", label="dense", out=tmp_path / "alone"),
                     log=lambda _m: None, progress=False)
    assert (alone / "samples.jsonl").read_text() == (alone_dir / "samples.jsonl").read_text()
