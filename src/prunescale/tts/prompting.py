"""Prompts and thinking markers per model family.

The thinking block's opener/closer come from the tokenizer: ``<think>``/``</think>`` when those are tokens
(Qwen3, R1 distills, the tiny reasoner), ``<|im_start|>think``/``<|im_start|>answer`` for s1-style chat
templates, or an explicit override. If the chat template already opens the block, it is not opened twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from prunescale.errors import PrunescaleError
from prunescale.tts.benchmarks import Item

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct choice, e.g. 'Answer: B'."


@dataclass(frozen=True)
class ThinkFormat:
    opener: str
    closer: str

    def closer_ids(self, tok: PreTrainedTokenizerBase) -> list[int]:
        return tok(self.closer, add_special_tokens=False).input_ids

    def stop(self, tok: PreTrainedTokenizerBase) -> tuple[int, ...]:
        """Token ids that end a thinking phase: one token for ``</think>``-style closers, else a sequence."""
        ids = tuple(self.closer_ids(tok))
        if not ids:
            raise PrunescaleError(f"thinking closer {self.closer!r} tokenizes to nothing")
        return ids


def think_format(tok: PreTrainedTokenizerBase, override: tuple[str, str] | None = None) -> ThinkFormat:
    if override:
        return ThinkFormat(*override)
    vocab = tok.get_vocab()
    if "<think>" in vocab and "</think>" in vocab:
        return ThinkFormat("<think>", "</think>")
    if "<|im_start|>think" in (tok.chat_template or "") or "<|im_start|>" in vocab and "think" in (
        tok.chat_template or ""
    ):
        return ThinkFormat("<|im_start|>think", "<|im_start|>answer")
    return ThinkFormat("<think>", "</think>")


def user_message(item: Item) -> str:
    if item.kind == "tiny":
        return item.question
    if item.kind == "choice":
        options = "\n".join(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(item.choices))
        return f"{item.question}\n\n{options}\n\n{CHOICE_INSTRUCTION}"
    return f"{item.question}\n\n{MATH_INSTRUCTION}"


def render(tok: PreTrainedTokenizerBase, item: Item, fmt: ThinkFormat) -> str:
    """Chat-formatted prompt ending inside an open thinking block (opened exactly once)."""
    content = user_message(item)
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                       add_generation_prompt=True)
    else:
        text = content + "\n"
    if not text.rstrip().endswith(fmt.opener):
        text += fmt.opener + "\n"
    return text


def answer_cue(item: Item) -> str:
    """What follows a *forced* closer: the start of an answer the grader can read."""
    if item.kind == "tiny":
        return "\n\n"
    if item.kind == "choice":
        return "\n\nFinal Answer: "
    return "\n\nFinal Answer: \\boxed{"
