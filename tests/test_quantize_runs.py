"""Quantization through the CLI, the API and a study: prune + quantize in one run, `prunescale quantize` on a
pruned folder (manifest extended), quantize-only and after layer removal, bad input refused before any
model loads, the study's `quantize:` axis and each quantized variant's unquantized counterpart."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import save_tiny
from prunescale.cli import app
from prunescale.errors import PrunescaleError
from prunescale.study.spec import counterparts, expand, load_spec

runner = CliRunner()
CAL = ["--calib", "tiny", "--nsamples", "4", "--seqlen", "32"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("m") / "tiny", "qwen3", 2)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(folder / "model.safetensors").items() if k.endswith("proj.weight")}


def _levels(w: torch.Tensor, group: int) -> int:
    g = w.reshape(w.shape[0], -1, group)
    return max(len(torch.unique(g[r, k])) for r in range(g.shape[0]) for k in range(g.shape[1]))


def test_prune_then_gptq_in_one_run_keeps_every_pruned_zero(tmp_path, model_dir):
    plain, quant = tmp_path / "wanda", tmp_path / "wanda-w4"
    for out, extra in ((plain, []), (quant, ["--quantize", "gptq", "--bits", "4", "--group-size", "32"])):
        r = runner.invoke(app, ["prune", "--model", str(model_dir), "--method", "wanda", "--sparsity", "0.5", *CAL,
                                *extra, "--out", str(out)])
        assert r.exit_code == 0, r.output
    before, after = _weights(plain), _weights(quant)
    for name, w in before.items():  # the same Wanda mask (quantization changed one thing), every zero kept
        assert bool((after[name][w == 0] == 0).all()), name
        assert _levels(after[name], 32) <= 16, name
    m = json.loads((quant / "pruning_manifest.json").read_text())
    q = m["quantization"]
    assert (q["method"], q["bits"], q["group_size"], q["label"]) == ("gptq", 4, 32, "gptq-w4-g32")
    assert q["realised_sparsity"] >= m["realised_sparsity"] - 1e-9
    assert 0 < q["mean_relative_error"] < 0.5 and len(q["relative_error_per_block"]) == 2
    assert m["weight_bytes"] < m["dense_weight_bytes"]


def test_quantize_command_extends_a_pruned_folder_and_refuses_a_second_pass(tmp_path, model_dir):
    pruned, quant = tmp_path / "mag", tmp_path / "mag-rtn"
    assert runner.invoke(app, ["prune", "--model", str(model_dir), "--method", "magnitude", "--sparsity", "0.6",
                               "--out", str(pruned)]).exit_code == 0
    r = runner.invoke(app, ["quantize", "--model", str(pruned), "--quantize", "rtn", "--bits", "3",
                            "--group-size", "-1", "--out", str(quant)])
    assert r.exit_code == 0, r.output
    m = json.loads((quant / "pruning_manifest.json").read_text())
    assert m["method"] == "magnitude" and m["target_sparsity"] == pytest.approx(0.6)  # the pruning record is kept
    assert m["quantization"]["label"] == "rtn-w3-grow"
    for name, w in _weights(quant).items():
        assert max(len(torch.unique(row)) for row in w) <= 8, name
    again = runner.invoke(app, ["quantize", "--model", str(quant), "--quantize", "rtn", "--group-size", "-1",
                                "--out", str(tmp_path / "x")])
    assert again.exit_code == 2 and "already quantized" in again.output


def test_quantize_only_and_after_layer_removal(tmp_path, model_dir):
    r = runner.invoke(app, ["prune", "--model", str(model_dir), "--method", "none", "--quantize", "gptq", *CAL,
                            "--bits", "2", "--group-size", "64", "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "q" / "pruning_manifest.json").read_text())
    assert m["target_sparsity"] == 0 and m["quantization"]["method"] == "gptq"
    assert any("2-bit" in n for n in m["notices"]) and "2-bit" in r.output  # the warning reaches the user
    r = runner.invoke(app, ["prune", "--model", str(model_dir), "--method", "reverse", "--remove-layers", "1",
                            "--quantize", "gptq", "--group-size", "32", *CAL, "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "r" / "pruning_manifest.json").read_text())
    assert m["removed_layers"] == [1] and list(m["quantization"]["relative_error_per_block"]) == ["0"]


@pytest.mark.parametrize("args, message", [
    (["--method", "wanda", "--sparsity", "0.5", "--quantize", "gptq", "--group-size", "48"], "does not divide"),
    (["--method", "wanda", "--sparsity", "0.5", "--quantize", "gptq", "--bits", "5"], "bits must be one of"),
    (["--method", "wanda", "--sparsity", "0.5", "--bits", "3"], "bits is a quantization option"),
    (["--method", "wanda", "--sparsity", "0.5", "--quantize", "rtn", "--act-order"], "not an option of rtn"),
    (["--method", "wanda", "--sparsity", "0.5", "--quantize", "gtpq"], "unknown quantization method 'gtpq'"),
    (["--method", "none"], "method none prunes nothing"),
    (["--method", "none", "--quantize", "rtn", "--sparsity", "0.5"], "method none prunes nothing"),
    (["--method", "shortgpt", "--remove-layers", "1", "--quantize", "rtn", "--group-size", "0"], "group_size"),
    (["--method", "shortgpt", "--remove-layres", "1", "--quantize", "rtn"], "No such option"),
])
def test_bad_quantization_input_is_one_line_exit_2_before_any_model_loads(tmp_path, monkeypatch, args, message):
    import prunescale.models.loader as loader

    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loader, "load_model", no_load)
    out = tmp_path / "o"
    r = runner.invoke(app, ["prune", "--model", "tiny-reasoner", *args, "--out", str(out)])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not out.exists() and not list(tmp_path.glob(".o.tmp-*"))


def _study(tmp_path: Path, model_dir: Path, body: str) -> Path:
    p = tmp_path / "q.yaml"
    p.write_text(f"""name: q
model: {model_dir}
dtype: fp32
calibration: {{source: tiny, nsamples: 4, seqlen: 32, seed: 0}}
{body}
eval: {{benchmarks: [tiny], limit: 6, budgets: [0, 6], answer_budget: 3}}
""")
    return p


def test_the_grid_axis_crosses_every_unquantized_variant_and_names_counterparts(tmp_path, model_dir):
    spec = load_spec(_study(tmp_path, model_dir, """variants:
  - {name: own, method: magnitude, sparsity: 0.5, quantize: rtn, bits: 8, group_size: 32}
grid:
  unstructured: {methods: [wanda], sparsities: [0.5]}
  quantize: [none, {method: gptq, bits: 4, group_size: 32}]"""))
    variants = expand(spec)
    names = [v.name for v in variants]
    assert names == ["dense", "dense-gptq-w4-g32", "own", "wanda-50-uniform", "wanda-50-uniform-gptq-w4-g32"]
    kinds = {v.name: v.kind for v in variants}
    assert kinds["dense"] == "dense" and kinds["dense-gptq-w4-g32"] == "quantized"
    assert counterparts(variants) == {"dense-gptq-w4-g32": "dense",
                                      "wanda-50-uniform-gptq-w4-g32": "wanda-50-uniform"}  # "own": none in the study
    bad = _study(tmp_path, model_dir, "grid:\n  quantize: [{method: gptq, bits: 5}]")
    with pytest.raises(PrunescaleError, match="bits must be one of"):
        load_spec(bad)


def test_a_study_with_quantized_variants_reports_bits_and_sizes(tmp_path, model_dir):
    spec = _study(tmp_path, model_dir, """variants:
  - {name: wanda, method: wanda, sparsity: 0.5}
  - {name: wanda-rtn, method: wanda, sparsity: 0.5, quantize: rtn, group_size: 32}
  - {name: dense-rtn, method: dense, quantize: rtn, group_size: 32}""")
    out = tmp_path / "study"
    r = runner.invoke(app, ["study", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = {row["variant"]: row for row in csv.DictReader((out / "results.csv").open())}
    assert {k: rows[k]["quantize"] for k in rows} == {"dense": "none", "wanda": "none", "wanda-rtn": "rtn-w4-g32",
                                                    "dense-rtn": "rtn-w4-g32"}
    assert (rows["dense"]["bits"], rows["wanda-rtn"]["bits"], rows["dense-rtn"]["kind"]) == ("32", "4", "quantized")
    assert (rows["wanda-rtn"]["quantized_from"], rows["dense-rtn"]["quantized_from"]) == ("wanda", "dense")
    index = json.loads((out / "index.json").read_text())
    assert {e["item_kind"] for v in index["variants"] for e in v["evals"]} == {"tiny"}  # read by the diagnostics
    size = {k: float(rows[k]["weight_bytes"]) for k in rows}
    assert size["wanda-rtn"] < size["dense-rtn"] < size["dense"] and size["wanda"] < size["dense"]
