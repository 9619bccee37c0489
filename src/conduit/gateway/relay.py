"""The MCP relay: `/s/{org}/{server}/mcp` for one server and `/mcp` for a project key's servers.

Both speak streamable HTTP to clients. Handshake-era clients (`initialize`, protocol revisions
2024-11-05 to 2025-11-25) get a Conduit session (`Mcp-Session-Id`) holding one upstream session
per server, opened on demand with the client's own `initialize` and reused for every later
message. Clients of the stateless 2026-07-28 revision are relayed request by request to upstreams
that speak it; for an upstream that does not, the endpoint answers as that upstream would
(`-32022` naming the handshake revisions), and the SDK client falls back to the handshake.

Every message is authenticated (the key, its organization and project), rate limited and, for
calls, counted against the plan's quota before anything reaches the upstream. Curation applies
on the way: disabled tools are absent from `tools/list` and refused on `tools/call`; overrides
change what `tools/list` shows. Everything else passes through as the upstream sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog

import conduit
from conduit.gateway import modern, project
from conduit.gateway.policy import AUTH_ERROR, Gatekeeper, GatewayRefusal, Grant
from conduit.gateway.requestlog import LogEntry, RequestLogWriter, StderrLine
from conduit.gateway.targets import Target, Targets
from conduit.gateway.wire import (
    SSE_HEADERS,
    BodyTooLarge,
    ClientGone,
    Exchange,
    Headers,
    Receive,
    Scope,
    Send,
    accepts,
    read_body,
    respond,
    respond_message,
    sse_frame,
)
from conduit.kit import metrics
from conduit.kit.ids import random_base62
from conduit.kit.mcp import jsonrpc
from conduit.kit.mcp.client import upstream_http
from conduit.kit.mcp.httpclient import HttpClient
from conduit.kit.mcp.jsonrpc import Message
from conduit.kit.mcp.upstream import UpstreamError, UpstreamSession
from conduit.kit.runtime import Runtime
from conduit.servers.models import ServerLog

log = structlog.get_logger("conduit.gateway")

SERVER_PATH = re.compile(r"^/s/([^/]+)/([^/]+)/mcp/?$")
PROJECT_PATH = "/mcp"
CALL_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
NO_TIMEOUT_METHODS = frozenset({"subscriptions/listen"})
FORWARDED_MODERN_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name")
ALLOW = [(b"allow", b"GET, POST, DELETE")]
UNSOLICITED_BACKLOG = 1000
# A request still running after this long starts watching for its client to go away.
WATCH_AFTER = 0.05
STDERR_LINE_LIMIT = 4000


@dataclass(frozen=True)
class Route:
    org_slug: str | None = None
    server_slug: str | None = None

    @property
    def project(self) -> bool:
        return self.server_slug is None


def match(path: str) -> Route | None:
    if path in (PROJECT_PATH, PROJECT_PATH + "/"):
        return Route()
    found = SERVER_PATH.match(path)
    return Route(found.group(1), found.group(2)) if found else None


@dataclass
class Call:
    """What the request log records about one downstream message."""

    method: str
    server_id: str | None = None
    tool: str | None = None
    status: str = "ok"
    error_code: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    started: float = field(default_factory=time.perf_counter)

    def outcome(self, message: Message) -> None:
        error = message.get("error")
        if isinstance(error, dict):
            self.status = "error"
            code = error.get("code")
            self.error_code = code if isinstance(code, int) else None
        elif isinstance(message.get("result"), dict) and message["result"].get("isError") is True:
            self.status = "error"


class Session:
    """A handshake-era downstream session: the client's `initialize`, its upstream sessions, the
    server-to-client requests waiting for the client's answer, and its GET stream backlog."""

    def __init__(self, gateway: Gateway, grant: Grant, route: Route, init: Message) -> None:
        self.id = random_base62(32)
        self.header = [(b"mcp-session-id", self.id.encode())]
        self.gateway = gateway
        self.grant = grant
        self.route = route
        self.init = init
        params = jsonrpc.params_of(init)
        requested = params.get("protocolVersion")
        self.version = requested if requested in jsonrpc.HANDSHAKE_VERSIONS else jsonrpc.LATEST_HANDSHAKE
        self.upstreams: dict[str, UpstreamSession] = {}
        self.server_requests: dict[str, tuple[UpstreamSession, Any]] = {}
        self.inflight: dict[str, Guard] = {}
        self.backlog: asyncio.Queue[Message] = asyncio.Queue(maxsize=UNSOLICITED_BACKLOG)
        self.listening = False
        self.initialized = False
        self.last_seen = time.monotonic()
        self._ids = itertools.count(1)
        self._opening: dict[str, asyncio.Lock] = {}
        # /mcp: which server answers for a prefixed name or a resource URI.
        self.resource_owner: dict[str, str] = {}

    def outbound(self, upstream: UpstreamSession, message: Message) -> Message:
        """A message from an upstream on its way to the client: server requests get ids of ours
        (several upstreams would collide) and remember where the answer goes."""
        if jsonrpc.is_request(message):
            gid = f"cnd-s{next(self._ids)}"
            if len(self.server_requests) >= UNSOLICITED_BACKLOG:  # a client that never answers
                self.server_requests.pop(next(iter(self.server_requests)))
            self.server_requests[gid] = (upstream, message["id"])
            return jsonrpc.with_id(message, gid)
        return message

    async def unsolicited(self, upstream: UpstreamSession, message: Message) -> None:
        message = self.outbound(upstream, message)
        with contextlib.suppress(asyncio.QueueFull):
            self.backlog.put_nowait(message)

    async def upstream_for(self, target: Target) -> UpstreamSession:
        existing = self.upstreams.get(target.server_id)
        if existing is not None:
            return existing
        lock = self._opening.setdefault(target.server_id, asyncio.Lock())
        async with lock:
            existing = self.upstreams.get(target.server_id)
            if existing is not None:
                return existing
            upstream = self.gateway.new_upstream_session(target, self)
            try:
                await upstream.initialize(self.init, timeout=target.timeout)
                if self.initialized:
                    await upstream.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            except UpstreamError:
                await upstream.aclose()
                raise
            self.upstreams[target.server_id] = upstream
            return upstream

    async def aclose(self) -> None:
        for guard in self.inflight.values():
            guard.cancel("session closed")
        upstreams, self.upstreams = list(self.upstreams.values()), {}
        await asyncio.gather(*(u.aclose() for u in upstreams), return_exceptions=True)


class Gateway:
    """The data plane of one process: sessions, upstream connections, policy and the log."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.gatekeeper = Gatekeeper(runtime)
        self.requestlog = RequestLogWriter(runtime.db)
        self.stderr = RequestLogWriter(runtime.db, model=ServerLog, max_buffer=20_000)
        self.targets = Targets(runtime, ttl=settings.gateway_cache_seconds)
        self.sessions: dict[str, Session] = {}
        self.shared: dict[str, UpstreamSession] = {}  # stateless-era upstreams, one per server
        # Handshake sessions Conduit holds for stateless clients, per server and capability set.
        self.held: dict[str, UpstreamSession] = {}
        self._holding: dict[str, asyncio.Lock] = {}
        self.origins = _allowed_origins(settings.resolved_public_url, settings.gateway_allowed_origins)
        self._sweeper: asyncio.Task[None] | None = None

    async def ensure_started(self) -> None:
        """Start the log writer and the idle sweeper in the serving loop, on first use."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
            await self.requestlog.start()
            await self.stderr.start()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        sessions, self.sessions = list(self.sessions.values()), {}
        shared, self.shared = [*self.shared.values(), *self.held.values()], {}
        self.held = {}
        await asyncio.gather(
            *(s.aclose() for s in sessions), *(u.aclose() for u in shared), return_exceptions=True
        )
        await self.requestlog.aclose()
        await self.stderr.aclose()
        await self.gatekeeper.aclose()

    @property
    def http(self) -> HttpClient:
        """The process's upstream client (shared with discovery; closed with the runtime)."""
        return upstream_http(self.runtime)

    async def _sweep(self) -> None:
        settings = self.runtime.settings
        while True:
            await asyncio.sleep(min(30.0, settings.gateway_stdio_idle_seconds / 2))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                idle = now - session.last_seen > settings.gateway_session_idle_seconds
                if idle and not session.inflight and not session.listening:
                    self.sessions.pop(session.id, None)
                    await session.aclose()
                    continue
                for upstream in session.upstreams.values():
                    await self._maybe_idle(upstream, now)
            for upstream in [*self.shared.values(), *self.held.values()]:
                await self._maybe_idle(upstream, now)

    async def _maybe_idle(self, upstream: UpstreamSession, now: float) -> None:
        if upstream.spec.transport == "stdio" and now - upstream.last_used > (
            self.runtime.settings.gateway_stdio_idle_seconds
        ):
            await upstream.idle_stop()

    async def held_session(
        self, target: Target, capabilities: dict[str, Any], client_info: dict[str, Any]
    ) -> UpstreamSession:
        """A handshake session Conduit opened itself, shared by stateless clients."""
        key = modern.capability_key(target.server_id, capabilities)
        upstream = self.held.get(key)
        if upstream is not None and upstream.spec == target.spec:
            return upstream
        async with self._holding.setdefault(key, asyncio.Lock()):
            upstream = self.held.get(key)
            if upstream is not None and upstream.spec == target.spec:
                return upstream
            if upstream is not None:
                await upstream.aclose()
            upstream = self.new_upstream_session(target, None)
            try:
                await upstream.initialize(modern.held_init(capabilities, client_info), timeout=target.timeout)
                await upstream.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            except UpstreamError:
                await upstream.aclose()
                raise
            self.held[key] = upstream
            return upstream

    def new_upstream_session(self, target: Target, session: Session | None) -> UpstreamSession:
        holder: list[UpstreamSession] = []

        async def on_message(message: Message) -> None:
            if session is not None and holder:
                await session.unsolicited(holder[0], message)

        session_id = session.id if session is not None else None

        def on_stderr(line: str) -> None:
            # Into the server's runtime log (`/deployment/logs`), not the process log: what a
            # server prints is its owner's business and may be sensitive.
            self.stderr.record(
                StderrLine(target.server_id, session_id, line[:STDERR_LINE_LIMIT], datetime.now(UTC))
            )

        upstream = UpstreamSession(target.spec, self.http, on_message=on_message, on_stderr=on_stderr)
        holder.append(upstream)
        return upstream

    # --- HTTP ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = match(scope["path"])
        assert route is not None
        await self.serve(route, scope, receive, send)

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            await respond_message(
                send, 405, jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Method Not Allowed"), ALLOW
            )
            return
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin):
            await respond_message(
                send, 403, jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Forbidden: Origin not allowed")
            )
            return
        client = scope.get("client")
        try:
            grant = await self.gatekeeper.authenticate(_credential(headers), client[0] if client else None)
            targets = await self._authorize(grant, route)
            self.gatekeeper.check_rate(grant)
        except GatewayRefusal as refusal:
            await _refuse(send, refusal, None)
            return
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in jsonrpc.HANDSHAKE_VERSIONS:
            await self._modern(scope, receive, send, headers, grant, route, targets)
            return
        if method == "POST":
            await self._post(scope, receive, send, headers, grant, route, targets)
        elif method == "GET":
            await self._get(receive, send, headers, grant, route)
        else:
            await self._delete(send, headers, grant, route)

    def _origin_allowed(self, origin: str) -> bool:
        if "*" in self.origins or origin in self.origins:
            return True
        host = urlsplit(origin).hostname or ""
        return host in ("localhost", "127.0.0.1", "::1")

    async def _authorize(self, grant: Grant, route: Route) -> list[Target]:
        if route.project:
            if grant.project_id is None:
                raise GatewayRefusal(
                    403,
                    AUTH_ERROR,
                    "This endpoint serves the project a key is bound to; use a project key, "
                    "or /s/{org}/{server}/mcp for one server",
                    reason="not_a_project_key",
                    headers={"WWW-Authenticate": 'Bearer realm="conduit", error="insufficient_scope"'},
                )
            targets = []
            for server_id in sorted(grant.server_ids or ()):
                target = await self.targets.by_id(server_id)
                if target is not None and target.active:
                    targets.append(target)
            return targets
        assert route.org_slug is not None
        assert route.server_slug is not None
        if route.org_slug != grant.org_slug:
            raise GatewayRefusal(
                401,
                AUTH_ERROR,
                "This key does not belong to this organization",
                reason="wrong_organization",
                headers={"WWW-Authenticate": 'Bearer realm="conduit", error="invalid_token"'},
            )
        target = await self.targets.by_slug(route.org_slug, route.server_slug)
        if target is None or not target.active:
            raise GatewayRefusal(
                404, jsonrpc.INVALID_REQUEST, "No such server in this organization", reason="server_not_found"
            )
        if grant.server_ids is not None and target.server_id not in grant.server_ids:
            raise GatewayRefusal(
                403,
                AUTH_ERROR,
                "This key's project does not include this server",
                reason="server_not_in_project",
                headers={"WWW-Authenticate": 'Bearer realm="conduit", error="insufficient_scope"'},
            )
        return [target]

    async def _read(self, receive: Receive, send: Send) -> tuple[Message | None, int]:
        try:
            body = await read_body(receive, self.runtime.settings.gateway_max_message_bytes)
        except BodyTooLarge:
            await respond_message(
                send, 413, jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Message too large")
            )
            return None, 0
        except ClientGone:
            return None, 0
        try:
            parsed = jsonrpc.parse(body)
        except jsonrpc.InvalidMessage as exc:
            await respond_message(send, 400, jsonrpc.error(None, exc.code, str(exc)))
            return None, len(body)
        if isinstance(parsed, list):
            await respond_message(
                send, 400, jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Batch requests are not supported")
            )
            return None, len(body)
        return parsed, len(body)

    # --- handshake era ------------------------------------------------------------------------

    async def _require_session(
        self, send: Send, headers: dict[str, str], grant: Grant, route: Route
    ) -> Session | None:
        """The caller's session, or None after answering as the SDK does: 400 without a session
        id, 404 for one that is unknown, ended, or another key's."""
        if not headers.get("mcp-session-id"):
            await respond_message(
                send, 400, jsonrpc.error(None, jsonrpc.CONNECTION_CLOSED, "Bad Request: Missing session ID")
            )
            return None
        session = self._session_of(headers, grant, route)
        if session is None:
            await respond_message(
                send, 404, jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "Session not found")
            )
        return session

    def _session_of(self, headers: dict[str, str], grant: Grant, route: Route) -> Session | None:
        session_id = headers.get("mcp-session-id")
        session = self.sessions.get(session_id) if session_id else None
        if session is None or session.grant.key_id != grant.key_id or session.route != route:
            return None
        session.grant = grant
        session.last_seen = time.monotonic()
        return session

    async def _post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        grant: Grant,
        route: Route,
        targets: list[Target],
    ) -> None:
        if not accepts(headers, "application/json"):
            await respond_message(
                send,
                406,
                jsonrpc.error(
                    None, jsonrpc.INVALID_REQUEST, "Not Acceptable: Client must accept application/json"
                ),
            )
            return
        message, size = await self._read(receive, send)
        if message is None:
            return
        if jsonrpc.is_request(message) and message["method"] == "initialize":
            await self._initialize(receive, send, headers, grant, route, targets, message, size)
            return
        session = await self._require_session(send, headers, grant, route)
        if session is None:
            return
        session_header = session.header
        if jsonrpc.is_request(message):
            call = Call(message["method"], request_bytes=size)
            exchange = Exchange(send, sse_ok=accepts(headers, "text/event-stream"), headers=session_header)
            key = str(message["id"])
            guard = Guard()
            session.inflight[key] = guard
            try:
                await guard.run(self._serve(session, targets, message, exchange, call), receive)
            finally:
                session.inflight.pop(key, None)
                exchange.close()
            self._log(grant, session.id, call, exchange.response_bytes)
            return
        call = Call(str(message.get("method", "response")), request_bytes=size)
        if not route.project:
            call.server_id = targets[0].server_id
        if jsonrpc.is_notification(message):
            await self._notify(session, targets, message)
        else:
            await self._answer(session, message)
        await respond(send, 202, b"", session_header)
        if jsonrpc.is_notification(message):
            self._log(grant, session.id, call, 0)

    async def _initialize(
        self,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        grant: Grant,
        route: Route,
        targets: list[Target],
        message: Message,
        size: int,
    ) -> None:
        session = Session(self, grant, route, message)
        call = Call("initialize", request_bytes=size)
        sse = False
        exchange = Exchange(
            send,
            sse_ok=accepts(headers, "text/event-stream"),
            headers=[(b"mcp-session-id", session.id.encode())],
        )
        if route.project:
            reply = _project_initialize(session, targets, message)
        else:
            target = targets[0]
            call.server_id = target.server_id
            try:
                upstream = self.new_upstream_session(target, session)
                result = await upstream.initialize(message, timeout=target.timeout)
                session.upstreams[target.server_id] = upstream
                reply, sse = result.message, result.content_type == "text/event-stream"
            except UpstreamError as exc:
                reply = jsonrpc.error(message["id"], exc.code, str(exc))
        call.outcome(reply)
        if "result" in reply:
            self.sessions[session.id] = session
        await exchange.finish(reply, sse=sse)
        self._log(grant, session.id, call, exchange.response_bytes)

    async def _serve(
        self, session: Session, targets: list[Target], message: Message, exchange: Exchange, call: Call
    ) -> None:
        sse, raw = False, None
        try:
            reply, sse, raw = await self._dispatch(session, targets, message, exchange, call)
        except GatewayRefusal as refusal:
            await _finish_refused(exchange, message, refusal, call)
            return
        except UpstreamError as exc:
            reply = jsonrpc.error(message["id"], exc.code, str(exc))
        except asyncio.CancelledError:
            # Cancelled by the client's notifications/cancelled (or it went away): the SDK
            # answers such a request with -32800 on its stream; do the same if it still listens.
            call.status, call.error_code = "error", jsonrpc.REQUEST_CANCELLED
            with contextlib.suppress(Exception):
                await exchange.finish(
                    jsonrpc.error(message["id"], jsonrpc.REQUEST_CANCELLED, "Request cancelled")
                )
            raise
        call.outcome(reply)
        await exchange.finish(reply, sse=sse, raw=raw)

    async def _dispatch(
        self, session: Session, targets: list[Target], message: Message, exchange: Exchange, call: Call
    ) -> tuple[Message, bool, bytes | None]:
        """The reply, whether the upstream framed it as SSE, and its bytes if relayed unchanged."""
        method = message["method"]
        if session.route.project:
            return await project.dispatch(self, session, targets, message, exchange, call), False, None
        target = targets[0]
        call.server_id = target.server_id
        refused = self.check_call(session.grant, target, message, call)
        if refused is not None:
            return refused, False, None
        if method in CALL_METHODS:
            await self.gatekeeper.consume_call(session.grant)
        upstream = await session.upstream_for(target)

        async def sink(related: Message) -> None:
            await exchange.interim(session.outbound(upstream, related))

        reply = await upstream.request(message, sink=sink, timeout=_timeout(target, method))
        curated = self.curated(session.grant, target, method, reply.message)
        raw = reply.raw if curated is reply.message else None
        return curated, reply.content_type == "text/event-stream", raw

    def check_call(self, grant: Grant, target: Target, message: Message, call: Call) -> Message | None:
        """A JSON-RPC error for a call that curation forbids, else None."""
        if message["method"] != "tools/call":
            return None
        name = jsonrpc.params_of(message).get("name")
        call.tool = str(name) if name is not None else None
        if (
            not isinstance(name, str)
            or not target.tool_enabled(name)
            or not grant.allows_tool(target.server_id, name)
        ):
            return jsonrpc.error(message["id"], jsonrpc.INVALID_PARAMS, f"Unknown tool: {name}")
        return None

    def curated(self, grant: Grant, target: Target, method: str, reply: Message) -> Message:
        if method != "tools/list":
            return reply
        result = reply.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return reply
        allowed = grant.tool_allowlists.get(target.server_id)
        return {**reply, "result": {**result, "tools": target.curate(result["tools"], allowed)}}

    async def _notify(self, session: Session, targets: list[Target], message: Message) -> None:
        method = message["method"]
        if method == "notifications/cancelled":
            request_id = jsonrpc.params_of(message).get("requestId")
            guard = session.inflight.get(str(request_id))
            if guard is not None:
                guard.cancel("cancelled by the client")
            return
        if method == "notifications/initialized":
            session.initialized = True
        for upstream in list(session.upstreams.values()):
            with contextlib.suppress(UpstreamError):
                await upstream.send(message)

    async def _answer(self, session: Session, message: Message) -> None:
        """The client answers a server-to-client request: back to the upstream that asked."""
        pending = session.server_requests.pop(str(message.get("id")), None)
        if pending is None:
            return
        upstream, original_id = pending
        with contextlib.suppress(UpstreamError):
            await upstream.send(jsonrpc.with_id(message, original_id))

    async def _get(
        self, receive: Receive, send: Send, headers: dict[str, str], grant: Grant, route: Route
    ) -> None:
        if not accepts(headers, "text/event-stream"):
            await respond_message(
                send,
                406,
                jsonrpc.error(
                    None, jsonrpc.INVALID_REQUEST, "Not Acceptable: Client must accept text/event-stream"
                ),
            )
            return
        session = await self._require_session(send, headers, grant, route)
        if session is None:
            return
        if session.listening:
            await respond_message(
                send,
                409,
                jsonrpc.error(
                    None, jsonrpc.INVALID_REQUEST, "Conflict: Only one SSE stream is allowed per session"
                ),
            )
            return
        session.listening = True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*SSE_HEADERS, (b"mcp-session-id", session.id.encode())],
            }
        )

        async def pump() -> None:
            while True:
                try:
                    async with asyncio.timeout(15):
                        message = await session.backlog.get()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
                    continue
                await send({"type": "http.response.body", "body": sse_frame(message), "more_body": True})

        try:
            await Guard().run(pump(), receive)
        finally:
            session.listening = False
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _delete(self, send: Send, headers: dict[str, str], grant: Grant, route: Route) -> None:
        session = await self._require_session(send, headers, grant, route)
        if session is None:
            return
        self.sessions.pop(session.id, None)
        await session.aclose()
        await respond(send, 200)

    # --- /mcp: a project's servers as one -----------------------------------------------------

    # --- the stateless 2026-07-28 revision ----------------------------------------------------

    async def _modern(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        grant: Grant,
        route: Route,
        targets: list[Target],
    ) -> None:
        version = headers["mcp-protocol-version"]
        if scope["method"] != "POST":
            await respond(send, 405, b"", [(b"allow", b"POST")])
            return
        if not accepts(headers, "application/json"):
            await respond(send, 406)
            return
        message, size = await self._read(receive, send)
        if message is None:
            return
        if not jsonrpc.is_request(message):
            await respond(send, 202)
            return
        call = Call(message["method"], request_bytes=size)
        refused = modern.check_envelope(message, version)
        if refused is None and version not in jsonrpc.MODERN_VERSIONS:
            refused = jsonrpc.error(
                message["id"],
                jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
                f"Unsupported protocol version: {version}",
                {"supported": [*jsonrpc.MODERN_VERSIONS, *jsonrpc.HANDSHAKE_VERSIONS], "requested": version},
            )
        if refused is not None:
            call.outcome(refused)
            body = await respond_message(send, 400, refused)
            self._log(grant, None, call, len(body))
            return
        exchange = Exchange(send, sse_ok=accepts(headers, "text/event-stream"))
        if route.project or not targets[0].modern:
            work = self._serve_held(grant, targets, message, exchange, call, single=not route.project)
        else:
            call.server_id = targets[0].server_id
            work = self._serve_modern(grant, targets[0], headers, message, exchange, call)
        try:
            await Guard().run(work, receive)
        finally:
            exchange.close()
        self._log(grant, None, call, exchange.response_bytes)

    async def _serve_held(
        self,
        grant: Grant,
        targets: list[Target],
        message: Message,
        exchange: Exchange,
        call: Call,
        *,
        single: bool,
    ) -> None:
        """A stateless request to a handshake-only upstream (or to /mcp), over held sessions."""
        try:
            reply = await modern.dispatch(
                self, grant, targets, message, exchange, call, single=single, timeout=_timeout
            )
        except GatewayRefusal as refusal:
            await _finish_refused(exchange, message, refusal, call)
            return
        except UpstreamError as exc:
            reply = jsonrpc.error(message["id"], exc.code, str(exc))
        call.outcome(reply)
        await exchange.finish(reply, modern.http_status(reply))

    async def _serve_modern(
        self,
        grant: Grant,
        target: Target,
        headers: dict[str, str],
        message: Message,
        exchange: Exchange,
        call: Call,
    ) -> None:
        method = message["method"]
        refused = self.check_call(grant, target, message, call)
        if refused is not None:
            call.outcome(refused)
            await exchange.finish(refused, 400)
            return
        try:
            if method in CALL_METHODS:
                await self.gatekeeper.consume_call(grant)
            upstream = self._shared_upstream(target)
            forwarded = {name: headers[name] for name in FORWARDED_MODERN_HEADERS if name in headers}
            forwarded.update({k: v for k, v in headers.items() if k.startswith("mcp-param-")})
            if method == "subscriptions/listen":
                await exchange.stream()
            reply = await upstream.request(
                message, sink=exchange.interim, timeout=_timeout(target, method), headers=forwarded
            )
        except GatewayRefusal as refusal:
            await _finish_refused(exchange, message, refusal, call)
            return
        except UpstreamError as exc:
            reply_message = jsonrpc.error(message["id"], exc.code, str(exc))
            call.outcome(reply_message)
            await exchange.finish(reply_message, 200)
            return
        curated = self.curated(grant, target, method, reply.message)
        call.outcome(curated)
        raw = reply.raw if curated is reply.message else None
        await exchange.finish(curated, reply.status, sse=reply.content_type == "text/event-stream", raw=raw)

    def _shared_upstream(self, target: Target) -> UpstreamSession:
        """Stateless requests share one connection per server (a stdio process serving the modern
        era, or plain POSTs for HTTP); ids and progress tokens are rewritten per request."""
        upstream = self.shared.get(target.server_id)
        if upstream is None or upstream.spec != target.spec:
            if upstream is not None:
                asyncio.get_running_loop().create_task(upstream.aclose())
            upstream = self.new_upstream_session(target, None)
            self.shared[target.server_id] = upstream
        return upstream

    # --- request log --------------------------------------------------------------------------

    def _log(self, grant: Grant, session_id: str | None, call: Call, response_bytes: int) -> None:
        self.requestlog.record(
            LogEntry(
                org_id=grant.org_id,
                server_id=call.server_id,
                key_id=grant.key_id,
                session_id=session_id,
                method=call.method[:128],
                tool=call.tool[:256] if call.tool else None,
                status=call.status,
                error_code=call.error_code,
                duration_ms=round((time.perf_counter() - call.started) * 1000, 3),
                request_bytes=call.request_bytes,
                response_bytes=response_bytes,
                created_at=datetime.now(UTC),
            )
        )


# --- helpers ----------------------------------------------------------------------------------


def _credential(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _allowed_origins(public_url: str, configured: str) -> frozenset[str]:
    parts = urlsplit(public_url)
    own = f"{parts.scheme}://{parts.netloc}"
    return frozenset({own, *(o.strip().rstrip("/") for o in configured.split(",") if o.strip())})


def _timeout(target: Target, method: str) -> float:
    return 365 * 24 * 3600.0 if method in NO_TIMEOUT_METHODS else target.timeout


async def _finish_refused(exchange: Exchange, message: Message, refusal: GatewayRefusal, call: Call) -> None:
    call.status, call.error_code = "error", refusal.code
    await exchange.finish(
        jsonrpc.error(message["id"], refusal.code, refusal.message, refusal.data),
        refusal.status,
        [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()],
    )


async def _refuse(send: Send, refusal: GatewayRefusal, request_id: Any) -> None:
    headers: Headers = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await respond_message(
        send, refusal.status, jsonrpc.error(request_id, refusal.code, refusal.message, refusal.data), headers
    )


class Guard:
    """Runs a request's work in the serving task itself (no task of its own to schedule), and
    cancels it when the client disconnects or cancels the request: the cancellation reaches the
    upstream call, which tells the upstream.

    Watching for the disconnect takes a task; it starts only once the work has run for
    `WATCH_AFTER` seconds, so the many calls answered sooner never pay for one.
    """

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.reason: str | None = None
        self._receive: Receive = None
        self._watcher: asyncio.Task[None] | None = None

    def cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()

    def _gone(self, watcher: asyncio.Task[None]) -> None:
        if not watcher.cancelled() and watcher.exception() is None:
            self.cancel("client went away")

    def _watch(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(_disconnected(self._receive))
        self._watcher.add_done_callback(self._gone)

    async def run(self, work: Coroutine[Any, Any, None], receive: Receive) -> None:
        self._receive = receive
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self._watch)
        try:
            await work
        except asyncio.CancelledError:
            if self.reason is None:
                raise  # the server is stopping: not ours to swallow
            self.task.uncancel()
        except Exception as exc:
            log.error("relay_failed", error=repr(exc))
        finally:
            timer.cancel()
            if self._watcher is not None:
                self._watcher.remove_done_callback(self._gone)
                self._watcher.cancel()


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# --- /mcp -------------------------------------------------------------------------------------


def _project_initialize(session: Session, targets: list[Target], message: Message) -> Message:
    return {
        "jsonrpc": "2.0",
        "id": message["id"],
        "result": {
            "protocolVersion": session.version,
            "capabilities": {
                "tools": {"listChanged": True},
                "resources": {"listChanged": True, "subscribe": True},
                "prompts": {"listChanged": True},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {
                "name": "conduit",
                "title": "Conduit project gateway",
                "version": conduit.__version__,
            },
            "instructions": "Tools of this project's servers, named {server}__{tool}: "
            + ", ".join(t.slug for t in targets),
        },
    }


class GatewayMiddleware:
    """Hands gateway paths to the relay before FastAPI routing (no per-message routing cost).

    `conduit serve` puts it in front of the whole FastAPI app (`front`), so relayed messages skip
    FastAPI's middleware stack and the per-request access log line (the relay writes its own
    request log); `create_app` also installs it inside, for anyone serving the bare app.
    """

    def __init__(self, app: Any, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        await self.gateway.ensure_started()
        started = time.perf_counter()
        status = 500

        async def observed(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.gateway.serve(route, scope, receive, observed)
        finally:
            requests, latency = _metrics(scope["method"], METRICS_ROUTES[route.project], status)
            requests.inc()
            latency.observe(time.perf_counter() - started)


METRICS_ROUTES = {True: PROJECT_PATH, False: "/s/{org}/{server}/mcp"}


@functools.lru_cache(maxsize=256)
def _metrics(method: str, route: str, status: int) -> tuple[Any, Any]:
    """`metrics.observe`'s two series for one kind of answer, looked up once rather than by
    label on every relayed message."""
    return metrics.REQUESTS.labels(method, route, str(status)), metrics.LATENCY.labels(method, route)


def front(app: Any) -> GatewayMiddleware:
    """The ASGI app to serve: the relay in front of `app` (a FastAPI app from `create_app`)."""
    return GatewayMiddleware(app, app.state.gateway)
