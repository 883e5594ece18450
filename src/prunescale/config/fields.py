"""The building blocks of every option group: constrained types, the one-line error, the strict base model.

A constraint's message names the option and the allowed range, so the CLI, the Python API and a study
YAML reject the same bad value with the same line. Names that come from a registry (methods, allocations,
layer-removal rules) are checked against it when the spec is validated, so a plugin's entry is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from prunescale.errors import PrunescaleError
from prunescale.registry import Registry

DTYPE_NAMES = ("auto", "fp32", "bf16", "fp16")
ENGINES = ("hf", "vllm")


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


def at_least(low: int) -> AfterValidator:
    def check(v: int | None) -> int | None:
        if v is not None and v < low:
            raise ValueError(f"must be ≥ {low}, got {v}")
        return v

    return AfterValidator(check)


def within(name: str, low: float, high: float | None = None, low_open: bool = False,
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


def one_of(what: str, allowed: tuple[str, ...]) -> AfterValidator:
    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"unknown {what} {v!r}; choose one of {', '.join(allowed)}")
        return v

    return AfterValidator(check)


def registered(registry: Registry[Any]) -> AfterValidator:
    """A name of ``registry`` (looked up when the spec is validated: entries registered later count)."""
    def check(v: str) -> str:
        if v not in registry:
            raise ValueError(f"unknown {registry.kind} {v!r}; choose one of {', '.join(registry)}")
        return v

    return AfterValidator(check)


Positive = Annotated[int, at_least(1)]
NonNegative = Annotated[int, at_least(0)]
OptionalPositive = Annotated[int | None, at_least(1)]
DType = Annotated[str, one_of("dtype", DTYPE_NAMES)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def changed(spec: BaseModel, names: set[str]) -> list[str]:
    """Which of these fields differ from their defaults (an option set for a method or an allocation that
    does not read it; a full dump of a spec, defaults included, passes)."""
    fields = type(spec).model_fields
    return sorted(n for n in names if getattr(spec, n) != fields[n].default)


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
