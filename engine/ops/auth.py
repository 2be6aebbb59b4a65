"""Who may do what: users who log in to the web UI, API keys for programs, and roles.

Roles: `admin` (everything, including users and keys), `marketer` (builds and runs
campaigns), `viewer` (reads only). Passwords are stored as salted scrypt hashes; API keys
as SHA-256 digests (a key is 190 random bits: a slow hash adds nothing but latency to
every API call), shown once when created.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine.core import clock
from engine.core.errors import InvalidInput, NameTaken, NotFound, Unauthorized
from engine.core.models import ApiKey, User

ROLES = ("admin", "marketer", "viewer")
#: a key published in web pages (the popup snippet): only the popup endpoints accept it
SITE = "site"
#: what a key may be; people log in with one of ROLES
KEY_ROLES = (*ROLES, SITE)
#: a key's last use is written at most this often (not on every request)
LAST_USED_GRANULARITY = timedelta(minutes=1)
MIN_PASSWORD = 8
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
#: a hash to compare against when the user does not exist, so timing does not tell
_DUMMY_HASH = generate_password_hash("not a password")


@dataclass(frozen=True)
class Principal:
    """Whoever makes a request: a logged-in user or an API key."""

    kind: str  # "user" or "api_key"
    id: int
    name: str
    role: str

    def may_change(self) -> bool:
        return self.role in ("admin", "marketer")

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "role": self.role}


def check_role(role: object, pointer: str = "/role", allowed: tuple[str, ...] = ROLES) -> str:
    if role not in allowed:
        raise InvalidInput.field(pointer, f"must be one of {', '.join(allowed)}")
    return role


def check_password(password: object, pointer: str = "/password") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput.field(pointer, f"must be a string of at least {MIN_PASSWORD} characters")
    return password


def create_user(session: Session, username: object, password: object, role: object = "marketer") -> User:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise InvalidInput.field("/username", "must be 1 to 64 letters, digits, '.', '_', '@' or '-'")
    password = check_password(password)
    role = check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise NameTaken(f"a user named {username} already exists", [{"pointer": "/username"}])
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: object) -> None:
    user.password_hash = generate_password_hash(check_password(password))


def login(session: Session, username: object, password: object) -> User:
    """The user these credentials belong to; the same error for a wrong name or password."""
    user = session.scalar(select(User).where(User.username == username)) if isinstance(username, str) else None
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password if isinstance(password, str) else "")
    if user is None or not ok or user.disabled:
        raise Unauthorized("wrong username or password")
    user.last_login_at = clock.now()
    return user


def user_principal(session: Session, user_id: int) -> Principal | None:
    """The principal of a logged-in session, if the user still exists and is enabled."""
    user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    return Principal("user", user.id, user.username, user.role)


def create_api_key(session: Session, name: object, role: object = "marketer",
                   created_by: int | None = None) -> tuple[ApiKey, str]:
    """A new key: its row, and the key itself (the only time it exists outside its owner)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput.field("/name", "must be a non-empty string of at most 200 characters")
    check_role(role, allowed=KEY_ROLES)
    prefix = secrets.token_hex(4)
    key = f"cc_{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(name=name.strip(), prefix=prefix, key_hash=_digest(key), role=role,
                 created_by=created_by)
    session.add(row)
    session.flush()
    return row, key


def key_principal(session: Session, key: str) -> Principal | None:
    """The principal of an API key, or None for an unknown or revoked key."""
    found = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key)))
    if found is None or found.revoked_at is not None:
        return None
    now = clock.now()
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_GRANULARITY:
        found.last_used_at = now
    return Principal("api_key", found.id, found.name, found.role)


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    found = session.get(ApiKey, key_id)
    if found is None:
        raise NotFound(f"API key {key_id} does not exist")
    if found.revoked_at is None:
        found.revoked_at = clock.now()
    return found


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
