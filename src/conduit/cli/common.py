"""What every CLI command shares: settings from options, the console, table-or-JSON output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from conduit.kit import logging as kit_logging
from conduit.settings import Settings

# soft_wrap: a long line (a key, a URL, a path) is printed whole, never broken to fit 80 columns,
# so it can be copied or grepped.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
# Wide enough to measure any table's natural width when the output is not a terminal.
_UNBOUNDED_WIDTH = 100_000


def load_settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**values)
    kit_logging.configure(settings.log_level, settings.log_json)
    return settings


def print_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool, title: str | None = None
) -> None:
    if as_json:
        print(json.dumps(list(rows), indent=2, default=str))
        return
    table = Table(title=title)
    for column in columns:
        # fold, not ellipsis: a cut-off id or setting name is useless to the reader.
        table.add_column(column, overflow="fold")
    for row in rows:
        # Cells are data, not Rich markup: "see [docs]" must print as written.
        table.add_row(*(Text("" if row.get(c) is None else str(row.get(c))) for c in columns))
    if console.is_terminal:
        console.print(table)
        return
    # Piped or redirected: one line per row, as wide as the rows need, so grep finds whole values.
    width = Console(width=_UNBOUNDED_WIDTH).measure(table).maximum
    Console(width=width).print(table)


def display_url(url: str) -> str:
    """A database URL fit to print: the password masked."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def env_pairs(pairs: list[str] | None) -> dict[str, str] | None:
    """`--env NAME=VALUE` options as a dict (None when none were given)."""
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            # Not echoed: the malformed pair may well be the secret itself.
            raise typer.BadParameter("takes NAME=VALUE", param_hint="'--env'")
        env[name] = value
    return env
