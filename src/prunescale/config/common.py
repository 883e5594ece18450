"""The option groups every command shares: calibration data, device and dtype, the output folder, the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from prunescale.config.fields import DType, OptionalPositive, Strict, at_least

NSAMPLES = {"prune": 128, "scores": 32}  # calibration sequences by purpose: pruning statistics, layer scores
SEQLEN = {"tiny": 128, "other": 512}  # tokens per sequence: the tiny reasoner's short traces, any other source


class Calibration(Strict):
    """Calibration data (a study's ``calibration:`` section; ``--calib/--nsamples/--seqlen/--seed``)."""

    source: str | None = Field(None, description="Calibration source: @sources@ (default: the model's embedded "
                               "source).")
    nsamples: OptionalPositive = Field(None, description=f"Calibration sequences (default {NSAMPLES['prune']} for "
                                       f"pruning statistics, {NSAMPLES['scores']} for layer scores and allocation "
                                       "previews).")
    seqlen: Annotated[int | None, at_least(2)] = Field(
        None, description=f"Tokens per calibration sequence (default {SEQLEN['tiny']} for the tiny reasoner's "
        f"source, else {SEQLEN['other']}).")
    seed: int = Field(0, description="Seed for calibration sampling.")

    def samples(self, purpose: str) -> int:
        """The number of sequences: as given, else the default for ``purpose`` (prune | scores)."""
        return self.nsamples or NSAMPLES[purpose]

    def length(self, source: str) -> int:
        """Tokens per sequence: as given, else the default for ``source``."""
        return self.seqlen or SEQLEN["tiny" if source.split(":")[-1] == "tiny" else "other"]


class Device(Strict):
    device: str = Field("cpu", description="Compute device: cpu, cuda, cuda:N.")
    dtype: DType = Field("auto", description="auto | fp32 | bf16 | fp16.")


class Output(Strict):
    out: Path = Field(description="Output folder.")
    overwrite: bool = Field(False, description="Replace a non-empty --out.")


class ModelInput(Strict):
    model: str = Field(description="Embedded name, HF folder, .gguf file or hub id.")
    trust_remote_code: bool = Field(False, description="Allow model folders to run their own code.")
