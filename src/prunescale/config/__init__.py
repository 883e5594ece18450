"""Validated specifications: one schema per concept, used by the CLI, the Python API and study YAML.

Every option is declared once, with its default, its constraint and its help text, in one of the option
groups below; the specs are compositions of those groups:

* :class:`Calibration` — the data every calibrated method, allocation and layer score reads;
* :class:`AllocationOptions` — how a global sparsity is spread over blocks (knobs of OWL, AlphaPruning,
  LayerIF, a file);
* :class:`UnstructuredOptions` / :class:`StructuredOptions` — one pruning method and its settings;
* :class:`EvalOptions` — how to evaluate.

A CLI command's options are generated from the groups it takes (:mod:`prunescale.cli_options`: a field
added to a group is an option of every such command), the command builds its spec from the options the
user gave (the rest keep these defaults), a study variant *is* :class:`UnstructuredOptions` or
:class:`StructuredOptions` plus a name (a prune spec minus model, data and output), and cross-field rules
run here, so every entry point rejects the same bad input with the same message before any model or
data is loaded. ``extra="forbid"`` everywhere: a misspelled option is an error, never ignored.
"""

from prunescale.config.common import NSAMPLES, SEQLEN, Calibration, Device, ModelInput, Output
from prunescale.config.evaluation import EvalOptions, EvalSpec
from prunescale.config.fields import (
    DTYPE_NAMES,
    ENGINES,
    Strict,
    one_line,
    parse_nm,
    read_allocation_file,
    validated,
)
from prunescale.config.pruning import (
    AllocationOptions,
    AllocationSpec,
    PruneSpec,
    StructuredOptions,
    StructuredSpec,
    UnstructuredOptions,
    grid_knobs,
)
from prunescale.config.quantization import QuantizeOptions, QuantizeSpec, SaveFormat

__all__ = [
    "DTYPE_NAMES", "ENGINES", "NSAMPLES", "SEQLEN", "AllocationOptions", "AllocationSpec", "Calibration", "Device",
    "EvalOptions", "EvalSpec", "ModelInput", "Output", "PruneSpec",
    "QuantizeOptions", "QuantizeSpec", "SaveFormat", "Strict", "StructuredOptions", "StructuredSpec",
    "UnstructuredOptions", "grid_knobs", "one_line", "parse_nm", "read_allocation_file", "validated",
]
