"""Incoming mail as webhook JSON: headers, addresses, text and HTML bodies, attachments.

Parsing uses the stdlib `email` package (`policy.default`) and never raises on malformed mail:
whatever cannot be read is left out or decoded with replacement characters, and said in `defects`.
Also here: the plus-addressing rule that routes `user+tag@example.com` to `user@example.com`.
"""

from __future__ import annotations

import base64
import contextlib
import quopri
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, NamedTuple, cast

import idna

# Bodies in these charsets, or in none, are often UTF-8 in fact (senders that never declare one).
_UNDECLARED = {None, "us-ascii", "ascii"}
# What a part that is neither valid in its charset nor UTF-8 most likely is; decodes every byte.
_LAST_RESORT = "cp1252"
# Re-serializing an attached message: keep its header lines as they came.
_FAITHFUL = policy.default.clone(refold_source="none", linesep="\r\n")
MAX_DEFECT_CHARS = 200


# --- recipients ---------------------------------------------------------------------------------


class NormalizedAddress(NamedTuple):
    """A recipient without its plus tag: `User+news@Example.COM` is ("User", "example.com", "news")."""

    local: str
    """The local part before the first `+`, case preserved for display."""
    domain: str
    """Lowercase, in ASCII (IDNA) form."""
    tag: str | None
    """What followed the first `+` (possibly empty), None without one."""

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def key(self) -> str:
        """What routing compares: local parts match case-insensitively."""
        return f"{self.local.lower()}@{self.domain}"


def normalize_recipient(address: str) -> NormalizedAddress:
    """The routing form of `address`; `ValueError` when it has no local part or a bad domain."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {address!r}")
    domain = normalize_domain(domain)
    base, plus, tag = local.partition("+")
    # A quoted local part is one opaque string; `+tag@` alone has no user to route to.
    if not plus or not base or local.startswith('"'):
        return NormalizedAddress(local, domain, None)
    return NormalizedAddress(base, domain, tag)


def normalize_domain(domain: str) -> str:
    """Lowercase A-label form (IDNA 2008 with UTS 46 mapping); address literals stay as they are."""
    name = domain.strip().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        return name.lower()
    if name.isascii():
        if not name:
            raise ValueError("empty domain")
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"invalid domain {domain!r}: {exc}") from None


# --- the payload --------------------------------------------------------------------------------


def build_payload(
    *, envelope: dict[str, Any], auth: dict[str, Any], parsed: dict[str, Any]
) -> dict[str, Any]:
    """The JSON an email webhook receives: the SMTP envelope, the mail authentication results
    (SPF, DKIM, DMARC) and the parsed message (`parse_message`)."""
    return {"envelope": envelope, "auth": auth, **parsed}


def parse_message(raw: bytes, *, include_raw: bool = False) -> dict[str, Any]:
    """The message as webhook JSON. `raw` (base64 of the whole message) only when asked."""
    defects = _Defects()
    result: dict[str, Any] = {
        "headers": [],
        "subject": None,
        "from": None,
        "to": [],
        "cc": [],
        "reply_to": [],
        "date": None,
        "message_id": None,
        "text": None,
        "html": None,
        "attachments": [],
    }
    # The parser and the stdlib's walks are lenient but recursive, and have had crashing bugs:
    # whatever fails, the rest of the message (and `raw`) still goes out.
    try:
        message = cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(raw))
    except Exception as exc:
        defects.add(f"unparseable message, headers only: {type(exc).__name__}")
        with contextlib.suppress(Exception):
            headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
            result.update(_header_fields(cast(EmailMessage, headers), defects))
    else:
        result.update(_header_fields(message, defects))
        try:
            result.update(_content(message, defects))
            defects.extend(_part_defects(message))
        except Exception as exc:
            defects.add(f"unreadable structure: {type(exc).__name__}")
    result["defects"] = defects.items
    if include_raw:
        result["raw"] = base64.b64encode(raw).decode("ascii")
    return result


def _header_fields(message: EmailMessage, defects: _Defects) -> dict[str, Any]:
    reader = _HeaderReader(message, defects)
    senders = reader.addresses("from")
    return {
        "headers": reader.all(),
        "subject": reader.text("subject"),
        # From is one mailbox in practice; a list of several is kept whole in `headers`.
        "from": senders[0] if senders else None,
        "to": reader.addresses("to"),
        "cc": reader.addresses("cc"),
        "reply_to": reader.addresses("reply-to"),
        "date": reader.date(),
        "message_id": reader.text("message-id"),
    }


def _content(message: EmailMessage, defects: _Defects) -> dict[str, Any]:
    text_part = _body_part(message, "plain", defects)
    html_part = _body_part(message, "html", defects)
    bodies = {id(text_part), id(html_part)}
    return {
        "text": _text_content(text_part, defects) if text_part is not None else None,
        "html": _text_content(html_part, defects) if html_part is not None else None,
        "attachments": [_attachment(part, defects) for part in _leaves(message, skip=bodies)],
    }


def _part_defects(message: EmailMessage) -> Iterator[str]:
    for part in message.walk():
        for defect in part.defects:
            yield f"{type(defect).__name__}: {defect}".rstrip(": ")


class _Defects:
    """Problems met while reading, in order, each once."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, problem: str) -> None:
        # Some defects quote the offending line: keep it valid Unicode and short.
        problem = _clean(problem)
        if len(problem) > MAX_DEFECT_CHARS:
            problem = problem[: MAX_DEFECT_CHARS - 1] + "…"
        if problem not in self.items:
            self.items.append(problem)

    def extend(self, problems: Iterator[str]) -> None:
        for problem in problems:
            self.add(problem)


def _clean(text: str) -> str:
    """`text` as valid Unicode: 8-bit bytes the parser kept as surrogates are read as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class _HeaderReader:
    """Header values decoded (RFC 2047, raw UTF-8), each parsed on its own so one bad header
    spoils nothing else."""

    def __init__(self, message: EmailMessage, defects: _Defects) -> None:
        self._raw = [(_clean(name), _clean(value)) for name, value in message.raw_items()]
        self._defects = defects

    def _parse(self, name: str, value: str) -> BaseHeader | None:
        try:
            header = policy.default.header_factory(name, "".join(value.splitlines()))
        except Exception as exc:
            self._defects.add(f"{name}: unreadable header ({type(exc).__name__})")
            return None
        self._defects.extend(f"{name}: {type(defect).__name__}: {defect}" for defect in header.defects)
        return cast(BaseHeader, header)

    def _first(self, name: str) -> BaseHeader | None:
        for raw_name, value in self._raw:
            if raw_name.lower() == name:
                return self._parse(raw_name, value)
        return None

    def all(self) -> list[dict[str, str]]:
        headers = []
        for name, value in self._raw:
            header = self._parse(name, value)
            text = _clean(str(header)) if header is not None else " ".join(value.split())
            headers.append({"name": name, "value": text})
        return headers

    def text(self, name: str) -> str | None:
        header = self._first(name)
        return _clean(str(header)).strip() if header is not None else None

    def addresses(self, name: str) -> list[dict[str, str | None]]:
        header = self._first(name)
        try:
            found: tuple[Address, ...] = getattr(header, "addresses", ())
            return [_address(address) for address in found]
        except Exception as exc:
            self._defects.add(f"{name}: unreadable addresses ({type(exc).__name__})")
            return []

    def date(self) -> str | None:
        header = self._first("date")
        value = getattr(header, "datetime", None)
        if not isinstance(value, datetime):
            return None
        # RFC 5322 `-0000` (no zone information) parses naive; it means UTC.
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # the last day of year 9999, west of UTC
            self._defects.add("Date: out of range")
            return None
        return value.isoformat().replace("+00:00", "Z")


def _address(address: Address) -> dict[str, str | None]:
    return {"name": _clean(address.display_name) or None, "address": _clean(address.addr_spec)}


def _body_part(message: EmailMessage, subtype: str, defects: _Defects) -> EmailMessage | None:
    try:
        return cast(EmailMessage | None, message.get_body(preferencelist=(subtype,)))
    except Exception as exc:
        defects.add(f"text/{subtype} body: unreadable structure ({type(exc).__name__})")
        return None


def _text_content(part: EmailMessage, defects: _Defects) -> str:
    """The part's text from its transfer encoding and charset, with line ends as `\\n`."""
    data = _payload_bytes(part, defects)
    charset = part.get_content_charset()
    return _decode(data, charset, part.get_content_type(), defects).replace("\r\n", "\n")


def _decode(data: bytes, charset: str | None, where: str, defects: _Defects) -> str:
    if charset in _UNDECLARED:
        if data.isascii():
            return data.decode("ascii")
        defects.add(f"{where}: 8-bit text without a charset")
        return _guess(data)
    codec = cast(str, charset)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        defects.add(f"{where}: not valid {charset}")
        return data.decode(codec, "replace")
    except (LookupError, ValueError):  # unknown, not a text encoding, or not a name at all
        defects.add(f"{where}: unknown charset {charset!r}")
        return _guess(data)


def _guess(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(_LAST_RESORT, "replace")


def _payload_bytes(part: EmailMessage, defects: _Defects) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        defects.add(f"{part.get_content_type()}: undecodable content ({type(exc).__name__})")
        data = None
    if isinstance(data, bytes):
        return data
    if part.get_content_maintype() == "message":
        return _attached_message_bytes(part, defects)
    return b""


def _attached_message_bytes(part: EmailMessage, defects: _Defects) -> bytes:
    inner = part.get_payload()
    try:
        if isinstance(inner, list) and inner:
            data = cast(EmailMessage, inner[0]).as_bytes(policy=_FAITHFUL)
        elif isinstance(inner, str):
            data = inner.encode("utf-8", "surrogateescape")
        else:
            return b""
        # RFC 2046 allows no encoding of an attached message, yet some clients base64 it.
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding == "base64":
            return base64.b64decode(data)
        if encoding == "quoted-printable":
            return quopri.decodestring(data)
        return data
    except Exception as exc:
        defects.add(f"{part.get_content_type()}: unreadable attached message ({type(exc).__name__})")
    return b""


def _leaves(message: EmailMessage, *, skip: set[int]) -> Iterator[EmailMessage]:
    """The parts that hold content, in order, less the bodies in `skip`. An attached message
    (message/rfc822) is one leaf: it is delivered whole, not taken apart."""
    pending = [message]
    while pending:
        part = pending.pop()
        if part.get_content_maintype() == "multipart" and part.is_multipart():
            pending.extend(reversed([cast(EmailMessage, subpart) for subpart in part.iter_parts()]))
        elif id(part) not in skip:
            yield part


def _attachment(part: EmailMessage, defects: _Defects) -> dict[str, Any]:
    content = _payload_bytes(part, defects)
    content_type = part.get_content_type()

    def read(what: str, getter: Callable[[], object]) -> str | None:
        try:
            value = getter()
        except Exception as exc:
            defects.add(f"{content_type}: unreadable {what} ({type(exc).__name__})")
            return None
        if value is None:
            return None
        return _clean(str(value)).strip() or None

    content_id = read("Content-ID", lambda: part.get("content-id"))
    return {
        "filename": read("filename", part.get_filename),
        "content_type": content_type,
        "size": len(content),
        # Bare, as HTML refers to it: `<img src="cid:{content_id}">`.
        "content_id": content_id.strip("<>") if content_id else None,
        "disposition": read("Content-Disposition", part.get_content_disposition),
        "content_base64": base64.b64encode(content).decode("ascii"),
    }
