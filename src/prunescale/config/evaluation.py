"""The options of evaluation: one run (:class:`EvalSpec`) and a study's ``eval:`` section (:class:`EvalOptions`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from prunescale.config.common import Device, ModelInput, Output
from prunescale.config.fields import ENGINES, NonNegative, OptionalPositive, Positive, one_of, within


class EvalOptions(Device):
    """How to evaluate (one eval run, and a study's ``eval:`` section)."""

    split: str = Field("test", description="Benchmark split.")
    limit: OptionalPositive = Field(None, description="Use the first K items.")
    budgets: list[int] = Field(description="Thinking budgets in tokens, e.g. 0,16,64,256 (0 = no thinking); "
                               "any order, kept sorted.")
    wait: NonNegative = Field(0, description="Force K 'Wait' extensions after natural ends.")
    min_budget: NonNegative = Field(0, description="Extend with 'Wait' until at least B thinking tokens.")
    samples: Positive = Field(1, description="Samples per item and seed (needs a temperature > 0).")
    temperature: Annotated[float, within("temperature", 0)] = Field(0.0, description="0 = greedy.")
    top_p: Annotated[float, within("top-p", 0, 1, low_open=True, high_closed=True)] = Field(
        1.0, description="Nucleus sampling mass.")
    top_k: NonNegative = Field(0, description="Sample among the K most likely tokens (0 = off; Qwen3's card: "
                               "20).")
    min_p: Annotated[float, within("min-p", 0, 1)] = Field(
        0.0, description="Drop tokens below P × the top probability (0 = off).")
    seeds: list[int] = Field([0], description="Seeds, e.g. 7,11,42.")
    answer_budget: Positive = Field(64, description="Tokens for the answer after thinking.")
    engine: Annotated[str, one_of("engine", ENGINES)] = Field("hf", description="hf | vllm.")
    tensor_parallel_size: Positive = Field(1, description="vllm: GPUs per model (tensor parallel).")
    batch_size: Positive = Field(32, description="Rows decoded together by the hf engine (one trajectory's "
                                 "answers to all budgets share a row); a finished row is replaced by a waiting one.")
    think_open: str | None = Field(None, description="Override the thinking opener, e.g. '<|im_start|>think' (s1's "
                                   "markers select the whole s1 format). Default: the model's family.")
    think_close: str | None = Field(None, description="Override the thinking closer, e.g. '<|im_start|>answer'.")

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one budget")
        if any(b < 0 for b in v):
            raise ValueError(f"budgets must be non-negative integers, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"budgets repeat: {v}")
        return sorted(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct and at least one, got {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> EvalOptions:
        if self.temperature == 0 and self.samples > 1:
            raise ValueError("greedy decoding (temperature 0) gives identical samples: use --temperature > 0 "
                             "for --samples > 1")
        if (self.think_open is None) != (self.think_close is None):
            raise ValueError("give both --think-open and --think-close, or neither")
        return self


class EvalSpec(EvalOptions, ModelInput, Output):
    """One evaluation: a model on a benchmark over budgets × seeds × samples."""

    overwrite: bool = Field(False, description="Replace a run folder holding a different run (the same run resumes).")
    benchmark: str = Field(description="@benchmarks@.")
    label: str | None = Field(None, description="Variant name recorded in samples.jsonl.")
    grade_timeout: Annotated[float, within("grade timeout", 0, low_open=True)] = Field(
        5.0, description="Seconds one answer's grading may take.")
