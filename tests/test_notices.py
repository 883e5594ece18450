"""Nothing a user should know stays in a JSON file: every warning a stage raises is recorded with the stage
(manifest or summary ``notices``), reaches the report's Notices section once with its variant, and is
printed by `prunescale study`; the study adds what only the whole study shows (mixed pruning regimes,
mixed thread counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import save_tiny
from prunescale.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("m") / "tiny", "qwen3", 3)


def _study(tmp_path: Path, body: str) -> tuple[Path, object]:
    spec = tmp_path / "s.yaml"
    spec.write_text(body)
    out = tmp_path / "study"
    result = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def _notices(report: str) -> str:
    return report.split("## Notices", 1)[1].split("\n## ", 1)[0]


def test_a_study_without_warnings_says_none(tmp_path, model_dir):
    out, result = _study(tmp_path, f"""
name: quiet
model: {model_dir}
dtype: fp32
calibration: {{source: tiny, nsamples: 4, seqlen: 32}}
variants: [{{name: w50, method: wanda, sparsity: 0.5}}]
eval: {{benchmarks: [tiny], limit: 4, budgets: [0, 6], answer_budget: 3}}
""")
    assert "None: no stage of this study raised a warning." in _notices((out / "report.md").read_text())
    assert "notice:" not in result.stderr


def test_every_prune_warning_and_a_regime_mix_reach_report_and_console(tmp_path, model_dir):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"0": 0.5, "1": 0.5, "2": 0.5}))  # a non-uniform allocation that is uniform
    out, result = _study(tmp_path, f"""
name: loud
model: {model_dir}
dtype: fp32
calibration: {{source: tiny, nsamples: 4, seqlen: 32}}
variants:
  - {{name: w50-flat, method: wanda, sparsity: 0.5, allocation: "file:{flat}"}}
  - {{name: w50-dense, method: wanda, sparsity: 0.5, sequential: false}}
eval: {{benchmarks: [tiny], limit: 4, budgets: [0, 6], answer_budget: 3}}
""")
    section = _notices((out / "report.md").read_text())
    line = [x for x in section.splitlines() if x.startswith("| w50-flat | prune |")]
    assert len(line) == 1 and "gave every block the same sparsity" in line[0]  # once
    assert "| (study) | compare |" in section and "dense-activations: w50-dense" in section
    assert "sequential: w50-flat" in section
    assert "notice: w50-flat (prune): allocation file:" in result.stderr
    assert "notice: (study) (compare): calibrated variants were pruned in different regimes" in result.stderr
    assert "<h2>Notices</h2>" in (out / "report.html").read_text()
    pruning = (out / "report.md").read_text().split("## Pruning", 1)[1]
    assert "| w50-dense | unstructured | wanda | uniform | dense-activations |" in pruning


def test_an_eval_warning_reaches_report_and_console(tmp_path, scripted):
    """A model without thinking markers: the evaluator's notice is in summary.json, the report and the
    console of the study that ran it."""
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"question": "What is 6 times 7?", "answer": "42"}) + "\n")
    out, result = _study(tmp_path, f"""
name: plain
model: {scripted("llama")}
dtype: fp32
eval: {{benchmarks: ["jsonl:{bench}"], budgets: [4], answer_budget: 8}}
""")
    (summary,) = out.glob("eval/*/summary.json")
    assert any("no thinking markers" in n for n in json.loads(summary.read_text())["notices"])
    section = _notices((out / "report.md").read_text())
    assert section.count("no thinking markers") == 1 and f"| dense | eval jsonl:{bench} |" in section
    assert "notice: dense (eval jsonl:" in result.stderr and "no thinking markers" in result.stderr


def test_stages_run_with_other_threads_are_flagged(tmp_path, model_dir):
    out, _ = _study(tmp_path, f"""
name: threads
model: {model_dir}
dtype: fp32
threads: 1
calibration: {{source: tiny, nsamples: 4, seqlen: 32}}
variants: [{{name: w50, method: wanda, sparsity: 0.5}}]
eval: {{benchmarks: [tiny], limit: 4, budgets: [0, 6], answer_budget: 3}}
""")
    manifest = json.loads(next(out.glob("prune/*/pruning_manifest.json")).read_text())
    assert manifest["environment"]["threads"] == 1
    summary = next(out.glob("eval/w50-*/summary.json"))
    data = json.loads(summary.read_text())
    data["environment"]["threads"] = 7  # as if this evaluation had run on another machine
    summary.write_text(json.dumps(data))
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    section = _notices((out / "report.md").read_text())
    assert "stages ran in different environments" in section and "threads=7" in section


def test_the_study_restores_the_callers_threads(tmp_path, model_dir):
    import torch

    before = torch.get_num_threads()
    _study(tmp_path, f"""
name: restore
model: {model_dir}
dtype: fp32
threads: {1 if before > 1 else 2}
variants: [{{name: m50, method: magnitude, sparsity: 0.5}}]
eval: {{benchmarks: [tiny], limit: 2, budgets: [0], answer_budget: 2}}
""")
    assert torch.get_num_threads() == before


def test_a_run_resumed_in_another_environment_says_so(tmp_path, model_dir):
    from prunescale.api import evaluate
    from prunescale.config import EvalSpec

    spec = EvalSpec(model=str(model_dir), benchmark="tiny", limit=3, budgets=[0, 4], answer_budget=2, dtype="fp32",
                    out=tmp_path / "ev")
    run = evaluate(spec, log=lambda _m: None, progress=False)
    assert json.loads((run / "summary.json").read_text())["notices"] == []
    starts = run / "starts.jsonl"
    first = json.loads(starts.read_text().splitlines()[0])
    starts.write_text(json.dumps(first | {"threads": 64}) + "\n")  # as if it had started on another machine
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:2]))
    (run / "summary.json").unlink()
    seen: list[str] = []
    evaluate(spec, log=seen.append, progress=False)
    notices = json.loads((run / "summary.json").read_text())["notices"]
    assert len(notices) == 1 and "resumed in another environment" in notices[0] and '"threads": 64' in notices[0]
    assert any("resumed in another environment" in line for line in seen)
