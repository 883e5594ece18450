"""A catalogue of bad invocations: each must exit 2 with one line naming the problem, print no
traceback, and leave every existing output byte-identical."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import tiny_model
from prunescale.cli import app
from prunescale.toy.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A model folder, a finished pruned folder, an eval run and a study — the outputs to protect."""
    root = tmp_path_factory.mktemp("world")
    tok = build_tokenizer()
    tiny_model("qwen3", layers=3, vocab=len(tok)).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    runner = CliRunner()
    invoke = lambda *args: runner.invoke(app, [str(a) for a in args])  # noqa: E731
    assert invoke("prune", "--model", root / "model", "--method", "magnitude", "--sparsity", "0.3",
                  "--out", root / "pruned").exit_code == 0
    assert invoke("eval", "--model", root / "model", "--benchmark", "tiny", "--limit", "3",
                  "--budgets", "0,4", "--answer-budget", "2", "--out", root / "run").exit_code == 0
    (root / "study.yaml").write_text(f"name: s\nmodel: {root / 'model'}\ninclude_dense: true\n"
                                     "eval: {benchmarks: [tiny], limit: 3, budgets: [0, 4], answer_budget: 2}\n")
    assert invoke("study", root / "study.yaml", "--out", root / "study").exit_code == 0
    # bad files
    broken = root / "broken-model"
    shutil.copytree(root / "model", broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    (root / "empty.txt").write_text("")
    (root / "bad.jsonl").write_text('{"question": "q", "answer": "1"}\n{oops\n')
    (root / "empty.jsonl").write_text("\n")
    (root / "bad.yaml").write_text("name: [unclosed\n")
    (root / "unknown-key.yaml").write_text("name: x\nmodel: m\nflavour: 1\neval: {benchmarks: [tiny], budgets: [1]}\n")
    (root / "escape.yaml").write_text("name: ../../etc\nmodel: m\neval: {benchmarks: [tiny], budgets: [1]}\n")
    (root / "alloc.json").write_text('{"0": 2.0}')
    return root


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


M = "{root}/model"
CASES = [
    # prune: bad numbers, names, conflicts, files, destinations
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "1.5", "--out", "{root}/o"], "sparsity must be"),
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "-0.2", "--out", "{root}/o"], "sparsity must be"),
    (["prune", "--model", M, "--method", "wandda", "--sparsity", "0.5", "--out", "{root}/o"], "unknown method"),
    (["prune", "--model", M, "--method", "wanda", "--nm", "4:2", "--out", "{root}/o"], "0 < N < M"),
    (["prune", "--model", M, "--method", "wanda", "--nm", "2:4", "--sparsity", "0.5", "--out", "{root}/o"],
     "exactly one of"),
    (["prune", "--model", "{root}/nope", "--method", "wanda", "--sparsity", "0.5", "--out", "{root}/o"],
     "model not found"),
    (["prune", "--model", "{root}/broken-model", "--method", "magnitude", "--sparsity", "0.5", "--out", "{root}/o"],
     "cannot load weights"),
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "0.5", "--calib", "text:{root}/empty.txt",
      "--out", "{root}/o"], "empty"),
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "0.5", "--calib", "jsonl:{root}/bad.jsonl",
      "--out", "{root}/o"], "bad.jsonl:2"),
    (["prune", "--model", M, "--method", "magnitude", "--sparsity", "0.5", "--out", "{root}/pruned"], "not empty"),
    (["prune", "--model", M, "--method", "magnitude", "--sparsity", "0.5", "--out", "{root}/empty.txt/o"],
     "cannot write"),  # the parent is a file: not writable even for root
    (["prune", "--model", M, "--method", "magnitude", "--sparsity", "0.5", "--dtype", "fp7", "--out", "{root}/o"],
     "unknown dtype"),
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "0.5", "--allocation", "file:{root}/alloc.json",
      "--out", "{root}/o"], "outside [0, 1)"),
    (["prune", "--model", M, "--method", "wanda", "--sparsity", "0.5", "--allocation", "owl", "--owl-lambda", "0.7",
      "--out", "{root}/o"], "λ < S"),
    (["prune", "--model", M, "--method", "shortgpt", "--remove-layers", "3", "--out", "{root}/o"],
     "remove at most 2"),
    (["prune", "--model", M, "--method", "layers", "--layers", "1,1", "--out", "{root}/o"], "repeat"),
    (["prune", "--model", M, "--method", "laco", "--remove-layers", "1", "--laco-threshold", "2", "--out",
      "{root}/o"], "(0, 1]"),
    (["prune", "--model", M, "--method", "shortgpt", "--match-sparsity", "1", "--out", "{root}/o"], "(0, 1)"),
    # eval
    (["eval", "--model", M, "--benchmark", "nope", "--budgets", "4", "--out", "{root}/o"], "unknown benchmark"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "4,x", "--out", "{root}/o"], "comma-separated"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8,8", "--out", "{root}/o"], "repeat"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "-8", "--out", "{root}/o"], "non-negative"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--answer-budget", "0", "--out", "{root}/o"],
     "≥ 1"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--temperature", "-0.5", "--out", "{root}/o"],
     "temperature"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--samples", "3", "--out", "{root}/o"],
     "identical samples"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--top-k", "-1", "--out", "{root}/o"], "≥ 0"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--min-p", "1.0", "--out", "{root}/o"], "min-p"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--think-open", "<think>", "--out", "{root}/o"],
     "--think-close"),
    (["eval", "--model", M, "--benchmark", "jsonl:{root}/bad.jsonl", "--budgets", "8", "--out", "{root}/o"],
     "bad.jsonl:2"),
    (["eval", "--model", M, "--benchmark", "jsonl:{root}/empty.jsonl", "--budgets", "8", "--out", "{root}/o"],
     "no items"),
    (["eval", "--model", M, "--benchmark", "tiny", "--budgets", "8", "--out", "{root}/run"], "different run"),
    (["eval", "--model", "{root}/broken-model", "--benchmark", "tiny", "--budgets", "8", "--out", "{root}/o"],
     "cannot load weights"),
    # study / report
    (["study", "{root}/bad.yaml"], "not valid YAML"),
    (["study", "{root}/unknown-key.yaml"], "flavour"),
    (["study", "{root}/escape.yaml"], "not a safe name"),
    (["study", "{root}/missing.yaml"], "not found"),
    (["study", "{root}/study.yaml", "--out", "{root}/pruned"], "holds no study"),
    (["study", "{root}/study.yaml", "--jobs", "0", "--out", "{root}/o"], "--jobs"),
    (["study", "{root}/study.yaml", "--executor", "slurm", "--out", "{root}/o"], "unknown executor"),
    (["report", "{root}/pruned"], "not a finished study"),
    (["report", "{root}/nowhere"], "not a finished study"),
]


@pytest.mark.slow
def test_bad_inputs(world: Path):
    runner = CliRunner()
    before = _snapshot(world)
    tried = 0
    for args, message in CASES:
        argv = [a.replace("{root}", str(world)) for a in args]
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (argv, result.output)
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("error:")]  # progress lines may precede it, nothing follows
        assert len(errors) == 1 and lines[-1] == errors[0] and message in errors[0], (argv, result.stderr)
        assert "Traceback" not in result.output
        assert _snapshot(world) == before, argv
        assert not (world / "o").exists(), argv
        tried += 1
    print(f"\nbad inputs tried: {tried}")
    assert tried >= 30
