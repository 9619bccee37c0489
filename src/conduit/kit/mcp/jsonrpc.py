"""JSON-RPC 2.0 as MCP uses it: message kinds, error codes, and the error bodies the SDK sends.

The relay parses each message into a plain dict and serialises it back: never through a typed
model, so fields this code does not know (new `_meta` keys, a newer revision's result fields)
pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Codes the MCP SDK defines beyond the JSON-RPC ones.
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022
REQUEST_CANCELLED = -32800

Message = dict[str, Any]
RequestId = str | int

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_VERSIONS = ("2026-07-28",)
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]
# What an SDK server assumes for a handshake-era request without MCP-Protocol-Version.
DEFAULT_NEGOTIATED = "2025-03-26"
ENVELOPE_VERSION = "io.modelcontextprotocol/protocolVersion"
ENVELOPE_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
ENVELOPE_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"


class InvalidMessage(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# One encoder for every message: json.dumps with these options would build one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(message: Any) -> bytes:
    return _ENCODER.encode(message).encode()


def _loads(body: bytes) -> Any:
    if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":  # UTF-8, as nearly every peer sends
        return json.loads(body.decode("utf-8", "surrogatepass"))
    return json.loads(body)  # which also reads UTF-16 and UTF-32, and a BOM


def parse(body: bytes) -> Message | list[Any]:
    """A message or a batch, or InvalidMessage with the code the SDK answers."""
    try:
        value = _loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMessage(PARSE_ERROR, f"Parse error: {exc}") from None
    if isinstance(value, list):
        return value
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise InvalidMessage(INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
    if "method" in value:
        if not isinstance(value["method"], str):
            raise InvalidMessage(INVALID_REQUEST, "Invalid Request: method must be a string")
        if "id" in value and not _valid_id(value["id"]):
            raise InvalidMessage(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
        if "params" in value and not isinstance(value["params"], dict | list):
            raise InvalidMessage(INVALID_REQUEST, "Invalid Request: params must be an object")
        return value
    if "id" in value and ("result" in value or "error" in value):
        return value
    raise InvalidMessage(INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response")


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_notification(message: Message) -> bool:
    return "method" in message and "id" not in message


def is_response(message: Message) -> bool:
    return "method" not in message and "id" in message


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> Message:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def params_of(message: Message) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def meta_of(message: Message) -> dict[str, Any]:
    meta = params_of(message).get("_meta")
    return meta if isinstance(meta, dict) else {}


def progress_token(message: Message) -> Any:
    return meta_of(message).get("progressToken")


def with_progress_token(message: Message, token: Any) -> Message:
    params = dict(params_of(message))
    params["_meta"] = {**meta_of(message), "progressToken": token}
    return {**message, "params": params}


def with_id(message: Message, request_id: RequestId | None) -> Message:
    return {**message, "id": request_id}
