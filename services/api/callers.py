"""Who is calling: the client's address, for the limits per address, and the owner of the jobs
it submits, for the cost budget and, when API keys are required, for what it may see.

Without keys (a local, trusted setup) every caller sees every job, as in the original app, and
the owner is a pseudonym of the client's address. With `PI_JOBS_API_KEYS`, every call about jobs
needs `Authorization: Bearer <key>`; the owner is the key's name, and a job of another owner is
answered as not found.
"""

import functools
import hashlib
import hmac
from dataclasses import dataclass

from starlette.types import Scope

from services.shared.web import ApiError, header


@dataclass(frozen=True)
class Caller:
    address: str
    owner: str
    keyed: bool  # owners see only their own jobs

    def may_see(self, owner: str | None) -> bool:
        return not self.keyed or owner == self.owner


@functools.lru_cache(maxsize=4096)
def address_owner(address: str) -> str:
    """The owner of an address's jobs, as written to the log: a pseudonym, not the address."""
    return "address-" + hashlib.sha256(b"pi-jobs owner\0" + address.encode()).hexdigest()[:16]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class ApiKeys:
    """`spec`: comma-separated `name:secret` pairs (a bare secret is named by its digest)."""

    def __init__(self, spec: str) -> None:
        self._owners: dict[bytes, str] = {}
        for entry in (part.strip() for part in spec.split(",")):
            if not entry:
                continue
            name, _, secret = entry.rpartition(":")
            if not secret:
                raise ValueError("PI_JOBS_API_KEYS: an entry has an empty key")
            owner = f"key-{name}" if name else "key-" + _digest(secret).hex()[:12]
            self._owners[_digest(secret)] = owner

    @property
    def required(self) -> bool:
        return bool(self._owners)

    def caller(self, scope: Scope) -> Caller:
        """The caller of this request; 401 when keys are required and it has no valid one."""
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self.required:
            return Caller(address, address_owner(address), keyed=False)
        owner = self._owner(header(scope, b"authorization"))
        if owner is None:
            raise ApiError(
                401,
                "this server requires an API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Caller(address, owner, keyed=True)

    def _owner(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        wanted = _digest(token.strip())
        # Every entry is compared, in constant time, so timing tells nothing about the keys.
        found = None
        for digest, owner in self._owners.items():
            if hmac.compare_digest(digest, wanted):
                found = owner
        return found
