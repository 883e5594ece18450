"""The embedded model organism: the tiny reasoner's tasks, tokenizer, training and measurements, and the
scripted checkpoints. Importing the package registers the tiny reasoner's benchmark, item kind and
calibration sources (:mod:`prunescale.toy.plugin`)."""

from prunescale.toy import plugin  # noqa: F401
