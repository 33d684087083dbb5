"""Password hashing with Argon2id (argon2-cffi), off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256
# Letters and digits nobody confuses when reading a password out over the phone
# (no 0/o, 1/l/i): what an administrator hands a user after a reset.
READABLE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


class Passwords:
    """Hashes and verifies passwords with the configured Argon2id cost.

    The defaults follow OWASP's Argon2id minimum (19 MiB, 2 passes). Hashing
    runs in a worker thread: argon2 releases the GIL, and a login must not
    stall every other request for the tens of milliseconds it takes."""

    def __init__(self, time_cost: int = 2, memory_kib: int = 19456) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against when the user does not exist, so a wrong user name
        # costs as long as a wrong password: timing reveals no user names.
        self._dummy_hash = self._hasher.hash("not-a-real-password-0000")

    async def hash(self, password: str) -> str:
        """The Argon2id hash of `password`."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; the same work whether or not the user exists."""
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return matched and password_hash is not None


def password_problem(password: str) -> str | None:
    """Why `password` is unacceptable as a new password, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must have at most {MAX_LENGTH} characters"
    return None


def generate_password(groups: int = 4, group_length: int = 4) -> str:
    """A random password in dash-separated groups ("k7mq-x2vd-p9ht-3nwa": 16 characters
    of a 31-letter alphabet, about 79 bits), easy to read out and type."""
    return "-".join(
        "".join(secrets.choice(READABLE_ALPHABET) for _ in range(group_length))
        for _ in range(groups))
