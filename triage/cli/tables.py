"""The prioritized queue as a table: plain text for pipes, rich on a terminal."""

from __future__ import annotations

from triage.cli.terminal import terminal_safe
from triage.tickets.queue import QueueRow

__all__ = ["plain_table", "rich_table"]


def plain_table(rows: list[QueueRow]) -> str:
    """The queue as aligned plain text, one ticket a line (for pipes and files)."""
    head = ("REF", "QUEUE", "PRIO", "CLIENT", "SUBJECT", "STATUS", "ASSIGNEE", "DUE")
    body = [
        (
            r.ref_text,
            r.queue,
            r.priority,
            _cut(terminal_safe(r.client), 30),
            _cut(terminal_safe(r.subject), 40),
            r.status,
            r.assignee or "-",
            r.due_text,
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in body
    ]
    lines.insert(0, "  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


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
