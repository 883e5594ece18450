"""One pruning regime per comparison: an allocation decides how much each module is pruned, never from
which activations the method gathers its statistics. `sequential` (the default) calibrates every block on
the outputs of the already-pruned blocks under every allocation; OWL's and DLP's scoring pass is a dense
pass of its own; the shared dense pass only with `sequential` off. The manifest, results tables and the
report name the regime, and the report flags comparisons across regimes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunescale.api import prune
from prunescale.config import PruneSpec

CAL = {"source": "tiny", "nsamples": 4, "seqlen": 32}


def _prune(model: Path, out: Path, **kw) -> dict:
    prune(PruneSpec(model=str(model), sparsity=0.5, calibration=CAL, out=out, **kw), log=lambda _m: None,
          progress=False)
    return json.loads((out / "pruning_manifest.json").read_text())


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("arch", ["qwen3"])
@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize("allocation", ["owl", "dlp"])
@pytest.mark.parametrize("method", ["wanda", "ria", "wanda+dsnot"])
def test_an_allocation_never_changes_how_the_method_calibrates(tmp_path, saved_tiny, method, allocation,
                                                                 sequential):
    """OWL's (DLP's) per-module sparsities, pruned directly and from a file holding the same numbers, give
    the very same weights in both regimes; on main the OWL run pruned on dense activations while the file
    run (and uniform) pruned sequentially."""
    kw = {"method": method, "sequential": sequential}
    m = _prune(saved_tiny, tmp_path / "a", allocation=allocation, **kw)
    alloc_file = tmp_path / "a" / "allocation.json"
    assert len(set(m["allocation_per_block"])) > 1  # not a uniform allocation in disguise
    f = _prune(saved_tiny, tmp_path / "f", allocation=f"file:{alloc_file}", **kw)
    assert m["regime"] == f["regime"] == ("sequential" if sequential else "dense-activations")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "f")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["llama"])
def test_block_forwards_of_each_regime(tmp_path, saved_tiny):
    """Sequential OWL = its dense scoring pass + the method's sequential pass; dense OWL = one shared pass;
    uniform = the method's pass; magnitude reads no data."""
    one_pass = 2 * 2 - 1  # two blocks: the last is not propagated
    seen = {}
    for name, kw in {"uniform": dict(method="wanda"), "owl": dict(method="wanda", allocation="owl"),
                     "owl-dense": dict(method="wanda", allocation="owl", sequential=False),
                     "uniform-dense": dict(method="wanda", sequential=False),
                     "sparsegpt-owl": dict(method="sparsegpt", allocation="owl"),
                     "magnitude": dict(method="magnitude")}.items():
        m = _prune(saved_tiny, tmp_path / name, **kw)
        seen[name] = (m["regime"], m["block_forwards"])
    assert seen["uniform"] == ("sequential", one_pass)
    assert seen["owl"] == ("sequential", 2 * one_pass)
    assert seen["owl-dense"] == ("dense-activations", one_pass)
    assert seen["uniform-dense"] == ("dense-activations", one_pass)
    assert seen["sparsegpt-owl"][0] == "sequential"
    assert seen["magnitude"] == ("data-free", 0)


def test_dense_statistics_never_reach_a_sequential_run():
    from prunescale.prune.methods import prune_wanda
    from prunescale.prune.unstructured import Pattern

    with pytest.raises(ValueError, match="dense model were given to a sequential run"):
        prune_wanda(torch.nn.Linear(2, 2), Pattern(), [], input_stats={}, sequential=True)
