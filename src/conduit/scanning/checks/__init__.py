"""The scanner's checks, one module per family. Each module declares its checks with
`findings.check(...)` and exposes `run(context) -> list[Finding]`; `ANALYZERS` lists them in the
order the engine runs them."""

from __future__ import annotations

from conduit.scanning.checks import (
    capabilities,
    code,
    compliance,
    exfiltration,
    injection,
    launch,
    learned,
    rugpull,
    secrets,
    shadowing,
    transport,
)
from conduit.scanning.checks.base import Analyzer

ANALYZERS: list[Analyzer] = [
    injection.run,
    learned.run,
    exfiltration.run,
    shadowing.run,
    rugpull.run,
    capabilities.run,
    transport.run,
    secrets.run,
    launch.run,
    code.run,
    compliance.run,
]
