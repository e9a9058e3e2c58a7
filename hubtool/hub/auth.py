"""Users, organizations and tokens of the local Hub.

Tokens look like the Hub's (``hf_`` + 34 letters), are shown once when created and are stored
only as their SHA-256 (they are long random secrets, so a fast hash is enough).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from dataclasses import dataclass

from hubtool.errors import UsageError
from hubtool.hub.db import Database
from hubtool.hub.protocol import ApiError, Request

NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_ALPHABET = string.ascii_letters


@dataclass(frozen=True)
class Identity:
    user: str
    role: str  # "read" or "write"
    namespaces: tuple[str, ...]  # the user's own name and its organizations
    orgs: tuple[str, ...]
    token_name: str
    token_created: str

    @property
    def can_write(self) -> bool:
        return self.role == "write"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "hf_" + "".join(secrets.choice(_ALPHABET) for _ in range(34))


def check_name(name: str, what: str) -> None:
    """huggingface_hub's ``validate_repo_id`` rules, for a namespace or a repo name."""
    if not NAME.fullmatch(name) or ".." in name or "--" in name or name.lower().endswith(".git"):
        raise UsageError(
            f"{what} {name[:200]!r} is not valid: use letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit, without '--', '..' or a '.git' "
            "ending (at most 96 characters)"
        )


def identify(db: Database, token: str | None) -> Identity | None:
    """The identity a token belongs to; None for anonymous. A bad token is a 401."""
    if token is None:
        return None
    row = db.get_token(hash_token(token))
    if row is None:
        raise ApiError(401, "Invalid credentials in Authorization header")
    orgs = tuple(db.orgs_of(row["user"]))
    return Identity(
        row["user"], row["role"], (row["user"], *orgs), orgs, row["display_name"], row["created_at"]
    )


def request_token(req: Request) -> str | None:
    """Bearer token, or the password of HTTP Basic auth (git sends the token there)."""
    if req.bearer:
        return req.bearer
    auth = req.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            _user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return password or None
    return None
