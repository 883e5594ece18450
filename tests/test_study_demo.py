"""A reduced demo study on the embedded tiny reasoner, end to end: results, report, reuse."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prunescale.cli import app

SPEC = """
name: demo-small
model: tiny-reasoner
dtype: fp32
calibration: {source: tiny, nsamples: 32, seqlen: 128, seed: 0}
variants:
  - {name: wanda-50, method: wanda, sparsity: 0.5}
  - {name: shortgpt-1, method: shortgpt, remove_layers: 1}
eval: {benchmarks: [tiny], limit: 80, budgets: [0, 24, 96], answer_budget: 4, batch_size: 64}
"""


@pytest.mark.slow
def test_reduced_demo_study(tmp_path: Path, monkeypatch):
    spec = tmp_path / "demo-small.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "study"
    runner = CliRunner()
    first = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert first.exit_code == 0, first.output
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 3
    acc = {(r["variant"], int(r["budget"])): float(r["accuracy"]) for r in rows}
    assert acc[("dense", 0)] < 0.4  # thinking is what makes it right
    assert acc[("dense", 96)] > 0.9
    assert acc[("dense", 0)] <= acc[("dense", 24)] <= acc[("dense", 96)]
    assert acc[("wanda-50", 96)] > 0.8  # half the weights gone, reasoning intact
    assert acc[("shortgpt-1", 96)] < acc[("dense", 96)]  # a removed block costs accuracy
    shortgpt = next(r for r in rows if r["variant"] == "shortgpt-1")
    assert 0.1 < float(shortgpt["removed_param_fraction"]) < 0.2
    for name in ("report.md", "report.html", "tts_curves.png", "tts_curves.svg"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "wanda-50" in report and "p (Holm)" in report and "Claims of the reference study" in report
    assert (out / "pooled.csv").exists()
    index = json.loads((out / "index.json").read_text())
    folders = [v["prune"] for v in index["variants"] if v["prune"]] + [e for v in index["variants"] for e in v["evals"]]
    assert len(folders) == 2 + 3 and all(f["status"] == "done" and (out / f["folder"]).is_dir() for f in folders)
    # the report reads the index, never the plan: changed stage code cannot make it find nothing
    from prunescale.report.study_report import write_report
    from prunescale.study import store

    monkeypatch.setattr(store, "code_digest", lambda stage: "changed")
    (out / "report.md").unlink()
    write_report(out)
    assert "wanda-50" in (out / "report.md").read_text() and "shortgpt-1" in (out / "report.md").read_text()
    monkeypatch.undo()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("samples.jsonl")}
    second = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert second.exit_code == 0 and "0 variants have work to do" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("samples.jsonl")} == stamps
