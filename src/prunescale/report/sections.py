"""A report section: a title, a paragraph and a table, rendered to Markdown and HTML from the same data, so
the two files of a report can never say different things."""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass
class Section:
    """One report section: a title, a paragraph and a table, rendered to Markdown and HTML alike."""

    title: str
    text: str
    header: list[str]
    rows: list[list[str]]
    level: int = 2  # the heading level: 2 for a section, 3 for a table within one
    note: str = ""  # a footnote under the table

    def markdown(self) -> str:
        lines = [f"{'#' * self.level} {self.title}", ""]
        if self.text:
            lines += [self.text, ""]
        if self.rows:
            lines += ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        text = f"<p>{esc(self.text)}</p>" if self.text else ""
        h = f"h{self.level}"
        if not self.rows:
            return f"<{h}>{esc(self.title)}</{h}>{text}"
        head = "".join(f"<th>{esc(c)}</th>" for c in self.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in self.rows)
        note = f"<p><small>{esc(self.note)}</small></p>" if self.note else ""
        return (f"<{h}>{esc(self.title)}</{h}>{text}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"{note}")


def pct_ci(value: float, low: float, high: float, signed: bool = False) -> str:
    """A proportion and its interval in percent, one format for every table (signed for differences)."""
    v = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return f"{v} [{100 * low:.1f}, {100 * high:.1f}]"
