"""Incoming mail as webhook JSON: bodies, attachments, headers and charsets, malformed mail, plus
addressing. Messages are built with the stdlib's own MIME writer, or written out byte for byte
where the point is what real (and broken) senders produce."""

from __future__ import annotations

import base64
import json
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conduit.email.message import NormalizedAddress, build_payload, normalize_recipient, parse_message
from tests.email.support import message

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def as_bytes(email: EmailMessage) -> bytes:
    return email.as_bytes(policy=SMTP)


def json_safe(parsed: dict[str, Any]) -> dict[str, Any]:
    """What a webhook body can carry: it survives JSON and UTF-8 encoding."""
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    return parsed


def rich_message() -> EmailMessage:
    """Text and HTML alternatives, an inline image the HTML shows, and two attachments."""
    email = EmailMessage()
    email["From"] = "Jürgen Müller <juergen@example.org>"
    email["To"] = "Bob <bob@inbound.example.net>, carol@inbound.example.net"
    email["Cc"] = "Dave <dave@example.net>"
    email["Reply-To"] = "replies@example.org"
    email["Subject"] = "Grüße — Quartalsbericht 📈"
    email["Date"] = "Mon, 03 Feb 2025 10:00:00 +0100"
    email["Message-ID"] = "<report-1@example.org>"
    email.set_content("Hallo Bob,\nanbei der Bericht.\n")
    email.add_alternative('<p>Hallo Bob, <img src="cid:chart@example.org"></p>\n', subtype="html")
    html = cast(EmailMessage, email.get_body(preferencelist=("html",)))
    html.add_related(
        PNG, "image", "png", cid="<chart@example.org>", filename="chart.png", disposition="inline"
    )
    email.add_attachment(b"%PDF-1.4 numbers", "application", "pdf", filename="Bericht Q1 — 履歴書.pdf")
    email.add_attachment("a,b\n1,2\n", subtype="csv", filename="data.csv")
    return email


# --- bodies and attachments ----------------------------------------------------------------------


def test_alternative_bodies_inline_image_and_attachments() -> None:
    parsed = json_safe(parse_message(as_bytes(rich_message())))
    assert parsed["text"] == "Hallo Bob,\nanbei der Bericht.\n"
    assert parsed["html"] == '<p>Hallo Bob, <img src="cid:chart@example.org"></p>\n'
    image, pdf, csv = parsed["attachments"]
    assert image == {
        "filename": "chart.png",
        "content_type": "image/png",
        "size": len(PNG),
        "content_id": "chart@example.org",
        "disposition": "inline",
        "content_base64": base64.b64encode(PNG).decode(),
    }
    assert pdf["filename"] == "Bericht Q1 — 履歴書.pdf"
    assert pdf["disposition"] == "attachment"
    assert base64.b64decode(pdf["content_base64"]) == b"%PDF-1.4 numbers"
    assert (csv["filename"], csv["content_type"]) == ("data.csv", "text/csv")
    assert base64.b64decode(csv["content_base64"]).replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    assert parsed["defects"] == []


def test_addresses_subject_date_and_ids() -> None:
    parsed = parse_message(as_bytes(rich_message()))
    assert parsed["subject"] == "Grüße — Quartalsbericht 📈"
    assert parsed["from"] == {"name": "Jürgen Müller", "address": "juergen@example.org"}
    assert parsed["to"] == [
        {"name": "Bob", "address": "bob@inbound.example.net"},
        {"name": None, "address": "carol@inbound.example.net"},
    ]
    assert parsed["cc"] == [{"name": "Dave", "address": "dave@example.net"}]
    assert parsed["reply_to"] == [{"name": None, "address": "replies@example.org"}]
    assert parsed["date"] == "2025-02-03T09:00:00Z"
    assert parsed["message_id"] == "<report-1@example.org>"


def test_html_only_and_text_only() -> None:
    html_only = EmailMessage()
    html_only.set_content("<b>hi</b>", subtype="html")
    assert (parse_message(as_bytes(html_only))["text"], parse_message(as_bytes(html_only))["html"]) == (
        None,
        "<b>hi</b>\n",
    )
    text_only = parse_message(message(body="line one\r\nline two\r\n"))
    assert (text_only["text"], text_only["html"], text_only["attachments"]) == (
        "line one\nline two\n",
        None,
        [],
    )


def test_text_parts_that_are_not_the_body_are_delivered_as_attachments() -> None:
    raw = (
        b"Subject: split\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(PNG)
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n-- \r\nfooter\r\n--b--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed["text"] == "first"
    assert [a["content_type"] for a in parsed["attachments"]] == ["image/png", "text/plain"]
    assert base64.b64decode(parsed["attachments"][1]["content_base64"]) == b"-- \r\nfooter"


def test_an_attached_message_is_one_attachment() -> None:
    inner = message(subject="Original")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: Original"
    outer.set_content("See below.\n")
    outer.add_attachment(message_from_bytes(inner, policy=default))
    parsed = parse_message(as_bytes(outer))
    [attached] = parsed["attachments"]
    assert attached["content_type"] == "message/rfc822"
    assert base64.b64decode(attached["content_base64"]) == inner
    assert (parsed["subject"], parsed["text"]) == ("Fwd: Original", "See below.\n")


def test_an_attached_message_in_base64_is_decoded() -> None:
    """RFC 2046 forbids encoding message/rfc822, and some clients do it anyway."""
    inner = message(subject="Original")
    outer = EmailMessage()
    outer.set_content("See below.\n")
    outer.add_attachment(inner, "message", "rfc822", cte="base64")
    [attached] = parse_message(as_bytes(outer))["attachments"]
    assert base64.b64decode(attached["content_base64"]) == inner


def test_outlook_style_encoded_word_filenames() -> None:
    raw = (
        b"Subject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b'--b\r\nContent-Type: application/pdf; name="=?UTF-8?B?w6lsw6h2ZSBuwrAxLnBkZg==?="\r\n'
        b'Content-Disposition: attachment; filename="=?UTF-8?B?w6lsw6h2ZSBuwrAxLnBkZg==?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.txt\r\n\r\nx\r\n--b--\r\n"
    )
    names = [a["filename"] for a in parse_message(raw)["attachments"]]
    assert names == ["élève n°1.pdf", "résumé.txt"]


# --- headers and charsets ------------------------------------------------------------------------


def test_headers_keep_order_and_duplicates_and_are_decoded() -> None:
    raw = (
        b"Received: from a.example by b.example;\r\n\tMon, 03 Feb 2025 10:00:02 +0000\r\n"
        b"Received: from c.example by a.example; Mon, 03 Feb 2025 10:00:01 +0000\r\n"
        b"Subject: =?iso-8859-1?q?caf=E9?= and =?utf-8?b?8J+NtQ==?=\r\n"
        b"X-Raw-Utf8: caf\xc3\xa9\r\n"
        b"\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed["headers"] == [
        {"name": "Received", "value": "from a.example by b.example;\tMon, 03 Feb 2025 10:00:02 +0000"},
        {"name": "Received", "value": "from c.example by a.example; Mon, 03 Feb 2025 10:00:01 +0000"},
        {"name": "Subject", "value": "café and 🍵"},
        {"name": "X-Raw-Utf8", "value": "café"},
    ]
    assert parsed["subject"] == "café and 🍵"


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (b"Content-Type: text/plain; charset=iso-8859-1\r\n", "déjà vu".encode("latin-1"), "déjà vu"),
        (
            b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n",
            b"d=E9j=E0 vu",
            "déjà vu",
        ),
        (
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
            base64.b64encode("Grüße 🌍".encode()),
            "Grüße 🌍",
        ),
        (
            b"Content-Type: text/plain; charset=windows-1252\r\n",
            b"\x93quoted\x94 \x80",
            "\u201cquoted\u201d €",
        ),
        (b"Content-Type: text/plain; charset=koi8-r\r\n", "Привет".encode("koi8-r"), "Привет"),
        (b"Content-Type: text/plain; charset=iso-2022-jp\r\n", "日本語".encode("iso-2022-jp"), "日本語"),
        (b"Content-Type: text/plain\r\n", "undeclared ünïcode".encode(), "undeclared ünïcode"),
        (b"", "no content type at all é".encode(), "no content type at all é"),
    ],
)
def test_charsets_and_transfer_encodings(headers: bytes, body: bytes, expected: str) -> None:
    raw = b"Subject: charset\r\nMIME-Version: 1.0\r\n" + headers + b"\r\n" + body
    assert json_safe(parse_message(raw))["text"] == expected


def test_wrong_or_unknown_charsets_are_decoded_as_well_as_possible_and_said() -> None:
    unknown = parse_message(b"Content-Type: text/plain; charset=x-martian\r\n\r\nh\xc3\xa9llo")
    assert unknown["text"] == "héllo"
    assert "text/plain: unknown charset 'x-martian'" in unknown["defects"]
    lying = parse_message(b"Content-Type: text/plain; charset=utf-8\r\n\r\nh\xe9llo")
    assert lying["text"] == "h\ufffdllo"
    assert "text/plain: not valid utf-8" in lying["defects"]
    undeclared = parse_message(b"Subject: x\r\n\r\nh\xe9llo")
    assert undeclared["text"] == "héllo"


def test_dates_in_utc() -> None:
    def date_of(value: bytes) -> Any:
        return parse_message(b"Date: " + value + b"\r\n\r\n")

    assert date_of(b"Tue, 04 Feb 2025 01:30:00 +0530")["date"] == "2025-02-03T20:00:00Z"
    assert date_of(b"Mon, 03 Feb 2025 10:00:00 -0000")["date"] == "2025-02-03T10:00:00Z"
    assert date_of(b"Fri, 31 Dec 9999 23:59:59 -0500")["date"] is None
    broken = date_of(b"sometime yesterday")
    assert broken["date"] is None
    assert any(defect.startswith("Date: InvalidDateDefect") for defect in broken["defects"])


# --- malformed mail --------------------------------------------------------------------------------


MALFORMED = [
    b"",
    b"\x00\x01\x02 not a message at all \xff\xfe",
    b"Subject: no body separator\r\nthis line has no colon\r\nmore",
    b"Content-Type: multipart/mixed\r\n\r\nmultipart without a boundary",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnever closed",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!! not base64 ===\r\nYWJj\r\n",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbroken =ZZ soft=\r\n",
    b'From: <<<@@@>>>\r\nTo: ,,,;;;\r\nCc: "unterminated\r\nReply-To: =?utf-8?q?=FF?= <x@>\r\n\r\n',
    b"Subject: =?x-unknown?q?abc?= =?utf-8?b?####?=\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative\r\n\r\n",
    b"Content-Type: text/plain; charset=\"\r\nContent-Disposition: attachment; filename*=bogus''%ZZ\r\n\r\nx",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/png\r\n"
    b"Content-ID: <\r\n\r\n\xff\xd8\r\n--b--",
    b"Subject: " + b"A" * 20000 + b"\r\n\r\n" + b"B" * 50000,
    b"\r\n\r\n\r\n",
    b'Content-Type: text/plain; charset="\x00"\r\n\r\nnul in the charset name',
    b"Content-Type: text/plain; charset=base64\r\n\r\nnot a text encoding",
    b" \xff\xfe continuation line first\r\n\r\nx",
    b"Content-Type: multipart/alternative; boundary=a\r\n\r\n" + b"--a\r\n" * 50 + b"--a--",
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_mail_never_crashes(raw: bytes) -> None:
    parsed = json_safe(parse_message(raw, include_raw=True))
    assert base64.b64decode(parsed["raw"]) == raw
    assert isinstance(parsed["defects"], list)


def test_malformed_mail_is_kept_and_its_problems_said() -> None:
    parsed = parse_message(MALFORMED[3])
    assert parsed["text"] is None
    [kept] = parsed["attachments"]
    assert base64.b64decode(kept["content_base64"]) == b"multipart without a boundary"
    assert "NoBoundaryInMultipartDefect" in parsed["defects"]


def test_nesting_too_deep_for_the_parser_still_gives_the_headers() -> None:
    raw = b"Subject: deep\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
        for level in range(5000)
    )
    parsed = json_safe(parse_message(raw, include_raw=True))
    assert parsed["subject"] == "deep"
    assert parsed["defects"] == ["unparseable message, headers only: RecursionError"]
    assert base64.b64decode(parsed["raw"]) == raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    json_safe(parse_message(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_real_messages_never_crash(data: st.DataObject) -> None:
    raw = bytearray(as_bytes(rich_message()))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["insert", "delete", "truncate"]))
        if action == "insert":
            raw[position:position] = data.draw(st.binary(min_size=1, max_size=40))
        elif action == "delete":
            del raw[position : position + data.draw(st.integers(1, 200))]
        else:
            del raw[position:]
    json_safe(parse_message(bytes(raw)))


def test_raw_only_when_asked() -> None:
    raw = message()
    assert "raw" not in parse_message(raw)
    assert base64.b64decode(parse_message(raw, include_raw=True)["raw"]) == raw


# --- recipients and the payload ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("user+tag@Example.COM", ("user", "example.com", "tag")),
        ("User@example.com", ("User", "example.com", None)),
        ("<user+a+b@example.com>", ("user", "example.com", "a+b")),
        ("user+@example.com", ("user", "example.com", "")),
        ("+only@example.com", ("+only", "example.com", None)),
        ('"odd+quoted"@example.com', ('"odd+quoted"', "example.com", None)),
        ("user@Bücher.Example.", ("user", "xn--bcher-kva.example", None)),
        ("user@[192.0.2.1]", ("user", "[192.0.2.1]", None)),
    ],
)
def test_normalize_recipient(address: str, expected: tuple[str, str, str | None]) -> None:
    assert normalize_recipient(address) == expected


def test_recipient_matching_is_case_insensitive_and_display_keeps_case() -> None:
    normalized = normalize_recipient("Bob+News@Inbound.Example.NET")
    assert normalized.address == "Bob@inbound.example.net"
    assert normalized.key == normalize_recipient("bob@INBOUND.example.net").key == "bob@inbound.example.net"
    assert isinstance(normalized, NormalizedAddress)


@pytest.mark.parametrize("address", ["no-at-sign", "@example.com", "user@", "user@bad..dom\u00e4in"])
def test_normalize_recipient_refuses_non_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        normalize_recipient(address)


def test_build_payload() -> None:
    parsed = parse_message(message())
    envelope = {"from": "alice@example.org", "to": ["bob@inbound.example.net"], "remote_ip": "192.0.2.1"}
    auth = {"spf": {"result": "pass"}, "dkim": [], "dmarc": {"result": "none"}}
    payload = json_safe(build_payload(envelope=envelope, auth=auth, parsed=parsed))
    assert payload["envelope"] == envelope
    assert payload["auth"] == auth
    assert payload["subject"] == "Quarterly report"
    assert payload["text"] == "Hi Bob.\n"
    assert list(payload)[:2] == ["envelope", "auth"]
