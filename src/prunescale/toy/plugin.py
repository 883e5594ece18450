"""The tiny reasoner's entries in prunescale's registries: its benchmark, its item kind (exact verifier,
bare answers) and its calibration texts and prompts. Imported with :mod:`prunescale.toy`; the
application layer (:mod:`prunescale.plugins`) imports it, the evaluator and the data loaders never do."""

from __future__ import annotations

from prunescale.data.calibration import PROMPTS, documents
from prunescale.toy.tasks import sample_problems, verify
from prunescale.toy.tokenizer import EOS, THINK_CLOSE, render_prompt
from prunescale.tts.benchmarks import Item, benchmark
from prunescale.tts.kinds import Kind, register

SPLITS = ("train", "validation", "test", "hard")


@benchmark("tiny", "embedded: prunescale.toy.tasks (seeded splits)", SPLITS)
def tiny_items(split: str, limit: int | None, seed: int) -> list[Item]:
    problems = sample_problems(split, limit or 500, seed=seed)
    return [
        Item(f"tiny-{split}-{i}", p.prompt, p.answer, "tiny", meta={"k": p.k, "task": p.kind})
        for i, p in enumerate(problems)
    ]


@benchmark("tiny_hard", "embedded: the generator's hard split (13–16 steps, more than training; dense ≈ 25 %)")
def tiny_hard_items(split: str, limit: int | None, seed: int) -> list[Item]:
    """A benchmark with headroom: the hard split is reported as this benchmark's (only) test split, so a
    study can evaluate it beside ``tiny`` (a pruned model can beat dense here, not at 100 %)."""
    problems = sample_problems("hard", limit or 500, seed=seed)
    return [
        Item(f"tiny-hard-{i}", p.prompt, p.answer, "tiny", meta={"k": p.k, "task": p.kind})
        for i, p in enumerate(problems)
    ]


# The tiny reasoner answers bare after its thinking ("\n\n" then the answer), graded by the task's verifier;
# its cue replaces any format's "Final Answer:" cue.
register(Kind("tiny", "\n\n", lambda it: it.question, lambda it, text, start: text[start:].strip() or None,
              check=lambda it, answer: verify(it.question, answer), cue_wins=True))


@documents("tiny", {s: f"the task generator's {s} split (disjoint by construction)" for s in SPLITS})
def tiny_documents(split: str, seed: int) -> list[str]:
    return [
        render_prompt(p.prompt) + p.trace() + f"{THINK_CLOSE}\n\n{p.answer}{EOS}\n"
        for p in sample_problems(split, 2000, seed=seed)
    ]


def tiny_prompts(split: str, n: int, seed: int) -> list[Item]:
    problems = sample_problems(split, n, seed=seed)
    return [Item(f"tiny-{split}-{k}", p.prompt, p.answer, "tiny") for k, p in enumerate(problems)]


PROMPTS["tiny"] = tiny_prompts
