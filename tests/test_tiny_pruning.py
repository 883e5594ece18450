"""Pruning the shipped tiny reasoner: calibrated methods beat magnitude; layer removal hurts reasoning."""

from __future__ import annotations

import copy

import pytest

from prunescale.data.calibration import load_calibration
from prunescale.eval.perplexity import perplexity
from prunescale.models.loader import load_model
from prunescale.prune.unstructured import Pattern, prune_model, uniform


@pytest.fixture(scope="module")
def tiny():
    lm = load_model("tiny-reasoner", dtype="fp32")
    calib = load_calibration("tiny", lm.tokenizer, 32, 128, seed=0, split="train")
    held = load_calibration("tiny", lm.tokenizer, 32, 128, seed=0, split="heldout")
    return lm, calib, held


@pytest.mark.slow
def test_wanda_and_sparsegpt_beat_magnitude_at_50_percent(tiny):
    lm, calib, held = tiny
    ppl = {"dense": perplexity(lm.model, held.samples)["perplexity"]}
    for method in ("magnitude", "wanda", "sparsegpt"):
        model = copy.deepcopy(lm.model)
        prune_model(model, method, Pattern(uniform(model, 0.5)), calib.samples, progress=False)
        ppl[method] = perplexity(model, held.samples)["perplexity"]
    assert ppl["dense"] < min(ppl["wanda"], ppl["sparsegpt"])
    assert ppl["wanda"] < ppl["magnitude"] and ppl["sparsegpt"] < ppl["magnitude"]


@pytest.mark.slow
def test_shortgpt_picks_a_late_block_and_first_block_matters_most(tiny):
    from prunescale.prune.structured.rules import RULES, RuleInput

    lm, calib, _ = tiny
    plan = RULES["shortgpt"](RuleInput(lm.model, 1, calib.samples[:16]))
    bi = plan.scores["block_influence"]
    assert max(range(len(bi)), key=bi.__getitem__) == 0  # the first block rewrites the embedding most
    assert plan.indices[0] != 0
