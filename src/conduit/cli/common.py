"""What every CLI command shares: settings from options, the console, table-or-JSON output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from conduit.kit import logging as kit_logging
from conduit.settings import Settings

console = Console()
err_console = Console(stderr=True)


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
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)
