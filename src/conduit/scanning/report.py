"""A scan as a PDF: the score and grade with its breakdown, then every finding with its evidence
and remediation. Text the scanner found (hidden characters included) is printed escaped, so the
report shows exactly what was there rather than what a renderer would make of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

import conduit

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
_COLOURS = {
    "critical": (153, 27, 27),
    "high": (194, 65, 12),
    "medium": (161, 98, 7),
    "low": (29, 78, 216),
    "info": (75, 85, 99),
}
MAX_EVIDENCE = 600


def printable(text: object) -> str:
    """Latin-1 text for the PDF's core fonts: anything else as a visible `\\u....` escape."""
    out = []
    for char in str(text if text is not None else ""):
        code = ord(char)
        if char in "\n\t" or (32 <= code < 127) or (160 <= code < 256):
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _where(finding: Mapping[str, Any]) -> str:
    """The file or server a finding is in, then the place within it, as `conduit scan` shows it:
    a scan of several files or servers is no use without the first part."""
    location = str(finding.get("location") or "")
    source = str(finding.get("file") or finding.get("server") or "")
    if not source or location == source or location.startswith(f"{source}:"):
        return location
    return f"{source}: {location}" if location else source


class _Report(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 6, f"Conduit {conduit.__version__} trust report - page {self.page_no()}", align="C")


def render_report(
    *,
    scan_id: str,
    target: str,
    scan_type: str,
    completed_at: datetime | None,
    score: int | None,
    grade: str | None,
    breakdown: Mapping[str, Any] | None,
    capped_by: str | None,
    partial: bool,
    findings: Sequence[Mapping[str, Any]],
) -> bytes:
    pdf = _Report(format="A4")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_title(f"Conduit trust report {scan_id}")
    pdf.set_creator("Conduit")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def line(text: str, *, size: float = 10, style: str = "", height: float = 5.5) -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.multi_cell(width, height, printable(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    line("Conduit trust report", size=18, style="B", height=9)
    line(f"Target: {target}")
    line(f"Scan: {scan_id} ({scan_type})")
    if completed_at is not None:
        line(f"Completed: {completed_at.isoformat().replace('+00:00', 'Z')}")
    pdf.ln(3)
    line(
        f"Score: {score if score is not None else '-'} / 100    Grade: {grade or '-'}",
        size=14,
        style="B",
        height=8,
    )
    if capped_by:
        line(f"Grade capped: {capped_by}")
    if partial:
        line("Partial scan: some of the server could not be enumerated; never graded A.")
    for name, value in (breakdown or {}).items():
        line(f"  {name}: {value if value is not None else 'n/a'}")
    pdf.ln(3)
    counts = {severity: 0 for severity in SEVERITY_ORDER}
    for finding in findings:
        counts[str(finding.get("severity"))] = counts.get(str(finding.get("severity")), 0) + 1
    line(
        f"Findings: {len(findings)} ("
        + ", ".join(f"{counts[s]} {s}" for s in SEVERITY_ORDER if counts.get(s))
        + ")"
        if findings
        else "Findings: none",
        style="B",
    )
    for finding in findings:
        pdf.ln(2)
        severity = str(finding.get("severity", "info"))
        pdf.set_text_color(*_COLOURS.get(severity, (0, 0, 0)))
        line(f"[{severity.upper()}] {finding.get('id', '')} {finding.get('title', '')}", style="B")
        pdf.set_text_color(0, 0, 0)
        refs = ", ".join(
            str(value)
            for value in (
                finding.get("owasp_category"),
                finding.get("owasp_mcp_category"),
                finding.get("cwe"),
            )
            if value
        )
        if refs:
            line(refs, size=8)
        where = _where(finding)
        if where:
            line(f"Where: {where}", size=9)
        if finding.get("description"):
            line(str(finding["description"]), size=9)
        evidence = str(finding.get("evidence") or "")
        if evidence:
            clipped = evidence if len(evidence) <= MAX_EVIDENCE else evidence[:MAX_EVIDENCE] + " ..."
            line(f"Evidence: {clipped}", size=8)
        if finding.get("remediation"):
            line(f"Fix: {finding['remediation']}", size=9)
    return bytes(pdf.output())
