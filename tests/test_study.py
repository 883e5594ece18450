"""Study specs, stage caching and the report, on a tiny random model (fast); the demo spec on the
embedded tiny reasoner lives in test_study_demo.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import save_tiny
from prunescale.cli import app
from prunescale.errors import PrunescaleError
from prunescale.study.spec import counterparts, expand, load_spec

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("m") / "tiny", "qwen3", 3)


def _spec(tmp_path: Path, model_dir: Path, name: str = "smoke", extra: str = "") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"""
name: {name}
model: {model_dir}
dtype: fp32
calibration: {{source: tiny, nsamples: 4, seqlen: 32, seed: 0}}
variants:
  - {{name: sgpt, method: sparsegpt, sparsity: 0.5}}
grid:
  unstructured: {{methods: [wanda], allocations: [uniform], sparsities: [0.5]}}
  structured: {{methods: [shortgpt], remove_layers: [1]}}
eval: {{benchmarks: [tiny], limit: 8, budgets: [0, 6, 12], answer_budget: 3}}
{extra}""")
    return p


def test_examples_parse_and_expand():
    demo = expand(load_spec(EXAMPLES / "demo.yaml"))
    names = [v.name for v in demo]
    assert names[0] == "dense" and len(names) == len(set(names)) == 17
    assert {"wanda-20-owl", "wanda-70-alpha", "magnitude-70-uniform", "sparsegpt-70-uniform",
            "shortgpt-remove2"} <= set(names)
    assert counterparts(demo) == {"dense-gptq-w4": "dense", "wanda-50-uniform-gptq-w4": "wanda-50-uniform",
                                  "wanda-50-uniform-rtn-w4": "wanda-50-uniform"}
    quant = expand(load_spec(EXAMPLES / "quantize.yaml"))
    assert len(quant) == 9 and len(counterparts(quant)) == 6
    paper = load_spec(EXAMPLES / "paper.yaml")
    assert len(expand(paper)) == 1 + 2 * 3 * 5 + 3 and paper.eval.seeds == [7, 11, 42]


def test_paper_spec_dry_run_needs_no_network():
    result = runner.invoke(app, ["study", str(EXAMPLES / "paper.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "gpqa_diamond" in result.stdout and "to do" in result.stdout


@pytest.mark.parametrize("patch, message", [
    ("bogus: 1", "bogus: Extra inputs are not permitted"),
    ("", None),
])
def test_unknown_keys_are_errors_with_their_path(tmp_path, model_dir, patch, message):
    p = _spec(tmp_path, model_dir, extra=patch)
    if message is None:
        load_spec(p)
        return
    with pytest.raises(PrunescaleError, match=message):
        load_spec(p)


@pytest.mark.parametrize("text, message", [
    ("name: x\nmodel: m\neval: {benchmarks: [tiny], budgets: [4, 2, 4]}", "eval.budgets: budgets repeat"),
    ("name: x\nmodel: m\neval: {benchmarks: [tiny], budgets: [4], limit: many}", "eval.limit"),
    ("name: x\nmodel: m\neval: {benchmarks: [tiny], budgets: [4], colour: red}", "eval.colour"),
    ("name: x\nmodel: m\nvariants: [{name: a, method: prune-it}]\neval: {benchmarks: [tiny], budgets: [4]}",
     "variants.0.method"),
    ("name: x\nmodel: m\ntuning_split: test\neval: {benchmarks: [tiny], budgets: [4]}", "never tune"),
    ("name: x\nmodel: [unclosed\n", "not valid YAML"),
    ("- a list", "a YAML mapping"),
])
def test_bad_specs(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(PrunescaleError, match=message):
        load_spec(p)


def test_empty_grid_and_duplicate_names(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nmodel: m\ninclude_dense: false\neval: {benchmarks: [tiny], budgets: [4]}")
    with pytest.raises(PrunescaleError, match="no variants"):
        expand(load_spec(p))
    p.write_text("name: x\nmodel: m\nvariants: [{name: a, method: wanda, sparsity: 0.5}, {name: a, method: "
                 "magnitude, sparsity: 0.5}]\neval: {benchmarks: [tiny], budgets: [4]}")
    with pytest.raises(PrunescaleError, match="duplicate variant names: a"):
        expand(load_spec(p))


def test_study_runs_reuses_and_reports(tmp_path, model_dir):
    spec = _spec(tmp_path, model_dir)
    out = tmp_path / "study"
    first = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert first.exit_code == 0, first.output
    for name in ("results.csv", "report.md", "report.html", "tts_curves.png", "tts_curves.svg",
                 "accuracy_vs_flops.png", "accuracy_vs_tokens.png"):
        assert (out / name).exists(), name
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 3  # 4 variants × 3 budgets × 1 seed
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("samples.jsonl")}
    second = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert second.exit_code == 0 and "0 variants have work to do" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("samples.jsonl")} == stamps  # nothing regenerated
    dry = runner.invoke(app, ["study", str(spec), "--out", str(out), "--dry-run"])
    assert dry.stdout.count("cached") == 8 and "to do" not in dry.stdout
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0


def test_resume_after_losing_an_eval_and_a_pruned_model(tmp_path, model_dir):
    spec = _spec(tmp_path, model_dir)
    out = tmp_path / "study"
    assert runner.invoke(app, ["study", str(spec), "--out", str(out)]).exit_code == 0
    reference = (out / "results.csv").read_text()
    victim_eval = sorted((out / "eval").iterdir())[0]
    lines = (victim_eval / "samples.jsonl").read_text().splitlines(keepends=True)
    (victim_eval / "samples.jsonl").write_text("".join(lines[:5]) + lines[5][:10])
    (victim_eval / "summary.json").unlink()
    shutil.rmtree(sorted((out / "prune").iterdir())[0])
    assert runner.invoke(app, ["study", str(spec), "--out", str(out)]).exit_code == 0
    assert (out / "results.csv").read_text() == reference


def test_folder_of_another_study_and_lock(tmp_path, model_dir):
    out = tmp_path / "study"
    assert runner.invoke(app, ["study", str(_spec(tmp_path, model_dir, "one")), "--out", str(out)]).exit_code == 0
    other = runner.invoke(app, ["study", str(_spec(tmp_path, model_dir, "two")), "--out", str(out)])
    assert other.exit_code == 2 and "belongs to study 'one'" in other.stderr
    import fcntl

    with (out / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = runner.invoke(app, ["study", str(_spec(tmp_path, model_dir, "one")), "--out", str(out)])
    assert locked.exit_code == 2 and "another prunescale study is running" in locked.stderr


def test_offline_hub_benchmark_is_a_clear_error(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    p = tmp_path / "hub.yaml"
    p.write_text(f"name: hub\nmodel: {model_dir}\neval: {{benchmarks: [aime24], budgets: [4]}}")
    result = runner.invoke(app, ["study", str(p), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "aime_2024" in result.stderr and "jsonl:PATH" in result.stderr
    assert not (tmp_path / "o").exists()


# -- a stage folder's hash covers the code it ran ---------------------------------------------------------


def test_source_digest_ignores_docstrings_comments_and_layout_but_not_code(tmp_path):
    from prunescale.study.store import source_digest

    f = tmp_path / "mod.py"
    f.write_text('"""Module."""\n\ndef f(x):\n    """Old words."""\n    return x + 1  # one\n')
    before = source_digest([f])
    f.write_text('"""Reworded."""\n\n\ndef f(x):\n    """New words, two lines\n    of them."""\n    return (x +\n'
                 '            1)\n')
    assert source_digest([f]) == before
    f.write_text('"""Module."""\n\ndef f(x):\n    return x + 2\n')
    assert source_digest([f]) != before


def test_stage_keys_change_with_the_code_of_their_stage_only(monkeypatch):
    """Editing a kernel changes every prune folder's name (no version to bump by hand), not the eval's;
    the digest covers every module of the stage's packages."""
    from prunescale.study import store

    inputs = {"model": "m"}
    prune, evaluation = store.stage_key("prune", inputs), store.stage_key("eval", inputs)
    covered = [p.relative_to(store.PACKAGE).as_posix() for part in store.STAGE_CODE["prune"]
               for p in ((store.PACKAGE / part).rglob("*.py") if (store.PACKAGE / part).is_dir()
                         else [store.PACKAGE / part])]
    assert {"prune/wanda.py", "prune/sparsegpt.py", "registry.py", "api/pruning.py"} <= set(covered)
    real = store.code_digest
    monkeypatch.setattr(store, "code_digest", lambda stage: "edited" if stage == "prune" else real(stage))
    assert store.stage_key("prune", inputs) != prune
    assert store.stage_key("eval", inputs) == evaluation
