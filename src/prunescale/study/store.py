"""Where study stages live: folders named by a content hash of their inputs, a lock, atomic files.

A stage's folder name is ``<readable name>-<hash>``, the hash covering everything that determines the
stage's output (model, method, allocation, calibration, seeds, settings) and the code that computes it
(:func:`code_digest`), so a folder made by other code is never reused and nobody has to remember to say so.
A finished stage is recognised by its final file (written last, atomically) and reused; an unfinished
evaluation resumes from its ``samples.jsonl``.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prunescale.errors import PrunescaleError

PACKAGE = Path(__file__).resolve().parent.parent
# The code each stage runs, relative to the package: what it computes and writes depends on these and on
# nothing else of prunescale (the CLI, the report and the statistics read finished stages). Data loaders
# and the embedded model's plugin are in both: they decide the calibration tokens and the benchmark items.
STAGE_CODE = {
    "prune": ("prune", "models", "data", "toy", "registry.py", "provenance.py", "api/pruning.py",
              "api/structured.py", "api/output.py", "api/loading.py", "api/quantize.py"),
    "eval": ("tts", "eval", "models", "data", "toy", "provenance.py", "api/evaluation.py"),
}


def source_digest(files: Iterable[Path]) -> str:
    """A hash of what these Python files *do*: their syntax trees without docstrings, comments or layout, so a
    reworded docstring or a reformatted line keeps every cached stage and any change of code does not."""
    h = hashlib.sha256()
    for f in sorted(files):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        h.update(f.relative_to(PACKAGE).as_posix().encode() if f.is_relative_to(PACKAGE) else f.name.encode())
        h.update(ast.dump(tree, annotate_fields=False).encode())
    return h.hexdigest()[:16]


@functools.cache
def code_digest(stage: str) -> str:
    """The digest of the code ``stage`` runs (:data:`STAGE_CODE`)."""
    files: list[Path] = []
    for part in STAGE_CODE[stage]:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return source_digest(files)


def stage_key(stage: str, inputs: dict) -> str:
    """The hash in a stage folder's name: its inputs and the digest of its code."""
    payload = json.dumps({"stage": stage, "code": code_digest(stage), **inputs}, sort_keys=True, default=str)
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
