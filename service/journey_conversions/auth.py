"""Who is calling: the tenant and scope of each call, from its API key or its verified client
certificate (mutual TLS), or, in local development mode only, from the x-tenant-id header;
and the scope each RPC needs.

A client certificate names its tenant with a URI subjectAltName
`urn:journey-conversions:tenant:<tenant>` and may name its scope with
`urn:journey-conversions:scope:<read|write|admin>` (read when it does not). When a call has both
a key and such a certificate, both must name the same tenant, and the key's scope applies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from journey_conversions import keys, parse
from journey_conversions.errors import InvalidArgument, PermissionDenied, Unauthenticated
from journey_conversions.keys import Scope
from journey_conversions.store import api_keys

TENANT_HEADER = "x-tenant-id"
AUTHORIZATION_HEADER = "authorization"

Metadata = Sequence[tuple[str, str]]
Peer = Mapping[str, Iterable[bytes]]  # grpc's auth context of the call

TENANT_URI = "urn:journey-conversions:tenant:"
SCOPE_URI = "urn:journey-conversions:scope:"

# The scope each RPC of JourneyConversionsService needs; a test checks every RPC is here.
METHOD_SCOPES: dict[str, Scope] = {
    "GetJourney": Scope.READ,
    "ListJourneys": Scope.READ,
    "ListConversions": Scope.READ,
    "GetEnrollment": Scope.READ,
    "ListEnrollments": Scope.READ,
    "ExplainGoalEvent": Scope.READ,
    "ListConversionAwards": Scope.READ,
    "StreamConversionEvents": Scope.READ,
    "GetJourneyReport": Scope.READ,
    "EnterJourney": Scope.WRITE,
    "ExitJourney": Scope.WRITE,
    "BatchEnterJourney": Scope.WRITE,
    "BatchExitJourney": Scope.WRITE,
    "RecordTouchpoint": Scope.WRITE,
    "BatchRecordTouchpoints": Scope.WRITE,
    "RecordGoalEvent": Scope.WRITE,
    "BatchRecordGoalEvents": Scope.WRITE,
    "StreamIngest": Scope.WRITE,
    "MarkConversion": Scope.WRITE,
    "EvaluateGoal": Scope.WRITE,
    "DefineJourney": Scope.ADMIN,
    "DefineConversion": Scope.ADMIN,
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The tenant a call acts for and what it may do."""

    tenant_id: str
    scope: Scope
    key_id: str = ""  # "" in development mode


class Authenticator(Protocol):
    async def principal(self, metadata: Metadata, peer: Peer) -> Principal: ...


def header(metadata: Metadata, name: str) -> str | None:
    for key, value in metadata:
        if key == name:
            return value
    return None


def authorize(principal: Principal, method: str) -> None:
    """PERMISSION_DENIED unless the principal's scope covers `method`."""
    needed = METHOD_SCOPES[method]
    if principal.scope < needed:
        raise PermissionDenied(
            "SCOPE_INSUFFICIENT",
            f"this API key's scope is {principal.scope.label}; {method} needs {needed.label}",
        )


class DevelopmentAuthenticator:
    """Local development only: the x-tenant-id header (or the default tenant) is the tenant,
    with every scope. Never on a network address unless the operator insists (server.py)."""

    def __init__(self, default_tenant: str) -> None:
        self.default_tenant = default_tenant

    async def principal(self, metadata: Metadata, peer: Peer) -> Principal:
        tenant = parse.tenant(header(metadata, TENANT_HEADER), self.default_tenant)
        return Principal(tenant, Scope.ADMIN)


_INVALID = "the API key is unknown or revoked"


@dataclass(slots=True)
class _Verified:
    principal: Principal
    secret_hash: bytes
    checked: float  # time.monotonic() of the last look at the stored key


class KeyAuthenticator:
    """`authorization: Bearer <key>` names the caller. A key verified once is remembered (by a
    hash of it) so that later calls skip scrypt; its stored row is looked at again when the
    memory is older than `recheck_seconds`, so a revocation takes effect on every replica
    within that time."""

    MAX_REMEMBERED = 10_000
    MAX_CONCURRENT_HASHES = 2  # scrypt costs ~70 ms of CPU and 16 MiB: bound what guesses cost

    def __init__(self, pool: asyncpg.Pool, recheck_seconds: float) -> None:
        self.pool = pool
        self.recheck_seconds = recheck_seconds
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()
        self._hashing = asyncio.Semaphore(self.MAX_CONCURRENT_HASHES)

    async def principal(self, metadata: Metadata, peer: Peer) -> Principal:
        certified = certificate_principal(peer)
        if certified is not None and header(metadata, AUTHORIZATION_HEADER) is None:
            found = certified
        else:
            found = await self._key_principal(metadata)
            if certified is not None and certified.tenant_id != found.tenant_id:
                raise PermissionDenied(
                    "TENANT_MISMATCH", "the API key and the client certificate name other tenants"
                )
        named = header(metadata, TENANT_HEADER)
        if named is not None and named != found.tenant_id:
            raise PermissionDenied(
                "TENANT_FROM_KEY",
                f"the tenant comes from the API key or certificate; drop the {TENANT_HEADER}"
                " header",
            )
        return found

    async def _key_principal(self, metadata: Metadata) -> Principal:
        token = _bearer_token(metadata)
        fingerprint = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(fingerprint)
        now = time.monotonic()
        if remembered is not None and now - remembered.checked < self.recheck_seconds:
            return remembered.principal
        return await self._look_up(token, fingerprint, remembered, now)

    async def _look_up(
        self, token: str, fingerprint: bytes, remembered: _Verified | None, now: float
    ) -> Principal:
        presented = keys.parse(token)
        if presented is None:
            raise Unauthenticated(
                "API_KEY_MALFORMED",
                f"the API key is malformed (expected {keys.PREFIX}_<id>_<secret>)",
            )
        stored = await api_keys.find(self.pool, presented.key_id)
        for key in stored:
            if key.revoke_time is not None:
                continue
            principal = Principal(key.tenant_id, key.scope, key.key_id)
            same = remembered is not None and remembered.secret_hash == key.secret_hash
            if same or await self._matches(presented.secret, key):
                self._remember(fingerprint, _Verified(principal, key.secret_hash, now))
                return principal
        self._verified.pop(fingerprint, None)
        raise Unauthenticated("API_KEY_INVALID", _INVALID)

    async def _matches(self, secret: str, key: api_keys.StoredKey) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(keys.matches, secret, key.salt, key.secret_hash)

    def _remember(self, fingerprint: bytes, verified: _Verified) -> None:
        self._verified[fingerprint] = verified
        self._verified.move_to_end(fingerprint)
        while len(self._verified) > self.MAX_REMEMBERED:
            self._verified.popitem(last=False)


def certificate_principal(peer: Peer) -> Principal | None:
    """The tenant and scope a verified client certificate names (grpc puts URI SANs of a
    certificate it verified under "peer_uri"), or None when it names no tenant."""
    uris = [u.decode(errors="replace") for u in peer.get("peer_uri", ())]
    tenants = {u.removeprefix(TENANT_URI) for u in uris if u.startswith(TENANT_URI)}
    scopes = {u.removeprefix(SCOPE_URI) for u in uris if u.startswith(SCOPE_URI)}
    if not tenants:
        return None
    if len(tenants) > 1 or len(scopes) > 1:
        raise Unauthenticated(
            "CERTIFICATE_AMBIGUOUS", "the client certificate names more than one tenant or scope"
        )
    (tenant,) = tenants
    try:
        parse.tenant(tenant, "")
        scope = Scope.from_label(scopes.pop()) if scopes else Scope.READ
    except (InvalidArgument, KeyError):
        raise Unauthenticated(
            "CERTIFICATE_INVALID", "the client certificate's tenant or scope is not valid"
        ) from None
    return Principal(tenant, scope, key_id="certificate")


def _bearer_token(metadata: Metadata) -> str:
    value = header(metadata, AUTHORIZATION_HEADER)
    if value is None:
        raise Unauthenticated(
            "API_KEY_MISSING",
            "an API key is required: send 'authorization: Bearer <key>' (or, where the server"
            " takes client certificates, one that names a tenant)",
        )
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "API_KEY_MALFORMED", "the authorization header must read 'Bearer <key>'"
        )
    return token.strip()
