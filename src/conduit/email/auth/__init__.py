"""Mail authentication of one received message: SPF, DKIM and DMARC, through our resolver.

`authenticate_message` is what the SMTP server calls once a message is in; its result travels in
the email webhook payload (`as_dict`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from conduit.email.auth.dkim import DkimResult, verify_dkim
from conduit.email.auth.dmarc import DmarcResult, evaluate_dmarc
from conduit.email.auth.spf import SpfResult, check_spf
from conduit.email.dns import DnsResolver

__all__ = [
    "DkimResult",
    "DmarcResult",
    "MailAuthResult",
    "SpfResult",
    "authenticate_message",
    "check_spf",
    "evaluate_dmarc",
    "verify_dkim",
]


@dataclass(frozen=True)
class MailAuthResult:
    spf: SpfResult
    dkim: list[DkimResult]
    """One result per DKIM-Signature, topmost first; empty: DKIM result none."""
    dmarc: DmarcResult

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def authenticate_message(
    resolver: DnsResolver, *, remote_ip: str, helo: str, mail_from: str, raw_message: bytes
) -> MailAuthResult:
    """`mail_from` is the envelope sender without brackets, empty for the null sender `<>`."""
    spf, dkim = await asyncio.gather(
        check_spf(resolver, remote_ip=remote_ip, helo=helo, mail_from=mail_from),
        verify_dkim(resolver, raw_message),
    )
    dmarc = await evaluate_dmarc(resolver, raw_message, spf, dkim)
    return MailAuthResult(spf, dkim, dmarc)
