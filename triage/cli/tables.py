"""The prioritized queue as a table: plain text for pipes, rich on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from triage.cli.terminal import terminal_safe
from triage.tickets.queue import QueueRow

__all__ = ["plain_table", "plain_table_lines", "rich_table"]

WIDTH_SAMPLE = 1000
"""Rows whose cells set the plain table's column widths (the rest follow them)."""


_HEAD = ("REF", "QUEUE", "PRIO", "CLIENT", "SUBJECT", "STATUS", "ASSIGNEE", "DUE")


def _cells(r: QueueRow) -> tuple[str, ...]:
    return (
        r.ref_text,
        r.queue,
        r.priority,
        _cut(terminal_safe(r.client), 30),
        _cut(terminal_safe(r.subject), 40),
        r.status,
        r.assignee or "-",
        r.due_text,
    )


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()


def plain_table(rows: list[QueueRow]) -> str:
    """The queue as aligned plain text, one ticket a line (for pipes and files)."""
    return "\n".join(plain_table_lines(rows))


def plain_table_lines(rows: Iterable[QueueRow]) -> Iterator[str]:
    """:func:`plain_table` as it goes: the heading, then chunks of lines ("" when no rows).

    The widths come from the first :data:`WIDTH_SAMPLE` rows (all of them in a
    shorter queue); a later cell wider than its column pushes the rest of its line
    right. The rows are consumed as they come, never held all at once.
    """
    it = iter(rows)
    sample = [_cells(r) for r in islice(it, WIDTH_SAMPLE)]
    if not sample:
        return
    widths = [max(len(line[i]) for line in [_HEAD, *sample]) for i in range(len(_HEAD))]
    yield "\n".join([_line(_HEAD, widths), *(_line(c, widths) for c in sample)])
    while chunk := [_cells(r) for r in islice(it, WIDTH_SAMPLE)]:
        yield "\n".join(_line(c, widths) for c in chunk)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def rich_table(rows: list[QueueRow]) -> None:
    """The queue as a table on the terminal: breached rows red, urgent ones yellow."""
    from rich import box  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415 - only on a terminal
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    cells = [
        (
            r.ref_text,
            r.queue,
            r.priority,
            terminal_safe(r.client_name or r.client_addr),
            terminal_safe(r.subject),
            r.status,
            r.assignee or "-",
            r.due_text,
        )
        for r in rows
    ]
    names = ("Ref", "Queue", "Prio", "Client", "Subject", "Status", "Assignee", "Due")
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, name in enumerate(names)]
    # One line per ticket: the client and the subject are cut short, never the rest.
    client, subject = names.index("Client"), names.index("Subject")
    fixed = sum(w for i, w in enumerate(widths) if i not in (client, subject))
    spare = console.width - 2 * len(names) - fixed  # two spaces around each column
    widths[client] = max(8, min(widths[client], spare // 3))
    widths[subject] = max(10, min(widths[subject], spare - widths[client]))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, header_style="bold")
    for name, width in zip(names, widths, strict=True):
        table.add_column(name, no_wrap=True, overflow="ellipsis", width=width)
    for r, row in zip(rows, cells, strict=True):
        style = "red" if r.breached else ("yellow" if r.priority == "urgent" else "")
        table.add_row(*row, style=style)
    console.print(table)
