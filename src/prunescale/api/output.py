"""The output-folder transaction every stage writes through: a temp folder beside ``--out``, moved into place
only when the stage finished and checked its result, removed when it failed. A failure half-way never
leaves a half-written folder behind, and never touches an existing one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunescale.errors import PrunescaleError


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Check ``out`` can be written and return a fresh temp folder beside it (see :func:`staged`)."""
    out = Path(out)
    if out.is_symlink():
        raise PrunescaleError(f"--out {out} is a symbolic link; give a real folder")
    if out.resolve() == Path.cwd().resolve() or out.name in ("", ".", ".."):
        raise PrunescaleError(f"--out {out} must name a folder, not the current or parent directory")
    if out.exists() and not out.is_dir():
        raise PrunescaleError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PrunescaleError(f"--out {out} is not empty; pass --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise PrunescaleError(f"cannot write to {out.parent}: {exc.strerror}") from exc


def commit_out(tmp: Path, out: Path) -> None:
    """Move a finished temp folder into place (replacing ``out`` if the caller allowed it)."""
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


@contextmanager
def staged(out: Path, overwrite: bool) -> Iterator[Path]:
    """``with staged(out, overwrite) as tmp:`` write into ``tmp``; it becomes ``out`` when the block ends
    and is removed if the block raises (interrupts included)."""
    out = Path(out)
    tmp = prepare_out(out, overwrite)
    try:
        yield tmp
        commit_out(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
