"""Validated specifications: one schema per concept, used by the CLI, the Python API and study YAML.

Every option is declared once, with its default, its constraint and its help text, in one of the option
groups below; the specs are compositions of those groups:

* :class:`Calibration` — the data every calibrated method, allocation and layer score reads;
* :class:`AllocationOptions` — how a global sparsity is spread over blocks (knobs of OWL, AlphaPruning,
  LayerIF, a file);
* :class:`UnstructuredOptions` / :class:`StructuredOptions` — one pruning method and its settings;
* :class:`EvalOptions` — how to evaluate.

A CLI command builds its spec from the options the user gave (the rest keep these defaults; a test
checks every CLI option against its field), a study variant *is* :class:`UnstructuredOptions` or
:class:`StructuredOptions` plus a name (a prune spec minus model, data and output), and cross-field rules
run here, so every entry point rejects the same bad input with the same message before any model or
data is loaded. ``extra="forbid"`` everywhere: a misspelled option is an error, never ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from prunescale.errors import PrunescaleError

UNSTRUCTURED = ("magnitude", "wanda", "sparsegpt", "ria")
REFINEMENTS = ("dsnot",)
STRUCTURED = ("shortgpt", "angular", "reverse", "random", "layers", "laco")
ALLOCATIONS = ("uniform", "owl", "alpha", "layerif", "dlp", "atp", "file")
DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")
ENGINES = ("hf", "vllm")
# the options each method reads (beyond the sparsity pattern), and the knobs each allocation reads: an
# option the user sets for a method or allocation that does not read it is an error, not ignored
METHOD_OPTIONS = {"magnitude": (), "wanda": ("sequential",), "sparsegpt": ("sequential", "blocksize", "percdamp"),
                  "ria": ("sequential", "ria_a", "ria_permute")}
REFINE_OPTIONS = {"dsnot": ("dsnot_cycles", "dsnot_threshold", "dsnot_skip")}
REMOVAL_OPTIONS = {"reverse": ("keep_last",), "laco": ("laco_threshold", "laco_span"), "shortgpt": ("shortgpt_last",)}
ALLOCATION_KNOBS = {"uniform": (), "file": (), "owl": ("owl_m", "owl_lambda"), "alpha": ("epsilon",),
                    "layerif": ("epsilon", "layerif_data", "layerif_examples"), "dlp": ("dlp_alpha",),
                    "atp": ("atp_beta",)}


def parse_nm(text: str) -> tuple[int, int]:
    """``"2:4"`` → (2, 4): keep N of every M consecutive input weights; needs 0 < N < M."""
    try:
        n_str, m_str = text.split(":")
        n, m = int(n_str), int(m_str)
    except ValueError:
        raise ValueError(f"N:M must look like 2:4, got {text!r}") from None
    if not 0 < n < m:
        raise ValueError(f"N:M needs 0 < N < M, got {text!r}")
    return n, m


def read_allocation_file(path: str) -> dict[str, float]:
    """An allocation file's entries ({module name or block index: sparsity in [0, 1)}), checked for what
    can be checked without the model; coverage and the mean are checked against the model later."""
    p = Path(path).expanduser()
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"allocation file not found: {path}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"allocation file {path} is not valid JSON") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"allocation file {path} must be a non-empty JSON object")
    for key, value in raw.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ValueError(f"allocation file {path}: {key!r} has sparsity {value!r}, outside [0, 1)")
    return {k: float(v) for k, v in raw.items()}


def _at_least(low: int) -> AfterValidator:
    def check(v: int | None) -> int | None:
        if v is not None and v < low:
            raise ValueError(f"must be ≥ {low}, got {v}")
        return v

    return AfterValidator(check)


def _within(name: str, low: float, high: float | None = None, low_open: bool = False,
            high_closed: bool = False) -> AfterValidator:
    """A number from ``low`` (excluded with ``low_open``) up to ``high`` (included with ``high_closed``;
    no upper end when None)."""
    if high is None:
        shown = f"{'>' if low_open else '≥'} {low}"
    else:
        shown = f"in {'(' if low_open else '['}{low}, {high}{']' if high_closed else ')'}"

    def check(v: float | None) -> float | None:
        if v is None:
            return v
        below = v <= low if low_open else v < low
        above = high is not None and (v > high if high_closed else v >= high)
        if below or above:
            raise ValueError(f"{name} must be {shown}, got {v}")
        return v

    return AfterValidator(check)


def _one_of(what: str, allowed: tuple[str, ...]) -> AfterValidator:
    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; choose one of {', '.join(allowed)}")
        return v

    return AfterValidator(check)


Positive = Annotated[int, _at_least(1)]
NonNegative = Annotated[int, _at_least(0)]
OptionalPositive = Annotated[int | None, _at_least(1)]
DType = Annotated[str, _one_of("dtype", DTYPE_NAMES)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _changed(spec: BaseModel, names: set[str]) -> list[str]:
    """Which of these fields differ from their defaults (an option set for a method or an allocation that
    does not read it; a full dump of a spec, defaults included, passes)."""
    fields = type(spec).model_fields
    return sorted(n for n in names if getattr(spec, n) != fields[n].default)


NSAMPLES = {"prune": 128, "scores": 32}  # calibration sequences by purpose: pruning statistics, layer scores
SEQLEN = {"tiny": 128, "other": 512}  # tokens per sequence: the tiny reasoner's short traces, any other source


class Calibration(Strict):
    """Calibration data (a study's ``calibration:`` section; ``--calib/--nsamples/--seqlen/--seed``)."""

    source: str | None = Field(None, description="Calibration source: @sources@ (default: the model's embedded "
                               "source).")
    nsamples: OptionalPositive = Field(None, description=f"Calibration sequences (default {NSAMPLES['prune']} for "
                                       f"pruning statistics, {NSAMPLES['scores']} for layer scores and allocation "
                                       "previews).")
    seqlen: Annotated[int | None, _at_least(2)] = Field(
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


class AllocationOptions(Strict):
    """How a global sparsity S is spread over blocks, with every allocation's knobs."""

    allocation: str = Field("uniform", description="Layer-wise allocation of S: @allocations@.")
    owl_m: Annotated[float, _within("OWL's outlier threshold M", 0, low_open=True)] = Field(
        5.0, description="OWL: outlier threshold M (scores > M × mean).")
    owl_lambda: Annotated[float, _within("OWL's λ", 0, low_open=True)] = Field(
        0.08, description="OWL: block sparsities span a range 2λ wide around S (mean S).")
    epsilon: Annotated[float, _within("ε", 0, 1, low_open=True)] = Field(
        0.3, description="AlphaPruning / LayerIF: ratio range 1 ± ε.")
    layerif_data: str | None = Field(None, description="LayerIF task data source (its train and held-out splits "
                                     "are used; default: the model's embedded source).")
    layerif_examples: Positive = Field(32, description="LayerIF: training examples (half as many held out).")
    dlp_alpha: Annotated[float, _within("DLP's α", 0, 1, low_open=True)] = Field(
        0.15, description="DLP: block sparsities span S ± α (by block importance; mean S).")
    atp_beta: Annotated[float, _within("ATP's β", 0, 1)] = Field(
        0.01, description="ATP: step of the arithmetic progression of block sparsities (deeper blocks pruned "
        "more; mean S).")

    @field_validator("allocation")
    @classmethod
    def _allocation(cls, v: str) -> str:
        kind, _, path = v.partition(":")
        if kind not in ALLOCATIONS or (kind == "file") != bool(path):
            raise ValueError(f"unknown allocation {v!r}; choose one of {', '.join(ALLOCATIONS[:-1])}, file:PATH")
        if kind == "file":
            read_allocation_file(path)  # a missing or malformed file is found before anything loads
        return v

    @property
    def allocation_kind(self) -> str:
        return self.allocation.split(":", 1)[0]

    def check_knobs(self, sparsity: float | None) -> None:
        """Knobs belong to their allocation, and OWL's λ fits the target sparsity."""
        knobs = {k for ks in ALLOCATION_KNOBS.values() for k in ks}
        stray = _changed(self, knobs - set(ALLOCATION_KNOBS[self.allocation_kind]))
        if stray:
            raise ValueError(f"{stray[0]} is not a knob of allocation {self.allocation_kind!r}")
        if self.allocation == "owl" and sparsity is not None and (
                not self.owl_lambda < sparsity or sparsity + self.owl_lambda >= 1):
            raise ValueError(f"OWL needs 0 < λ < S and S + λ < 1 (S={sparsity}, λ={self.owl_lambda})")


class UnstructuredOptions(AllocationOptions):
    """One unstructured pruning method and its settings (a study variant of this kind, minus its name)."""

    method: Annotated[str, _one_of("method", UNSTRUCTURED)] = Field(
        description="@methods@; METHOD+REFINEMENT (@refinements@, e.g. wanda+dsnot) refines its mask.")
    refine: str | None = Field(
        None, description="Mask refinement after the method: dsnot (prune-and-grow without training).")
    sparsity: Annotated[float | None, _within("sparsity", 0, 1)] = Field(
        None, description="Target global sparsity S in [0, 1).")
    nm: str | None = Field(None, description="N:M pattern instead of a sparsity, e.g. 2:4.")
    group: str = Field("row", description="Magnitude and RIA comparison group: row | matrix (RIA's reference "
                       "code default).")
    sequential: bool = Field(True, description="Wanda, RIA: calibrate each block on the outputs of the already-"
                             "pruned blocks, whatever the allocation (off: on the dense model, sharing OWL's or "
                             "DLP's pass). SparseGPT, whose blocks always see the pruned ones: prune q,k,v → o → "
                             "gate,up → down in order (off: one pass per block).")
    blocksize: Positive = Field(128, description="SparseGPT: columns per lazy-update block.")
    percdamp: Annotated[float, _within("percdamp", 0, 1, low_open=True)] = Field(
        0.01, description="SparseGPT: Hessian damping as a fraction of its mean diagonal.")
    ria_a: Annotated[float, _within("RIA's a", 0)] = Field(
        0.5, description="RIA: exponent a of the input-feature norm ‖X_j‖^a.")
    ria_permute: bool = Field(False, description="RIA with N:M: permute input channels so that the N:M groups "
                              "keep more importance (the mask is N:M in the permuted order).")
    dsnot_cycles: Positive = Field(50, description="DSnoT: most prune-and-grow swaps per row.")
    dsnot_threshold: Annotated[float, _within("DSnoT's threshold", 0)] = Field(
        0.1, description="DSnoT: rows whose expected reconstruction error is below this stop early.")
    dsnot_skip: Annotated[str, _one_of("dsnot_skip", ("mlp", "none"))] = Field(
        "mlp", description="DSnoT: mlp = leave Linears whose name contains 'mlp' unrefined (the reference code's "
        "default), none = refine every Linear.")

    @model_validator(mode="before")
    @classmethod
    def _method_plus_refinement(cls, data: Any) -> Any:
        """``method: wanda+dsnot`` is short for ``method: wanda, refine: dsnot``."""
        if isinstance(data, dict) and isinstance(data.get("method"), str) and "+" in data["method"]:
            method, _, refine = data["method"].partition("+")
            if data.get("refine") not in (None, refine):
                raise ValueError(f"method {data['method']!r} and refine {data['refine']!r} disagree")
            data = {**data, "method": method, "refine": refine}
        return data

    @field_validator("nm")
    @classmethod
    def _nm(cls, v: str | None) -> str | None:
        if v is not None:
            parse_nm(v)
        return v

    @field_validator("refine")
    @classmethod
    def _refine(cls, v: str | None) -> str | None:
        if v is not None and v not in REFINEMENTS:
            raise ValueError(f"unknown refinement {v!r}; choose one of {', '.join(REFINEMENTS)}")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in ("row", "matrix"):
            raise ValueError(f"comparison group must be row or matrix, got {v!r}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> UnstructuredOptions:
        if (self.sparsity is None) == (self.nm is None):
            raise ValueError("give exactly one of sparsity (--sparsity) or an N:M pattern (--nm)")
        if self.nm is not None and self.allocation != "uniform":
            raise ValueError("an N:M pattern fixes the sparsity of every layer; it cannot take an allocation")
        self.check_knobs(self.sparsity)
        options = {k for ks in METHOD_OPTIONS.values() for k in ks}
        stray = _changed(self, options - set(METHOD_OPTIONS[self.method]))
        if stray:
            raise ValueError(f"{stray[0]} is not an option of {self.method}")
        refine_options = {k for ks in REFINE_OPTIONS.values() for k in ks}
        stray = _changed(self, refine_options - set(REFINE_OPTIONS.get(self.refine or "", ())))
        if stray:
            raise ValueError(f"{stray[0]} is an option of the {stray[0].split('_')[0]} refinement: add "
                             f"+{stray[0].split('_')[0]} to the method")
        if self.refine and self.nm:
            raise ValueError(f"{self.refine} refines unstructured masks; its swaps would break an N:M pattern")
        if self.ria_permute and not self.nm:
            raise ValueError("ria_permute permutes channels for an N:M pattern: give --nm")
        if self.group == "matrix" and self.method not in ("magnitude", "ria"):
            raise ValueError(f"the per-matrix comparison group is for magnitude and RIA; {self.method} prunes per row")
        return self

    @property
    def kind(self) -> str:
        return "unstructured"

    @property
    def nm_tuple(self) -> tuple[int, int] | None:
        return parse_nm(self.nm) if self.nm else None

    @property
    def label(self) -> str:
        """The method as one word: ``wanda`` or ``wanda+dsnot``."""
        return f"{self.method}+{self.refine}" if self.refine else self.method

    def method_options(self) -> dict[str, Any]:
        """The options the method's kernel takes, by name (with the refinement and its options, if any)."""
        opts = {k: getattr(self, k) for k in METHOD_OPTIONS[self.method]}
        if self.refine:
            opts["refine"] = {"name": self.refine, **{k: getattr(self, k) for k in REFINE_OPTIONS[self.refine]}}
        return opts


class StructuredOptions(Strict):
    """One layer-removal rule and how many blocks: a count, a matched fraction, or indices."""

    method: Annotated[str, _one_of("layer-removal method", STRUCTURED)] = Field(
        description="shortgpt | angular | reverse | random | layers | laco.")
    remove_layers: OptionalPositive = Field(None, description="Number of blocks to remove.")
    match_sparsity: Annotated[float | None, _within("match-sparsity", 0, 1, low_open=True)] = Field(
        None, description="Remove the block count whose parameter fraction is closest to this.")
    layers: list[int] | None = Field(None, description="Method 'layers': block indices, e.g. 3,7,12.")
    keep_last: bool = Field(False, description="Method 'reverse': never remove the last block.")
    laco_threshold: Annotated[float, _within("LaCo threshold", 0, 1, low_open=True, high_closed=True)] = Field(
        0.9, description="LaCo: minimum cosine similarity to keep a merge.")
    laco_span: Positive = Field(1, description="LaCo: following blocks folded into a block per merge.")
    shortgpt_last: Annotated[str, _one_of("shortgpt_last rule", ("never", "normed"))] = Field(
        "never", description="ShortGPT: never (the last block is never a candidate, as LPHIS scores it) | normed "
        "(score it against the final normed hidden state, as ShortGPT's own code).")

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one block index")
            if min(v) < 0:
                raise ValueError(f"block indices must be ≥ 0, got {min(v)}")
            if len(set(v)) != len(v):
                raise ValueError(f"block indices repeat: {v}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> StructuredOptions:
        given = sum(x is not None for x in (self.remove_layers, self.match_sparsity, self.layers))
        if self.method == "layers":
            if self.layers is None or given != 1:
                raise ValueError("method 'layers' takes --layers (block indices) and nothing else")
        elif self.layers is not None:
            raise ValueError(f"--layers is for method 'layers', not {self.method!r}")
        elif given != 1:
            raise ValueError("give exactly one of --remove-layers N or --match-sparsity S")
        options = {k for ks in REMOVAL_OPTIONS.values() for k in ks}
        stray = _changed(self, options - set(REMOVAL_OPTIONS.get(self.method, ())))
        if stray:
            raise ValueError(f"{stray[0]} is not an option of {self.method}")
        return self

    @property
    def kind(self) -> str:
        return "structured"


class ModelInput(Strict):
    model: str = Field(description="Embedded name, HF folder, .gguf file or hub id.")
    trust_remote_code: bool = Field(False, description="Allow model folders to run their own code.")


class PruneSpec(UnstructuredOptions, ModelInput, Device, Output):
    """One unstructured pruning run."""

    calibration: Calibration = Calibration()


class StructuredSpec(StructuredOptions, ModelInput, Device, Output):
    """One layer-removal run."""

    calibration: Calibration = Calibration()


class AllocationSpec(AllocationOptions, ModelInput, Device):
    """The per-block sparsities an allocation gives a model (``prunescale allocation``)."""

    sparsity: Annotated[float, _within("sparsity", 0, 1)] = Field(description="Target global sparsity S in [0, 1).")
    calibration: Calibration = Calibration()

    @model_validator(mode="after")
    def _cross(self) -> AllocationSpec:
        self.check_knobs(self.sparsity)
        return self


class EvalOptions(Device):
    """How to evaluate (one eval run, and a study's ``eval:`` section)."""

    split: str = Field("test", description="Benchmark split.")
    limit: OptionalPositive = Field(None, description="Use the first K items.")
    budgets: list[int] = Field(description="Thinking budgets in tokens, e.g. 0,16,64,256 (0 = no thinking); "
                               "any order, kept sorted.")
    wait: NonNegative = Field(0, description="Force K 'Wait' extensions after natural ends.")
    min_budget: NonNegative = Field(0, description="Extend with 'Wait' until at least B thinking tokens.")
    samples: Positive = Field(1, description="Samples per item and seed (needs a temperature > 0).")
    temperature: Annotated[float, _within("temperature", 0)] = Field(0.0, description="0 = greedy.")
    top_p: Annotated[float, _within("top-p", 0, 1, low_open=True, high_closed=True)] = Field(
        1.0, description="Nucleus sampling mass.")
    top_k: NonNegative = Field(0, description="Sample among the K most likely tokens (0 = off; Qwen3's card: "
                               "20).")
    min_p: Annotated[float, _within("min-p", 0, 1)] = Field(
        0.0, description="Drop tokens below P × the top probability (0 = off).")
    seeds: list[int] = Field([0], description="Seeds, e.g. 7,11,42.")
    answer_budget: Positive = Field(64, description="Tokens for the answer after thinking.")
    engine: Annotated[str, _one_of("engine", ENGINES)] = Field("hf", description="hf | vllm.")
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
    grade_timeout: Annotated[float, _within("grade timeout", 0, low_open=True)] = Field(
        5.0, description="Seconds one answer's grading may take.")


def one_line(exc: ValidationError, prefix: str = "", hidden: tuple[str, ...] = ()) -> str:
    """Pydantic's first error as one user-facing line naming where it is (``hidden``: location parts that
    are pydantic's own, such as the tags of a discriminated union)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if str(p) not in hidden)
    msg = first["msg"].removeprefix("Value error, ")
    text = f"{where}: {msg}" if where else msg
    return f"{prefix}{text}"


def validated(cls: type[BaseModel], **fields: object) -> Any:
    """Build a spec, turning pydantic's multi-line report into one user-facing line."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise PrunescaleError(one_line(exc)) from None
