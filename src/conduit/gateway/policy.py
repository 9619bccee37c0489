"""The gateway's hot-path policy: who is calling (API key → `Grant`), how fast (per-key rate
limit), and how much (the organization's daily call quota).

Everything here is answered from process memory in steady state: grants are cached for `ttl`
seconds, rates are counted in memory, and quota units are leased from the database in blocks.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import structlog
from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.admin.models import ConfigServer, Project
from conduit.billing import service as billing
from conduit.billing.models import UsageCounter
from conduit.identity.auth import LAST_USED_RESOLUTION, Principal, ip_allowed
from conduit.identity.models import ApiKey
from conduit.kit.clock import utcnow
from conduit.kit.errors import TooManyRequests
from conduit.kit.ratelimit import TokenBuckets
from conduit.kit.runtime import Runtime
from conduit.kit.security import looks_like_api_key
from conduit.orgs.models import Organization
from conduit.orgs.permissions import can
from conduit.orgs.service import effective_role

# JSON-RPC error codes of a refusal, in the implementation-defined server-error range.
AUTH_ERROR = -32001  # no key, a bad key, or a key that may not do this (HTTP 401/403/404)
RATE_LIMITED = -32029  # rate limit or quota (HTTP 429)

METRIC = "gateway_calls"
# Unknown and refused keys are remembered briefly: a flood of one bad key costs one query a second.
NEGATIVE_TTL = 1.0
# An organization found over its quota is refused from memory for this long before asking again.
EXHAUSTED_RECHECK = 1.0
MAX_CACHED_KEYS = 100_000
MAX_IP_VERDICTS = 256
TOUCH_INTERVAL = LAST_USED_RESOLUTION.total_seconds()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

log = structlog.get_logger("conduit.gateway")


def _now() -> float:
    """Epoch seconds from the movable clock, so tests can move time."""
    return utcnow().timestamp()


@dataclass(frozen=True)
class Grant:
    """What a valid key may do, as cached by the `Gatekeeper`."""

    key_id: str
    org_id: str
    org_slug: str
    account_id: str | None
    kind: str  # ApiKey.kind: account | org | service | project | cli
    role: str  # effective role in the org (orgs.service.effective_role)
    project_id: str | None
    server_ids: frozenset[str] | None  # project keys: their config's servers; None: every server of the org
    tool_allowlists: Mapping[str, frozenset[str] | None]  # server_id -> allowed tools (None: all)
    plan: str
    rate_limit_per_minute: int | None  # None: unlimited

    def reaches(self, server_id: str) -> bool:
        return self.server_ids is None or server_id in self.server_ids

    def allows_tool(self, server_id: str, tool: str) -> bool:
        if not self.reaches(server_id):
            return False
        allowlist = self.tool_allowlists.get(server_id)
        return allowlist is None or tool in allowlist


class GatewayRefusal(Exception):
    """Refusal before anything reaches the upstream.

    `status` is the HTTP status, `code` the JSON-RPC error code (`AUTH_ERROR` or `RATE_LIMITED`),
    `reason` a snake_case word for logs and analytics, `headers` go on the HTTP response
    (`WWW-Authenticate`, `Retry-After`) and `data` into the JSON-RPC error.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        reason: str,
        headers: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})
        self.data = data

    def error_object(self) -> dict[str, Any]:
        """The `error` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True)
class _Denial:
    """A refusal kept in the cache. A fresh exception is raised each time: raising one instance
    again would keep growing its traceback."""

    status: int
    reason: str
    message: str

    def refusal(self) -> GatewayRefusal:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = (
                f'Bearer realm="conduit", error="invalid_token", error_description="{self.message}"'
            )
        return GatewayRefusal(self.status, AUTH_ERROR, self.message, reason=self.reason, headers=headers)


INVALID_KEY = _Denial(401, "invalid_api_key", "Invalid API key")
EXPIRED_KEY = _Denial(401, "api_key_expired", "API key has expired")
# 401, not 403: the key no longer stands for anyone, like the revoked keys of a removed member.
MEMBERSHIP_ENDED = _Denial(
    401, "membership_ended", "The owner of this API key is no longer a member of its organization"
)
NOT_PERMITTED = _Denial(403, "permission_denied", "This API key may not call servers through the gateway")
IP_REFUSED = _Denial(403, "ip_not_allowed", "This API key may not be used from this address")


def _missing_credentials() -> GatewayRefusal:
    return GatewayRefusal(
        401,
        AUTH_ERROR,
        "Authentication required: send a Conduit API key as a Bearer token or in X-API-Key",
        reason="missing_credentials",
        headers={"WWW-Authenticate": 'Bearer realm="conduit"'},
    )


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


@dataclass
class _CachedKey:
    fresh_until: float
    key_id: str | None
    grant: Grant | None = None
    denial: _Denial | None = None
    expires_at: float | None = None
    allowed_ips: list[str] | None = None
    ip_verdicts: dict[str | None, bool] = field(default_factory=dict)

    def admits(self, ip: str | None) -> bool:
        verdict = self.ip_verdicts.get(ip)
        if verdict is None:
            if len(self.ip_verdicts) >= MAX_IP_VERDICTS:
                self.ip_verdicts.clear()
            verdict = self.ip_verdicts[ip] = ip_allowed(self.allowed_ips, ip)
        return verdict


@dataclass
class _Quota:
    """One organization's leased quota units, all from the day period `period`."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    period: str = ""
    starts_at: float = 0.0
    resets_at: float = 0.0
    resets_at_dt: datetime = EPOCH
    remaining: int = 0
    tight: bool = False  # a full batch no longer fits in this period
    refused_until: float = 0.0
    refused_used: int = 0

    def begin(self, period: str, resets_at: datetime) -> None:
        self.period, self.remaining, self.tight = period, 0, False
        self.starts_at = (resets_at - timedelta(days=1)).timestamp()
        self.resets_at, self.resets_at_dt = resets_at.timestamp(), resets_at

    def take(self, now: float) -> bool:
        if self.remaining > 0 and self.starts_at <= now < self.resets_at:
            self.remaining -= 1
            return True
        return False


class Gatekeeper:
    """Authenticates, rate-limits and meters relayed messages.

    - A grant is cached for `ttl` seconds by the keyring hash of its key (never the key): a key
      revoked, disabled or narrowed elsewhere keeps working for at most `ttl` seconds in this
      process; `invalidate()` drops entries at once. Expiry and the IP allowlist are checked on
      every message.
    - Rate limits are per key and per process: with N gateway processes a key may reach N times
      its plan's rate. Each key has a bucket of `limit` calls refilled at `limit` per minute.
    - Quota is exact across processes: units are leased from the shared daily counter in blocks
      of `quota_batch` and handed out from memory. `aclose()` gives unused units back; a process
      that dies keeps its unused lease counted until the day ends.

    Refusals: 401 for a missing, unknown, revoked, disabled or expired key, and for a key whose
    owner is no longer a member of its organization (the key stands for no one, as when the
    membership API revokes it); 403 for an address outside the key's allowlist or a role without
    `servers:invoke`; 429 for rate and quota. Database errors propagate.
    """

    def __init__(self, runtime: Runtime, *, ttl: float = 5.0, quota_batch: int = 20) -> None:
        if ttl <= 0 or quota_batch < 1:
            raise ValueError("ttl must be positive and quota_batch at least 1")
        self._runtime = runtime
        self._ttl = ttl
        self._negative_ttl = min(ttl, NEGATIVE_TTL)
        self._quota_batch = quota_batch
        self._upgrade_url = f"{runtime.settings.resolved_public_url}/api/v1/plans"
        self._keys: dict[str, _CachedKey] = {}
        self._loading: dict[str, asyncio.Task[_CachedKey]] = {}
        self._generation = 0
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._buckets = TokenBuckets()
        self._quotas: dict[str, _Quota] = {}

    # --- authentication ----------------------------------------------------------------------

    async def authenticate(self, raw_credential: str | None, ip: str | None) -> Grant:
        """The grant of a Conduit API key, or a `GatewayRefusal` (401 or 403)."""
        if not raw_credential:
            raise _missing_credentials()
        digest = self._runtime.keyring.hash_token(raw_credential)
        now = _now()
        cached = self._keys.get(digest)
        if cached is None or cached.fresh_until <= now:
            # Checked only here: what is cached passed this check (and the checksum costs more
            # than the cache lookup on every message).
            if not looks_like_api_key(raw_credential):
                raise INVALID_KEY.refusal()
            cached = await self._load(digest)
        if cached.grant is None:
            raise (cached.denial or INVALID_KEY).refusal()
        if cached.expires_at is not None and cached.expires_at <= now:
            raise EXPIRED_KEY.refusal()
        if cached.allowed_ips and not cached.admits(ip):
            raise IP_REFUSED.refusal()
        self._touch(cached.grant.key_id, now)
        return cached.grant

    def invalidate(self, key_id: str | None = None) -> None:
        """Forget cached grants and refusals: of one key, or all of them."""
        self._generation += 1  # a lookup already under way must not store what it read before
        self._loading.clear()
        if key_id is None:
            self._keys.clear()
            return
        for digest in [d for d, cached in self._keys.items() if cached.key_id == key_id]:
            del self._keys[digest]

    async def _load(self, digest: str) -> _CachedKey:
        """One database lookup per key at a time, however many messages are waiting for it."""
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.create_task(self._lookup(digest, self._generation))
            self._loading[digest] = task
            task.add_done_callback(lambda done: self._lookup_done(digest, done))
        # Shielded: one caller giving up must not cancel the lookup the others are waiting for.
        return await asyncio.shield(task)

    def _lookup_done(self, digest: str, task: asyncio.Task[_CachedKey]) -> None:
        if self._loading.get(digest) is task:
            del self._loading[digest]
        if not task.cancelled():
            task.exception()  # retrieved here in case every waiter was cancelled

    async def _lookup(self, digest: str, generation: int) -> _CachedKey:
        async with self._runtime.db.session(write=False) as session:
            cached = await self._resolve(session, digest)
        if generation == self._generation:
            self._remember(digest, cached)
        return cached

    async def _resolve(self, session: AsyncSession, digest: str) -> _CachedKey:
        now = _now()
        row = (
            await session.execute(
                select(ApiKey, Organization.slug, Organization.plan)
                .join(Organization, Organization.id == ApiKey.org_id)
                .where(ApiKey.key_hash == digest)
            )
        ).first()
        if row is None:
            return self._denied(None, INVALID_KEY, now)
        key, org_slug, plan_key = row
        if key.revoked_at is not None or key.disabled_at is not None:
            return self._denied(key.id, INVALID_KEY, now)
        expires_at = key.expires_at.timestamp() if key.expires_at is not None else None
        if expires_at is not None and expires_at <= now:
            return self._denied(key.id, EXPIRED_KEY, now)
        role = await effective_role(
            session, Principal(account=None, org_id=key.org_id, api_key=key), key.org_id
        )
        if role is None:
            return self._denied(key.id, MEMBERSHIP_ENDED, now)
        if not can(role, "servers:invoke"):
            return self._denied(key.id, NOT_PERMITTED, now)
        server_ids, allowlists = await _project_scope(session, key) if key.project_id else (None, {})
        if key.last_used_at is not None:
            self._touched[key.id] = max(self._touched.get(key.id, 0.0), key.last_used_at.timestamp())
        grant = Grant(
            key_id=key.id,
            org_id=key.org_id,
            org_slug=org_slug,
            account_id=key.account_id,
            kind=key.kind,
            role=role,
            project_id=key.project_id,
            server_ids=server_ids,
            tool_allowlists=MappingProxyType(allowlists),
            plan=plan_key,
            rate_limit_per_minute=billing.plan_for(plan_key).gateway_requests_per_minute,
        )
        return _CachedKey(
            fresh_until=now + self._ttl,
            key_id=key.id,
            grant=grant,
            expires_at=expires_at,
            allowed_ips=key.allowed_ips,
        )

    def _denied(self, key_id: str | None, denial: _Denial, now: float) -> _CachedKey:
        return _CachedKey(fresh_until=now + self._negative_ttl, key_id=key_id, denial=denial)

    def _remember(self, digest: str, cached: _CachedKey) -> None:
        if len(self._keys) >= MAX_CACHED_KEYS:
            now = _now()
            for stale in [d for d, c in self._keys.items() if c.fresh_until <= now]:
                del self._keys[stale]
            while len(self._keys) >= MAX_CACHED_KEYS:  # still full of live entries: oldest first
                del self._keys[next(iter(self._keys))]
        self._keys[digest] = cached

    def _touch(self, key_id: str, now: float) -> None:
        """Record `last_used_at` at most once a minute per key, in a transaction of its own."""
        if now - self._touched.get(key_id, 0.0) < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now
        task = asyncio.create_task(self._write_last_used(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_last_used(self, key_id: str) -> None:
        try:
            async with self._runtime.db.session() as session:
                await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
        except Exception as exc:
            log.warning("gateway_key_touch_failed", key_id=key_id, error=str(exc))

    # --- rate limit --------------------------------------------------------------------------

    def check_rate(self, grant: Grant) -> None:
        """Refuse (429) a key past its plan's requests per minute.

        `limit` calls may come at once; after that, one every `60 / limit` seconds (see
        `TokenBuckets`).
        """
        limit = grant.rate_limit_per_minute
        if limit is None:
            return
        wait = self._buckets.take(grant.key_id, limit)
        if wait is not None:
            retry_after = _retry_after(wait)
            raise GatewayRefusal(
                429,
                RATE_LIMITED,
                f"Rate limit of {limit} requests per minute exceeded",
                reason="rate_limited",
                headers={"Retry-After": str(retry_after)},
                data={"limit": limit, "retryAfter": retry_after},
            )

    # --- quota -------------------------------------------------------------------------------

    async def consume_call(self, grant: Grant) -> None:
        """Count one call against the organization's daily quota, or refuse it (429)."""
        limit = billing.plan_for(grant.plan).gateway_calls_per_day
        if limit is None:
            return
        quota = self._quotas.get(grant.org_id)
        if quota is None:
            quota = self._quotas[grant.org_id] = _Quota()
        now = _now()
        if quota.take(now):
            return
        if now < quota.refused_until:
            raise self._over_quota(quota, limit, now)
        async with quota.lock:
            at = utcnow()
            now = at.timestamp()
            if quota.take(now):  # another message leased while this one waited
                return
            await self._lease(grant, quota, limit, at)
            if not quota.take(now):
                raise self._over_quota(quota, limit, now)

    async def _lease(self, grant: Grant, quota: _Quota, limit: int, at: datetime) -> None:
        period, resets_at = billing.period_bounds("day", at)
        new_period = quota.period != period
        async with self._runtime.db.session() as session:
            if new_period and quota.remaining:  # units leased yesterday go back to yesterday
                await _give_back(session, grant.org_id, quota.period, quota.remaining)
            tight = quota.tight and not new_period
            leased, used, tight = await self._reserve(session, grant, limit, tight=tight)
        if new_period:
            quota.begin(period, resets_at)
        quota.remaining += leased
        quota.tight = tight
        if not leased:
            quota.refused_until = min(at.timestamp() + EXHAUSTED_RECHECK, quota.resets_at)
            quota.refused_used = used

    async def _reserve(
        self, session: AsyncSession, grant: Grant, limit: int, *, tight: bool
    ) -> tuple[int, int, bool]:
        """Lease a full batch; once that no longer fits, exactly what remains, else one unit.

        Returns the units leased, the usage to report when none could be, and whether a full
        batch no longer fits.
        """
        if not tight:
            if await self._try_consume(session, grant, self._quota_batch):
                return self._quota_batch, 0, False
            tight = True
        used = (await billing.usage(session, grant.org_id, grant.plan, METRIC)).used
        left = min(limit - used, self._quota_batch)
        if left >= 1 and await self._try_consume(session, grant, left):
            return left, used + left, tight
        # Another process took some of what was left since it was read.
        if left > 1 and await self._try_consume(session, grant, 1):
            return 1, used + 1, tight
        return 0, max(used, limit), tight

    async def _try_consume(self, session: AsyncSession, grant: Grant, amount: int) -> bool:
        try:
            await billing.consume(
                session, grant.org_id, grant.plan, METRIC, upgrade_url=self._upgrade_url, amount=amount
            )
        except TooManyRequests:
            return False
        return True

    def _over_quota(self, quota: _Quota, limit: int, now: float) -> GatewayRefusal:
        retry_after = _retry_after(quota.resets_at - now)
        resets_at = quota.resets_at_dt.isoformat().replace("+00:00", "Z")
        return GatewayRefusal(
            429,
            RATE_LIMITED,
            billing.METERED[METRIC][2],
            reason="quota_exceeded",
            headers={"Retry-After": str(retry_after)},
            data={
                "limit": limit,
                "used": quota.refused_used,
                "resets_at": resets_at,
                "upgrade_url": self._upgrade_url,
            },
        )

    # --- shutdown ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Give unused quota units back and wait for pending `last_used_at` writes."""
        leases = [(org_id, q.period, q.remaining) for org_id, q in self._quotas.items() if q.remaining]
        self._quotas.clear()
        if leases:
            try:
                async with self._runtime.db.session() as session:
                    for org_id, period, units in leases:
                        await _give_back(session, org_id, period, units)
            except Exception as exc:
                log.warning("gateway_quota_give_back_failed", leases=len(leases), error=str(exc))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.invalidate()


async def _project_scope(
    session: AsyncSession, key: ApiKey
) -> tuple[frozenset[str], dict[str, frozenset[str] | None]]:
    """The servers a project key reaches (its project's config) and each one's tool allowlist."""
    config_id = await session.scalar(
        select(Project.config_id).where(Project.id == key.project_id, Project.org_id == key.org_id)
    )
    if config_id is None:
        return frozenset(), {}
    rows = await session.execute(
        select(ConfigServer.server_id, ConfigServer.tools).where(ConfigServer.config_id == config_id)
    )
    allowlists = {
        server_id: frozenset(tools) if tools is not None else None for server_id, tools in rows.all()
    }
    return frozenset(allowlists), allowlists


async def _give_back(session: AsyncSession, org_id: str, period: str, units: int) -> None:
    count = UsageCounter.count
    await session.execute(
        update(UsageCounter)
        .where(UsageCounter.org_id == org_id, UsageCounter.metric == METRIC, UsageCounter.period == period)
        .values(count=case((count > units, count - units), else_=0))
    )
