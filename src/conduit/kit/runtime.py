"""The long-lived objects one process shares: settings, database, keys, outbound clients.

Built once by `create_app` (or the CLI) and handed to routes through `app.state.runtime` and
to job handlers through their context.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from conduit.kit.db import Database
from conduit.kit.security import Keyring
from conduit.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        settings.ensure_data_dir()
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            keyring=Keyring(settings.master_key),
        )

    async def close(self) -> None:
        for resource in self.extras.values():
            closer = getattr(resource, "aclose", None) or getattr(resource, "close", None)
            if closer is not None and inspect.iscoroutinefunction(closer):
                await closer()
        await self.db.dispose()
