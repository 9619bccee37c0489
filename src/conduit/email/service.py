"""Email ingress rules: domains an account claims and proves by DNS, the operator's public domains,
which addresses Conduit takes mail for, and SMTP security policies with their evaluation.

Functions take the request's session and never commit. The SMTP server uses `domain_for_address`,
`verify_smtp_credentials`, `evaluate_policy` and `webhook_for_recipient`; email webhooks are
addresses routed to endpoints of the webhook engine, which owns their delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from typing import Any, Literal, TypedDict

import idna
import structlog
from jinja2 import Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.email.auth.dkim import DkimResult
from conduit.email.auth.dmarc import public_suffixes
from conduit.email.auth.spf import SpfResult
from conduit.email.dns import DnsResolver, VerificationResult, normalize_host, verify_domain
from conduit.email.message import build_payload, normalize_recipient, parse_message
from conduit.email.models import Domain, EmailWebhook, SmtpPolicy
from conduit.identity import audit
from conduit.identity.auth import ClientInfo, Principal
from conduit.kit.clock import utcnow
from conduit.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from conduit.kit.ids import random_base62
from conduit.kit.runtime import Runtime
from conduit.kit.security import constant_time_equals, hash_password, verify_password
from conduit.orgs.service import personal_org_id
from conduit.settings import Settings
from conduit.webhooks import service as webhooks
from conduit.webhooks.models import ACTIVE, WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = structlog.get_logger("conduit.email")

# --- Domain names --------------------------------------------------------------------------

MAX_DOMAIN_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# What users paste instead of a bare domain: a mailbox, a URL, a host with a port.
_NOT_A_DOMAIN = re.compile(r"[@/:\s]")
_ECHO_LIMIT = 100


class InvalidDomain(Unprocessable):
    code, message = "invalid_domain", "Not a valid domain name"


def _shown(text: str) -> str:
    return repr(text if len(text) <= _ECHO_LIMIT else text[:_ECHO_LIMIT] + "...")


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def normalize_domain(name: str) -> str:
    """The domain as stored and compared: lowercase A-labels (IDNA 2008 with UTS #46 mapping),
    without the final dot. Refuses IP addresses, single labels, bad labels, over-long names and
    public suffixes (`com`, `co.uk`, `github.io`): nobody owns those as a whole."""
    text = name.strip()
    text = text[:-1] if text.endswith(".") else text
    if not text:
        raise InvalidDomain("A domain name is required")
    if _is_ip_address(text):
        raise InvalidDomain("An IP address is not a domain; claim a domain name such as example.com")
    if _NOT_A_DOMAIN.search(text):
        raise InvalidDomain("Send the domain alone, such as example.com: no mailbox, scheme, port or path")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidDomain(f"Not a valid domain name: {exc}") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > MAX_DOMAIN_LENGTH:
        raise InvalidDomain(f"A domain name has at most {MAX_DOMAIN_LENGTH} characters")
    if len(labels) < 2:
        raise InvalidDomain("A domain name has at least two labels, such as example.com")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if bad is not None:
        raise InvalidDomain(
            f"The label {_shown(bad)} is not valid: 1 to 63 letters, digits and hyphens, "
            "not starting or ending with a hyphen"
        )
    if labels[-1].isdigit():
        raise InvalidDomain("The last label of a domain name cannot be a number")
    if public_suffixes().is_public(ascii_name):
        raise InvalidDomain(f"{ascii_name} is a public suffix; use a domain registered under it")
    return ascii_name


# --- Domains -------------------------------------------------------------------------------

VERIFY_TOKEN_PREFIX = "conduit-verify-"
VERIFY_TOKEN_RANDOM = 32
PUBLIC_ID_PREFIX = "dom_public_"
DNS_RESOLVER_EXTRA = "email_dns_resolver"
MAIL_RESOLVER_EXTRA = "email_mail_dns_resolver"
MAIL_DNS_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class PublicDomain:
    """A domain of the operator (`CONDUIT_PUBLIC_EMAIL_DOMAINS`): usable by every account, owned
    by none, verified by configuration. Its id is derived from its name, so it is stable."""

    name: str

    @property
    def id(self) -> str:
        return PUBLIC_ID_PREFIX + hashlib.sha256(self.name.encode()).hexdigest()[:16]


DomainEntry = Domain | PublicDomain


@lru_cache(maxsize=8)
def _parse_public_domains(text: str) -> tuple[str, ...]:
    names: list[str] = []
    for entry in (item.strip() for item in text.split(",")):
        if not entry:
            continue
        try:
            names.append(normalize_domain(entry))
        except InvalidDomain as exc:
            log.error("public_email_domain_ignored", entry=entry, reason=exc.message)
    return tuple(dict.fromkeys(names))


def public_domains(settings: Settings) -> tuple[str, ...]:
    """The configured public domains, normalized; an invalid entry is logged and left out."""
    return _parse_public_domains(settings.public_email_domains)


def _domain_not_found() -> NotFound:
    return NotFound("Domain not found", code="domain_not_found")


async def list_domains(session: AsyncSession, settings: Settings, account_id: str) -> list[DomainEntry]:
    """The account's domains, oldest first, then the operator's public domains."""
    rows = await session.scalars(
        select(Domain).where(Domain.account_id == account_id).order_by(Domain.created_at, Domain.id)
    )
    return [*rows.all(), *(PublicDomain(name) for name in public_domains(settings))]


async def get_domain(
    session: AsyncSession, settings: Settings, account_id: str, domain_id: str
) -> DomainEntry:
    """One of the account's domains or a public domain; anything else, another account's
    included, is a 404."""
    if domain_id.startswith(PUBLIC_ID_PREFIX):
        public = next(
            (PublicDomain(n) for n in public_domains(settings) if PublicDomain(n).id == domain_id), None
        )
        if public is None:
            raise _domain_not_found()
        return public
    domain = await session.get(Domain, domain_id)
    if domain is None or domain.account_id != account_id:
        raise _domain_not_found()
    return domain


def _actor(principal: Principal) -> str:
    assert principal.account_id is not None, "email resources belong to accounts"
    return principal.account_id


def _audit(session: AsyncSession, principal: Principal, client: ClientInfo, action: str, **meta: Any) -> None:
    audit.record(
        session,
        action,
        account_id=principal.account_id,
        ip=client.ip,
        key_id=principal.api_key.id if principal.api_key else None,
        **meta,
    )


async def claim_domain(
    session: AsyncSession, settings: Settings, principal: Principal, name: str, client: ClientInfo
) -> Domain:
    """Claim `name` for the caller, unverified, with a fresh verification token. A domain has one
    owner: a name claimed by anyone (the caller included) or public is a 409."""
    account_id = _actor(principal)
    name = normalize_domain(name)
    if name in public_domains(settings):
        raise Conflict(
            f"{name} is a public domain: every account may use it without claiming it",
            code="domain_already_claimed",
        )
    existing = await session.scalar(select(Domain).where(Domain.name == name))
    if existing is not None:
        raise _already_claimed(name, by_caller=existing.account_id == account_id)
    domain = Domain(
        account_id=account_id,
        name=name,
        verification_token=VERIFY_TOKEN_PREFIX + random_base62(VERIFY_TOKEN_RANDOM),
    )
    session.add(domain)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent claim of the same name won the race
        raise _already_claimed(name, by_caller=False) from exc
    _audit(session, principal, client, "domain.claimed", domain_id=domain.id, name=name)
    return domain


def _already_claimed(name: str, *, by_caller: bool) -> Conflict:
    whose = "you have" if by_caller else "another account has"
    return Conflict(f"{name} is already claimed: {whose} claimed it", code="domain_already_claimed")


async def delete_domain(
    session: AsyncSession, settings: Settings, principal: Principal, domain_id: str, client: ClientInfo
) -> None:
    domain = await get_domain(session, settings, _actor(principal), domain_id)
    if isinstance(domain, PublicDomain):
        raise Forbidden("A public domain belongs to the operator and cannot be deleted", code="public_domain")
    await session.delete(domain)
    _audit(session, principal, client, "domain.deleted", domain_id=domain.id, name=domain.name)


def resolver_for(runtime: Runtime) -> DnsResolver:
    """The process's resolver for domain verification (`CONDUIT_DNS_NAMESERVERS`), made once;
    it caches nothing."""
    resolver = runtime.extras.get(DNS_RESOLVER_EXTRA)
    if resolver is None:
        resolver = runtime.extras[DNS_RESOLVER_EXTRA] = DnsResolver.from_settings(runtime.settings)
    assert isinstance(resolver, DnsResolver)
    return resolver


def mail_resolver_for(runtime: Runtime) -> DnsResolver:
    """The process's resolver for SPF, DKIM and DMARC: answers are kept for their TTL."""
    resolver = runtime.extras.get(MAIL_RESOLVER_EXTRA)
    if resolver is None:
        resolver = DnsResolver.from_settings(runtime.settings, cache_entries=MAIL_DNS_CACHE_ENTRIES)
        runtime.extras[MAIL_RESOLVER_EXTRA] = resolver
    assert isinstance(resolver, DnsResolver)
    return resolver


async def check_domain_dns(runtime: Runtime, domain: Domain) -> VerificationResult:
    """Look up the TXT token and the MX record. Takes seconds at worst: call it with no database
    transaction open."""
    return await verify_domain(
        resolver_for(runtime), domain.name, domain.verification_token, runtime.settings.mx_host
    )


def verification_failed(result: VerificationResult) -> Unprocessable:
    """The 422 of a failed check, naming each record that is missing, wrong or not looked up."""
    only_lookups_failed = all(problem.code == "dns_error" for problem in result.problems)
    return Unprocessable(
        f"{result.domain} is not verified: " + " ".join(problem.message for problem in result.problems),
        code="dns_lookup_failed" if only_lookups_failed else "domain_verification_failed",
        detail=[
            {
                "record": problem.record,
                "name": problem.name,
                "code": problem.code,
                "expected": problem.expected,
                "found": list(problem.found),
                "message": problem.message,
            }
            for problem in result.problems
        ],
    )


async def record_verification(
    session: AsyncSession,
    principal: Principal,
    domain_id: str,
    result: VerificationResult,
    client: ClientInfo,
) -> Domain:
    """Mark the domain verified, or raise the 422 that says which record is wrong (a failed check
    changes nothing: a verified domain stays verified through a DNS hiccup). The domain is read
    again: it may have been deleted while DNS answered."""
    domain = await session.get(Domain, domain_id, populate_existing=True)
    if domain is None or domain.account_id != _actor(principal):
        raise _domain_not_found()
    if not result.verified:
        raise verification_failed(result)
    if not domain.verified:
        domain.verified = True
        domain.verified_at = utcnow()
        await session.flush()  # the answer shows the row as stored, its new updated_at included
        _audit(session, principal, client, "domain.verified", domain_id=domain.id, name=domain.name)
    return domain


# --- Addresses -----------------------------------------------------------------------------

MAX_LOCAL_PART_OCTETS = 64
# RFC 5322 atext, plus any non-ASCII character (RFC 6531 SMTPUTF8), between single dots.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+")


class InvalidAddress(Unprocessable):
    code, message = "invalid_address", "Not a valid email address"


@dataclass(frozen=True)
class AddressDomain:
    """The domain Conduit takes mail for that an address is on."""

    name: str
    is_public: bool
    account_id: str | None
    """The owner of a claimed domain; None for a public domain."""
    domain_id: str


def split_address(address: str) -> tuple[str, str]:
    """`(local part, normalized domain)` of `local@domain`; raises `InvalidAddress` or
    `InvalidDomain` (422s). The local part is kept as given: its case is the receiver's business."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress("An email address has a local part and a domain, such as support@example.com")
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        raise InvalidAddress(f"The local part of an address has at most {MAX_LOCAL_PART_OCTETS} octets")
    if not all(_ATOM.fullmatch(atom) for atom in local.split(".")):
        raise InvalidAddress(
            "The local part of an address is letters, digits and !#$%&'*+/=?^_`{|}~- between single dots"
        )
    return local, normalize_domain(domain)


def normalize_address(address: str) -> str:
    local, domain = split_address(address)
    return f"{local}@{domain}"


async def domain_for_address(
    session: AsyncSession, settings: Settings, address: str, *, account_id: str | None = None
) -> AddressDomain | None:
    """The domain of `address` if Conduit takes mail for it: a verified domain (of `account_id`
    when given, of anyone otherwise) or a public domain. None otherwise, and for an address whose
    domain is not valid: on the SMTP path, that is an unknown recipient, not an error. Only the
    domain is looked at: the local part is the business of whoever routes to a mailbox.

    The SMTP server must pass the owner of the webhook an address belongs to: a domain deleted
    and claimed again by another account must not carry mail to the first account's webhooks.
    """
    _local, at, domain_part = address.strip().rpartition("@")
    if not at:
        return None
    try:
        name = normalize_domain(domain_part)
    except InvalidDomain:
        return None
    query = select(Domain).where(Domain.name == name, Domain.verified.is_(True))
    if account_id is not None:
        query = query.where(Domain.account_id == account_id)
    domain = await session.scalar(query)
    if domain is not None:
        return AddressDomain(name, False, domain.account_id, domain.id)
    if name in public_domains(settings):
        return AddressDomain(name, True, None, PublicDomain(name).id)
    return None


async def require_address_domain(
    session: AsyncSession, settings: Settings, account_id: str, address: str
) -> AddressDomain:
    """For creating an address (an email webhook's): it must be on one of the account's verified
    domains or a public domain, else a 422 that says so."""
    _local, name = split_address(address)
    found = await domain_for_address(session, settings, address, account_id=account_id)
    if found is None:
        raise Unprocessable(
            f"{name} is not a verified domain of your account nor a public domain: claim it with "
            "POST /api/v1/domains and verify it first",
            code="domain_not_verified",
        )
    return found


# --- SMTP policies -------------------------------------------------------------------------

MASK = "********"
MAX_LIST_ENTRIES = 100
SMTP_USERNAME_MAX = 128
SMTP_PASSWORD_MIN, SMTP_PASSWORD_MAX = 8, 128
_LIST_SEPARATORS = re.compile(r"[\s,;]+")

PolicyCheck = Literal["source_ip", "smtp_auth", "spf", "dkim"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyFields(TypedDict, total=False):
    """A policy's fields as the API sends them. On update, a field left out is unchanged; a null
    list or credential removes it, a null name or flag is the same as leaving it out."""

    name: str | None
    require_spf: bool | None
    allowed_spf_domains: str | None
    require_dkim: bool | None
    allowed_dkim_domains: str | None
    allowed_source_ips: str | None
    require_smtp_auth: bool | None
    smtp_credentials: str | None


def _field_error(field: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(message, code=code, detail=[{"loc": ["body", field], "msg": message, "type": code}])


def _entries(field: str, text: str | None) -> list[str]:
    entries = [entry for entry in _LIST_SEPARATORS.split(text or "") if entry]
    if len(entries) > MAX_LIST_ENTRIES:
        raise _field_error(field, f"{field} has at most {MAX_LIST_ENTRIES} entries", "too_many_entries")
    return entries


def parse_domain_list(field: str, text: str | None) -> list[str]:
    """Comma- (or space-) separated domains, normalized and deduplicated."""
    domains = []
    for entry in _entries(field, text):
        try:
            domains.append(normalize_domain(entry))
        except InvalidDomain as exc:
            raise _field_error(
                field, f"{_shown(entry)} in {field}: {exc.message}", "invalid_domain"
            ) from None
    return list(dict.fromkeys(domains))


def _network(entry: str) -> Network:
    network = ipaddress.ip_network(entry, strict=False)
    if isinstance(network, ipaddress.IPv6Network):
        if "%" in entry:
            raise ValueError("an address with a scope id")
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def parse_network_list(field: str, text: str | None) -> list[str]:
    """Comma- (or space-) separated IP addresses and CIDR ranges, as CIDRs, deduplicated."""
    networks, invalid = [], []
    for entry in _entries(field, text):
        try:
            networks.append(str(_network(entry)))
        except ValueError:
            invalid.append(entry)
    if invalid:
        message = f"{field} takes IP addresses and CIDR ranges; not valid: " + ", ".join(
            _shown(entry) for entry in invalid[:5]
        )
        detail = [
            {
                "loc": ["body", field],
                "msg": f"{_shown(entry)} is not an IP address or CIDR range",
                "type": "invalid_network",
            }
            for entry in invalid
        ]
        raise Unprocessable(message, code="invalid_source_ips", detail=detail)
    return list(dict.fromkeys(networks))


@dataclass(frozen=True)
class SmtpCredentials:
    username: str
    password: str | None
    """None when the masked value came back: keep the stored password."""


def parse_credentials(text: str) -> SmtpCredentials:
    """`username:password`; the username ends at the first colon. Messages never repeat the password."""
    field = "smtp_credentials"
    username, colon, password = text.partition(":")
    if not colon or not username:
        raise _field_error(field, "smtp_credentials is username:password", "invalid_smtp_credentials")
    if len(username) > SMTP_USERNAME_MAX or any(ch.isspace() or not ch.isprintable() for ch in username):
        raise _field_error(
            field,
            f"The SMTP username is 1 to {SMTP_USERNAME_MAX} printable characters without spaces",
            "invalid_smtp_credentials",
        )
    if password == MASK:
        return SmtpCredentials(username, None)
    if not SMTP_PASSWORD_MIN <= len(password) <= SMTP_PASSWORD_MAX:
        raise _field_error(
            field,
            f"The SMTP password is {SMTP_PASSWORD_MIN} to {SMTP_PASSWORD_MAX} characters",
            "invalid_smtp_credentials",
        )
    return SmtpCredentials(username, password)


def masked_credentials(policy: SmtpPolicy) -> str | None:
    if policy.smtp_username is None or policy.smtp_password_hash is None:
        return None
    return f"{policy.smtp_username}:{MASK}"


def _policy_not_found() -> NotFound:
    return NotFound("SMTP security policy not found", code="policy_not_found")


async def list_policies(session: AsyncSession, account_id: str) -> list[SmtpPolicy]:
    rows = await session.scalars(
        select(SmtpPolicy)
        .where(SmtpPolicy.account_id == account_id)
        .order_by(SmtpPolicy.created_at, SmtpPolicy.id)
    )
    return list(rows.all())


async def get_policy(session: AsyncSession, account_id: str, policy_id: str) -> SmtpPolicy:
    policy = await session.get(SmtpPolicy, policy_id)
    if policy is None or policy.account_id != account_id:
        raise _policy_not_found()
    return policy


async def _changes(policy: SmtpPolicy, fields: PolicyFields) -> dict[str, Any]:
    """The column values `fields` asks for, every one validated before anything is changed."""
    given = {
        "name": fields.get("name"),
        "require_spf": fields.get("require_spf"),
        "require_dkim": fields.get("require_dkim"),
        "require_smtp_auth": fields.get("require_smtp_auth"),
    }
    values: dict[str, Any] = {column: value for column, value in given.items() if value is not None}
    if "allowed_spf_domains" in fields:
        values["allowed_spf_domains"] = parse_domain_list(
            "allowed_spf_domains", fields["allowed_spf_domains"]
        )
    if "allowed_dkim_domains" in fields:
        values["allowed_dkim_domains"] = parse_domain_list(
            "allowed_dkim_domains", fields["allowed_dkim_domains"]
        )
    if "allowed_source_ips" in fields:
        values["allowed_source_ips"] = parse_network_list("allowed_source_ips", fields["allowed_source_ips"])
    if "smtp_credentials" in fields:
        values.update(await _credential_changes(policy, fields["smtp_credentials"]))
    has_password = values.get("smtp_password_hash", policy.smtp_password_hash) is not None
    if values.get("require_smtp_auth", policy.require_smtp_auth) and not has_password:
        raise _field_error(
            "smtp_credentials",
            "require_smtp_auth needs smtp_credentials (username:password)",
            "smtp_credentials_required",
        )
    return values


async def _credential_changes(policy: SmtpPolicy, text: str | None) -> dict[str, Any]:
    if not text:
        return {"smtp_username": None, "smtp_password_hash": None}
    credentials = parse_credentials(text)
    if credentials.password is not None:
        # argon2 takes tens of milliseconds of CPU; keep it off the event loop.
        password_hash = await asyncio.to_thread(hash_password, credentials.password)
        return {"smtp_username": credentials.username, "smtp_password_hash": password_hash}
    if policy.smtp_password_hash is None:
        raise _field_error(
            "smtp_credentials",
            "smtp_credentials has the masked password but the policy has none to keep: send the password",
            "invalid_smtp_credentials",
        )
    return {"smtp_username": credentials.username}


async def create_policy(
    session: AsyncSession, principal: Principal, fields: PolicyFields, client: ClientInfo
) -> SmtpPolicy:
    policy = SmtpPolicy(
        account_id=_actor(principal),
        allowed_spf_domains=[],
        allowed_dkim_domains=[],
        allowed_source_ips=[],
    )
    for column, value in (await _changes(policy, fields)).items():
        setattr(policy, column, value)
    session.add(policy)
    await session.flush()
    _audit(session, principal, client, "smtp_policy.created", policy_id=policy.id, name=policy.name)
    return policy


async def update_policy(
    session: AsyncSession, principal: Principal, policy_id: str, fields: PolicyFields, client: ClientInfo
) -> SmtpPolicy:
    policy = await get_policy(session, _actor(principal), policy_id)
    changes = await _changes(policy, fields)
    for column, value in changes.items():
        setattr(policy, column, value)
    await session.flush()
    # Which fields changed, never their values: the credentials are among them.
    _audit(session, principal, client, "smtp_policy.updated", policy_id=policy.id, fields=sorted(fields))
    return policy


PolicyUseCheck = Callable[[AsyncSession, str], Awaitable[str | None]]
# Each kind of resource that can reference a policy registers how to find one that does.
POLICY_USE_CHECKS: list[PolicyUseCheck] = []


def policy_user(check: PolicyUseCheck) -> PolicyUseCheck:
    """Register `check(session, policy_id)`, which names a resource using the policy (such as
    `"email webhook whk_..."`) or returns None. A registered check makes the policy undeletable."""
    POLICY_USE_CHECKS.append(check)
    return check


async def policy_in_use(session: AsyncSession, policy_id: str) -> str | None:
    """What uses the policy, or None when nothing does."""
    for check in POLICY_USE_CHECKS:
        user = await check(session, policy_id)
        if user:
            return user
    return None


async def delete_policy(
    session: AsyncSession, principal: Principal, policy_id: str, client: ClientInfo
) -> None:
    """A policy in use is a 409. A reference added by a concurrent request is caught by its
    foreign key, which the referencing table declares."""
    policy = await get_policy(session, _actor(principal), policy_id)
    user = await policy_in_use(session, policy.id)
    if user is not None:
        raise _in_use(user)
    await session.delete(policy)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _in_use("another resource") from exc
    _audit(session, principal, client, "smtp_policy.deleted", policy_id=policy.id, name=policy.name)


def _in_use(user: str) -> Conflict:
    return Conflict(f"The policy is in use by {user}: detach it first", code="policy_in_use")


async def verify_smtp_credentials(policy: SmtpPolicy, username: str, password: str) -> bool:
    """Check SMTP AUTH credentials against the policy's. The cost is the same whether or not the
    username matches or the policy has credentials at all, so timing tells nothing."""
    username_ok = constant_time_equals(policy.smtp_username or "", username)
    stored = policy.smtp_password_hash if username_ok else None
    password_ok = await asyncio.to_thread(verify_password, stored, password)
    return username_ok and password_ok and policy.smtp_username is not None


@dataclass(frozen=True)
class PolicyDecision:
    """What the SMTP server answers for a recipient under a policy.

    `reply` is the full SMTP reply line to send when not allowed: a 5xx is final, a 4xx (a DNS
    lookup that failed for now) asks the sender to try again later. `pending` names checks that
    could not be made yet (DKIM before the message is in): call again with those facts.
    """

    allowed: bool
    check: PolicyCheck | None = None
    """The check that failed."""
    code: int = 250
    status: str = "2.0.0"
    """The enhanced status code (RFC 3463, RFC 7372)."""
    message: str = "OK"
    pending: tuple[PolicyCheck, ...] = ()

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.message}"

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


def _refuse(check: PolicyCheck, code: int, status: str, message: str) -> PolicyDecision:
    return PolicyDecision(False, check, code, status, message)


def evaluate_policy(
    policy: SmtpPolicy,
    *,
    remote_ip: str,
    spf_result: SpfResult | None,
    dkim_results: Sequence[DkimResult] | None,
    smtp_user: str | None,
    smtp_password_ok: bool,
) -> PolicyDecision:
    """Every check the policy sets must pass; the first that fails decides, in this order: source
    IP, SMTP AUTH, SPF, DKIM.

    `spf_result` None means SPF was not checked: a policy that needs it refuses. `dkim_results`
    None means the message is not in yet (at RCPT): DKIM is left `pending`; an empty list is a
    message without signatures. `smtp_user` is who authenticated (None: nobody) and
    `smtp_password_ok` what `verify_smtp_credentials` said for this policy.
    """
    refusal = (
        _check_source_ip(policy, remote_ip)
        or _check_smtp_auth(policy, smtp_user, smtp_password_ok)
        or _check_spf(policy, spf_result, remote_ip)
    )
    if refusal is not None:
        return refusal
    if not (policy.require_dkim or policy.allowed_dkim_domains):
        return PolicyDecision(True)
    if dkim_results is None:
        return PolicyDecision(True, pending=("dkim",))
    return _check_dkim(policy, dkim_results) or PolicyDecision(True)


@lru_cache(maxsize=1024)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry) for entry in entries)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _check_source_ip(policy: SmtpPolicy, remote_ip: str) -> PolicyDecision | None:
    if not policy.allowed_source_ips:
        return None
    address = _address(remote_ip)
    if address is not None and any(
        address in network for network in _networks(tuple(policy.allowed_source_ips))
    ):
        return None
    return _refuse(
        "source_ip", 550, "5.7.1", f"Delivery not authorized: {remote_ip} may not send to this address"
    )


def _check_smtp_auth(
    policy: SmtpPolicy, smtp_user: str | None, smtp_password_ok: bool
) -> PolicyDecision | None:
    if not policy.require_smtp_auth:
        return None
    if smtp_user is None:
        return _refuse("smtp_auth", 530, "5.7.0", "Authentication required")
    if not smtp_password_ok:
        return _refuse("smtp_auth", 550, "5.7.8", "Authentication credentials invalid")
    return None


def _covered(domain: str, allowed: Sequence[str]) -> bool:
    """`domain` is one of `allowed` or below one of them."""
    domain = normalize_host(domain)
    return any(domain == entry or domain.endswith("." + entry) for entry in allowed)


def _check_spf(policy: SmtpPolicy, spf: SpfResult | None, remote_ip: str) -> PolicyDecision | None:
    allowed = policy.allowed_spf_domains
    if not (policy.require_spf or allowed):
        return None
    if spf is None:
        return _refuse("spf", 550, "5.7.23", "SPF validation failed: SPF was not checked")
    if spf.result == "temperror":
        return _refuse("spf", 451, "4.7.24", f"SPF validation error for {spf.domain}: try again later")
    if spf.result == "permerror":
        return _refuse(
            "spf", 550, "5.7.24", f"SPF validation error: the SPF record of {spf.domain} is invalid"
        )
    if spf.result != "pass":
        return _refuse(
            "spf",
            550,
            "5.7.23",
            f"SPF validation failed: {spf.domain} does not authorize {remote_ip} ({spf.result})",
        )
    if allowed and not _covered(spf.domain, allowed):
        return _refuse(
            "spf", 550, "5.7.23", f"SPF validation failed: {spf.domain} is not an accepted sender domain"
        )
    return None


def _check_dkim(policy: SmtpPolicy, results: Sequence[DkimResult]) -> PolicyDecision | None:
    allowed = policy.allowed_dkim_domains
    acceptable = [result for result in results if not allowed or _covered(result.domain, allowed)]
    if any(result.result == "pass" for result in acceptable):
        return None
    if any(result.result == "temperror" for result in acceptable):
        return _refuse("dkim", 451, "4.7.20", "DKIM key lookup failed for now: try again later")
    if any(result.result == "pass" for result in results):
        return _refuse("dkim", 550, "5.7.21", "No acceptable DKIM signature: none is from an accepted domain")
    return _refuse("dkim", 550, "5.7.20", "No passing DKIM signature found")


# --- Email webhooks ------------------------------------------------------------------------

EMAIL_ENDPOINT_KIND = "email"
EMAIL_EVENT_TYPE = "email.received"
TEMPLATE_OUTPUT_MAX = 1_048_576
# Autoescaping is for HTML; a template writes JSON and escapes with `tojson`.
_TEMPLATES = ImmutableSandboxedEnvironment(autoescape=False)


class WebhookFields(TypedDict, total=False):
    """An email webhook's fields as the API sends them; on update, a field left out is unchanged."""

    active: bool | None
    address: str | None
    clear_security_policy: bool | None
    custom_headers: dict[str, str] | None
    include_raw: bool | None
    name: str | None
    payload_template: str | None
    rate_limit: int | None
    secret: str | None
    smtp_security_policy_id: str | None
    target_url: str | None


@dataclass(frozen=True)
class SimulatedMessage:
    sender: str
    subject: str
    text: str


class InvalidTemplate(Unprocessable):
    code, message = "invalid_payload_template", "payload_template is not a valid template"


def _template_error(message: str) -> InvalidTemplate:
    return InvalidTemplate(
        message, detail=[{"loc": ["body", "payload_template"], "msg": message, "type": InvalidTemplate.code}]
    )


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    try:
        return _TEMPLATES.from_string(source)
    except TemplateSyntaxError as exc:
        raise _template_error(f"payload_template line {exc.lineno}: {exc.message}") from None


def render_payload(template: str | None, payload: dict[str, Any]) -> dict[str, Any] | bytes:
    """The body an email webhook sends: `payload` itself, or what `template` renders from it,
    which must be JSON (else `InvalidTemplate`)."""
    if not template:
        return payload
    try:
        body = _compiled(template).render(payload=payload)
    except InvalidTemplate:
        raise
    except SecurityError as exc:
        raise _template_error(f"payload_template does something the sandbox forbids: {exc}") from None
    except Exception as exc:  # a template fails in as many ways as Python code does
        raise _template_error(f"payload_template failed to render: {type(exc).__name__}: {exc}") from None
    if len(body) > TEMPLATE_OUTPUT_MAX:
        raise _template_error(f"payload_template renders more than {TEMPLATE_OUTPUT_MAX} characters")
    try:
        json.loads(body)
    except ValueError as exc:
        raise _template_error(f"payload_template does not render JSON: {exc}") from None
    return body.encode()


def simulated_payload(address: str, message: SimulatedMessage) -> dict[str, Any]:
    """The payload of a synthetic message to `address`, as the SMTP server would build it."""
    email = EmailMessage()
    email["From"] = message.sender
    email["To"] = address
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = make_msgid(domain="simulated.conduit.invalid")
    email.set_content(message.text)
    parsed = parse_message(email.as_bytes())
    recipient = normalize_recipient(address)
    envelope = {
        "from": message.sender,
        "to": [address],
        "recipients": [{"address": address, "routed_to": recipient.address, "tag": recipient.tag}],
        "remote_ip": "127.0.0.1",
        "helo": "simulated.conduit.invalid",
        "tls": False,
        "tls_version": None,
        "tls_cipher": None,
        "auth_user": None,
        "simulated": True,
    }
    auth = {"spf": {"result": "none"}, "dkim": [], "dmarc": {"result": "none"}}
    return build_payload(envelope=envelope, auth=auth, parsed=parsed)


SAMPLE_MESSAGE = SimulatedMessage("alice@example.org", "Quarterly report", "Hi Bob.\n")


def validate_template(template: str | None, address: str) -> str | None:
    """The template to store (None for none); it must render JSON from a sample message."""
    if not template:
        return None
    render_payload(template, simulated_payload(address, SAMPLE_MESSAGE))
    return template


def _webhook_not_found() -> NotFound:
    return NotFound("Webhook not found", code="webhook_not_found")


def _address_key(address: str) -> tuple[str, str]:
    """`(address, routing key)`: the address as stored, and its form with the local part lowercase."""
    local, domain = split_address(address)
    return f"{local}@{domain}", f"{local.lower()}@{domain}"


def _address_taken(address: str) -> Conflict:
    return Conflict(f"{address} already has a webhook", code="address_taken")


async def _owned_policy_id(session: AsyncSession, account_id: str, policy_id: str) -> str:
    policy = await session.get(SmtpPolicy, policy_id)
    if policy is None or policy.account_id != account_id:
        raise _field_error(
            "smtp_security_policy_id",
            "smtp_security_policy_id is not an SMTP security policy of your account",
            "policy_not_found",
        )
    return policy.id


async def _org_of(session: AsyncSession, account_id: str) -> str:
    org_id = await personal_org_id(session, account_id)
    if org_id is None:
        raise Conflict("Your account has no personal organization to own webhooks", code="no_personal_org")
    return org_id


async def list_webhooks(session: AsyncSession, account_id: str) -> list[EmailWebhook]:
    rows = await session.scalars(
        select(EmailWebhook)
        .where(EmailWebhook.account_id == account_id)
        .order_by(EmailWebhook.created_at, EmailWebhook.id)
    )
    return list(rows.all())


async def get_webhook(session: AsyncSession, account_id: str, webhook_id: str) -> EmailWebhook:
    webhook = await session.get(EmailWebhook, webhook_id)
    if webhook is None or webhook.account_id != account_id:
        raise _webhook_not_found()
    return webhook


async def endpoint_of(session: AsyncSession, webhook: EmailWebhook) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, webhook.endpoint_id)
    if endpoint is None:  # deleted with its organization, this webhook with it
        raise _webhook_not_found()
    return endpoint


async def _claim_address(
    session: AsyncSession, settings: Settings, account_id: str, address: str, webhook_id: str | None = None
) -> tuple[str, str]:
    await require_address_domain(session, settings, account_id, address)
    stored, key = _address_key(address)
    holder = await session.scalar(select(EmailWebhook.id).where(EmailWebhook.address_key == key))
    if holder is not None and holder != webhook_id:
        raise _address_taken(stored)
    return stored, key


async def _flush_webhook(session: AsyncSession, webhook: EmailWebhook) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the address
        raise _address_taken(webhook.address) from exc


async def create_webhook(
    session: AsyncSession, runtime: Runtime, principal: Principal, fields: WebhookFields, client: ClientInfo
) -> tuple[EmailWebhook, WebhookEndpoint, str]:
    """The webhook, its engine endpoint and its signing secret, which is shown this once."""
    account_id = _actor(principal)
    address, key = await _claim_address(session, runtime.settings, account_id, fields.get("address") or "")
    template = validate_template(fields.get("payload_template"), address)
    policy_id = fields.get("smtp_security_policy_id")
    if policy_id:
        policy_id = await _owned_policy_id(session, account_id, policy_id)
    endpoint, secret = await webhooks.create_endpoint(
        session,
        runtime,
        org_id=await _org_of(session, account_id),
        url=fields.get("target_url") or "",
        secret=fields.get("secret"),
        rate_limit=fields.get("rate_limit"),
        custom_headers=fields.get("custom_headers"),
        kind=EMAIL_ENDPOINT_KIND,
        description=f"Email webhook for {address}"[:200],
    )
    webhook = EmailWebhook(
        account_id=account_id,
        endpoint_id=endpoint.id,
        name=fields.get("name") or address,
        address=address,
        address_key=key,
        payload_template=template,
        include_raw=bool(fields.get("include_raw")),
        active=fields.get("active") is not False,
        smtp_security_policy_id=policy_id or None,
    )
    session.add(webhook)
    await _flush_webhook(session, webhook)
    _audit(session, principal, client, "email_webhook.created", webhook_id=webhook.id, address=address)
    return webhook, endpoint, secret


async def update_webhook(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    webhook_id: str,
    fields: WebhookFields,
    client: ClientInfo,
) -> tuple[EmailWebhook, WebhookEndpoint, str | None]:
    """The webhook, its endpoint, and the new secret when `fields` sets one. Every field is
    validated before anything changes."""
    account_id = _actor(principal)
    webhook = await get_webhook(session, account_id, webhook_id)
    endpoint = await endpoint_of(session, webhook)
    changes: dict[str, Any] = {}
    if fields.get("address"):
        changes["address"], changes["address_key"] = await _claim_address(
            session, runtime.settings, account_id, fields["address"] or "", webhook.id
        )
    if "payload_template" in fields:
        changes["payload_template"] = validate_template(
            fields["payload_template"], changes.get("address", webhook.address)
        )
    if fields.get("clear_security_policy"):
        changes["smtp_security_policy_id"] = None
    elif fields.get("smtp_security_policy_id"):
        changes["smtp_security_policy_id"] = await _owned_policy_id(
            session, account_id, fields["smtp_security_policy_id"] or ""
        )
    if fields.get("name"):
        changes["name"] = fields["name"]
    if fields.get("active") is not None:
        changes["active"] = fields["active"]
    if fields.get("include_raw") is not None:
        changes["include_raw"] = fields["include_raw"]
    _update_endpoint(runtime, endpoint, fields)
    secret = fields.get("secret")
    if secret:
        webhooks.rotate_secret(runtime.keyring, endpoint, secret=secret)
    if changes.get("active") and endpoint.status != ACTIVE:
        webhooks.enable_endpoint(endpoint)
    for column, value in changes.items():
        setattr(webhook, column, value)
    webhook.updated_at = utcnow()
    await _flush_webhook(session, webhook)
    # Which fields changed, never their values: the secret and headers are among them.
    _audit(session, principal, client, "email_webhook.updated", webhook_id=webhook.id, fields=sorted(fields))
    return webhook, endpoint, secret or None


def _update_endpoint(runtime: Runtime, endpoint: WebhookEndpoint, fields: WebhookFields) -> None:
    options: dict[str, Any] = {}
    if fields.get("target_url"):
        options["url"] = fields["target_url"]
    if "rate_limit" in fields:
        options["rate_limit"] = fields["rate_limit"]
    if "custom_headers" in fields:
        options["custom_headers"] = fields["custom_headers"]
    if options:
        webhooks.update_endpoint(runtime, endpoint, **options)


async def delete_webhook(
    session: AsyncSession, principal: Principal, webhook_id: str, client: ClientInfo
) -> None:
    """Deletes its engine endpoint, deliveries and delivery log too."""
    webhook = await get_webhook(session, _actor(principal), webhook_id)
    endpoint = await session.get(WebhookEndpoint, webhook.endpoint_id)
    await session.delete(webhook)
    await session.flush()
    if endpoint is not None:
        await webhooks.delete_endpoint(session, endpoint)
    _audit(
        session, principal, client, "email_webhook.deleted", webhook_id=webhook.id, address=webhook.address
    )


@dataclass(frozen=True)
class DeliveryLogEntry:
    """One attempt of the engine's delivery log with the message it carried."""

    attempt: WebhookAttempt
    delivery: WebhookDelivery


def _log_not_found() -> NotFound:
    return NotFound("Delivery log entry not found", code="delivery_log_not_found")


async def _with_deliveries(
    session: AsyncSession, attempts: Sequence[WebhookAttempt]
) -> list[DeliveryLogEntry]:
    ids = {attempt.delivery_id for attempt in attempts}
    rows = await session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    deliveries = {delivery.id: delivery for delivery in rows.all()}
    return [DeliveryLogEntry(attempt, deliveries[attempt.delivery_id]) for attempt in attempts]


async def delivery_log_page(
    session: AsyncSession, webhook: EmailWebhook, *, page: int, page_size: int
) -> list[DeliveryLogEntry]:
    """Newest first."""
    attempts = await webhooks.attempts_page(session, webhook.endpoint_id, page=page, page_size=page_size)
    return await _with_deliveries(session, attempts)


async def delivery_log_entry(session: AsyncSession, webhook: EmailWebhook, log_id: str) -> DeliveryLogEntry:
    attempt = await session.get(WebhookAttempt, log_id)
    if attempt is None or attempt.endpoint_id != webhook.endpoint_id:
        raise _log_not_found()
    [entry] = await _with_deliveries(session, [attempt])
    return entry


def delivery_attributes(payload: dict[str, Any]) -> dict[str, Any]:
    """What the delivery log shows of a message: its envelope sender and Message-ID."""
    return {"sender": payload["envelope"]["from"], "smtp_message_id": payload.get("message_id")}


@dataclass(frozen=True)
class Simulation:
    """A synthetic message ready to go: the endpoint, the log's attributes and the body to send."""

    endpoint: WebhookEndpoint
    attributes: dict[str, Any]
    body: dict[str, Any] | bytes


async def prepare_simulation(
    session: AsyncSession, webhook: EmailWebhook, message: SimulatedMessage
) -> Simulation:
    endpoint = await endpoint_of(session, webhook)
    payload = simulated_payload(webhook.address, message)
    body = render_payload(webhook.payload_template, payload)
    return Simulation(endpoint, delivery_attributes(payload), body)


async def simulate(session: AsyncSession, runtime: Runtime, simulation: Simulation) -> DeliveryLogEntry:
    """Deliver the synthetic message now, for real, logged as simulated. End the request's
    transaction first (see `deliver_now`)."""
    delivery, attempt = await webhooks.deliver_now(
        session,
        runtime,
        simulation.endpoint,
        event_type=EMAIL_EVENT_TYPE,
        payload=simulation.body,
        simulated=True,
        attributes=simulation.attributes,
    )
    return DeliveryLogEntry(attempt, delivery)


@policy_user
async def _webhook_using_policy(session: AsyncSession, policy_id: str) -> str | None:
    webhook_id = await session.scalar(
        select(EmailWebhook.id).where(EmailWebhook.smtp_security_policy_id == policy_id).limit(1)
    )
    return f"email webhook {webhook_id}" if webhook_id else None


async def webhook_for_recipient(
    session: AsyncSession, settings: Settings, address: str
) -> EmailWebhook | None:
    """The active webhook mail to `address` goes to: the address as typed, else without its
    `+tag`; local parts compare case-insensitively. None when there is none, or when its domain
    is no longer a verified domain of the webhook's account (nor a public domain)."""
    try:
        recipient = normalize_recipient(address)
    except ValueError:
        return None
    typed_local = recipient.local if recipient.tag is None else f"{recipient.local}+{recipient.tag}"
    for key in dict.fromkeys((f"{typed_local.lower()}@{recipient.domain}", recipient.key)):
        webhook = await session.scalar(select(EmailWebhook).where(EmailWebhook.address_key == key))
        if webhook is None:
            continue
        owned = await domain_for_address(session, settings, webhook.address, account_id=webhook.account_id)
        return webhook if webhook.active and owned is not None else None
    return None
