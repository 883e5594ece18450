"""Where study stages live: folders named by a content hash of their inputs, a lock, atomic files.

A stage's folder name is ``<readable name>-<hash>``, the hash covering everything that determines the
stage's output (model, method, allocation, calibration, seeds, settings) and the stage's code version.
A finished stage is recognised by its final file (written last, atomically) and reused; an unfinished
evaluation resumes from its ``samples.jsonl``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunescale.errors import PrunescaleError

# Bump when a stage's code changes what it writes, so old folders are not reused.
# prune 2: ShortGPT/angular as their references, AlphaPruning's x_min at the spectral peak, LayerIF's sign;
# 3: OWL/DLP no longer change Wanda's regime, manifests record the regime and notices;
# eval 2: literal boundary, model formats, cue-free grading; 3: pooled intervals in summary.json, Wait counts;
# 4: summaries record notices, GSM8K's validation split carved from train
STAGE_VERSIONS = {"prune": 3, "eval": 4}


def stage_key(stage: str, inputs: dict) -> str:
    payload = json.dumps({"stage": stage, "version": STAGE_VERSIONS[stage], **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def clean_stale_temps(folder: Path) -> None:
    """Remove temp folders/files a killed run left behind (``.name.tmp-*``, ``.name.tmp``)."""
    if not folder.exists():
        return
    for p in folder.iterdir():
        if p.name.startswith(".") and ".tmp" in p.name:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


@contextmanager
def study_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on the study folder: a second run on the same folder stops with a clear error."""
    out.mkdir(parents=True, exist_ok=True)
    fh = (out / ".lock").open("w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise PrunescaleError(f"another prunescale study is running in {out}") from None
    try:
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def claim_folder(out: Path, name: str) -> None:
    """Refuse a study folder that belongs to a study of another name."""
    meta = out / "study.json"
    if meta.exists():
        owner = json.loads(meta.read_text()).get("name")
        if owner != name:
            raise PrunescaleError(f"{out} belongs to study {owner!r}, not {name!r}; choose another --out")
    elif out.exists() and any(p for p in out.iterdir() if p.name != ".lock"):
        raise PrunescaleError(f"{out} is not empty and holds no study; choose another --out")
