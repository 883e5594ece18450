"""One progress-bar style for every long step (pruning blocks, evaluation samples, study variants)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(label: str, unit: str, enabled: bool = True) -> Progress:
    """A transient bar: ``label ━━━━ 3/12 unit 0:00:04 ETA 0:00:12``; silent when ``enabled`` is False."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )
