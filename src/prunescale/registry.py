"""Named things a user can choose, and what each of them needs: one :class:`Registry` type for every kind.

Pruning methods, refinements, allocations and layer-removal rules are *declared* here, each with its needs
(calibration data, the dense input statistics of an allocation's pass, a comparison group, N:M, a
refinement, the knobs it reads) and the dotted path of the function that implements it. Declarations are
cheap to import (no torch), so the option schema (:mod:`prunescale.config`) validates a spec and the CLI
shows its lists without loading a kernel; the implementation is imported the first time an entry is called.
Callers ask an entry what it needs instead of keeping lists of names: adding a method is one declaration
here (or in a plugin) plus its function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prunescale.errors import PrunescaleError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Name → entry, for one kind of thing (``kind`` names it in errors). A dict, so lookups, ``in`` and
    iteration (registration order, which is the order help texts list) work as on any mapping."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T, replace: bool = True) -> T:
        """Register ``entry`` under ``name`` (``replace=False``: a second entry of that name is an error)."""
        if not replace and name in self:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self[name] = entry
        return entry

    def get_or_fail(self, name: str, extra: tuple[str, ...] = ()) -> T:
        """The entry, or one user-facing line naming every choice (``extra``: choices that are not entries,
        such as ``file:PATH``)."""
        if name not in self:
            raise PrunescaleError(f"unknown {self.kind} {name!r}; choose one of {', '.join([*self, *extra])}")
        return self[name]


@dataclass(frozen=True)
class Declared:
    """A named choice implemented by a function elsewhere (``impl``: ``"module:function"`` or the function).
    Calling the entry calls the function, imported on first use."""

    impl: str | Callable[..., Any]
    calibrated: bool = False  # needs calibration data
    options: tuple[str, ...] = ()  # the spec fields it reads; setting another's is an error

    @property
    def fn(self) -> Callable[..., Any]:
        if callable(self.impl):
            return self.impl
        module, _, name = self.impl.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@dataclass(frozen=True)
class Method(Declared):
    """An unstructured pruning method: ``fn(model, pattern, samples, device, progress, **options)``."""

    reads_dense_stats: bool = False  # in the dense regime, reads the statistics of OWL's / DLP's dense pass
    takes_group: bool = False  # its comparison group may be a whole matrix (else per output row)


@dataclass(frozen=True)
class Removal(Declared):
    """A layer-removal rule: ``fn(RuleInput) -> RemovalPlan``."""


@dataclass(frozen=True)
class Allocator(Declared):
    """A layer-wise allocation: ``fn(AllocationContext) -> Allocation``; ``options`` are its knobs."""


_M = "prunescale.prune.methods:"
METHODS: Registry[Method] = Registry("method")
METHODS.add("magnitude", Method(_M + "prune_magnitude", takes_group=True))
METHODS.add("none", Method(_M + "prune_none"))  # prunes nothing: a quantize-only run (``--method none --quantize``)
METHODS.add("wanda", Method(_M + "prune_wanda", calibrated=True, reads_dense_stats=True, options=("sequential",)))
METHODS.add("sparsegpt", Method(_M + "prune_sparsegpt", calibrated=True,
                                options=("sequential", "blocksize", "percdamp")))
METHODS.add("ria", Method(_M + "prune_ria", calibrated=True, reads_dense_stats=True, takes_group=True,
                          options=("sequential", "ria_a", "ria_permute")))

# A refinement runs inside the method on each Linear's mask; it needs input statistics, so calibration data.
REFINEMENTS: Registry[Declared] = Registry("refinement")
REFINEMENTS.add("dsnot", Declared("prunescale.prune.dsnot:dsnot_refine", calibrated=True,
                                  options=("dsnot_cycles", "dsnot_threshold", "dsnot_skip")))

_R = "prunescale.prune.structured.rules:"
REMOVALS: Registry[Removal] = Registry("layer-removal method")
REMOVALS.add("shortgpt", Removal(_R + "shortgpt", calibrated=True, options=("shortgpt_last",)))
REMOVALS.add("angular", Removal(_R + "angular", calibrated=True))
REMOVALS.add("reverse", Removal(_R + "reverse", options=("keep_last",)))
REMOVALS.add("random", Removal(_R + "random_rule"))
REMOVALS.add("layers", Removal(_R + "explicit"))
REMOVALS.add("laco", Removal(_R + "laco", calibrated=True, options=("laco_threshold", "laco_span")))

_A = "prunescale.prune.allocation.registry:"
ALLOCATIONS: Registry[Allocator] = Registry("allocation")
ALLOCATIONS.add("uniform", Allocator(_A + "uniform"))
ALLOCATIONS.add("owl", Allocator(_A + "owl", calibrated=True, options=("owl_m", "owl_lambda")))
ALLOCATIONS.add("alpha", Allocator(_A + "alpha", options=("epsilon",)))
ALLOCATIONS.add("layerif", Allocator(_A + "layerif", options=("epsilon", "layerif_data", "layerif_examples")))
ALLOCATIONS.add("dlp", Allocator(_A + "dlp", calibrated=True, options=("dlp_alpha",)))
ALLOCATIONS.add("atp", Allocator(_A + "atp", options=("atp_beta",)))
ALLOCATIONS.add("file", Allocator(_A + "from_file"))


# Weight quantization after pruning (or alone): ``fn(model, samples, device, progress, **options) -> summary``.
_Q = "prunescale.prune.quantization:"
QUANTIZERS: Registry[Declared] = Registry("quantization method")
QUANTIZERS.add("rtn", Declared(_Q + "quantize_rtn", options=("bits", "group_size")))
QUANTIZERS.add("gptq", Declared(_Q + "quantize_gptq", calibrated=True, options=("bits", "group_size", "act_order")))


def knob_names(registry: Registry[Any]) -> set[str]:
    """Every option any entry of ``registry`` reads (the ones an entry that does not read them refuses)."""
    return {k for entry in registry.values() for k in entry.options}
