"""Who may use the UI and what they may do: users, roles and password hashes.

Access is configured by three config keys:

- ``ui_users``: user name to ``{role: ..., password_hash: ...}``. The hash
  is Argon2id (``pinball ui --hash-password`` makes one). A user without a
  hash can only come in through the trusted header.
- ``ui_trusted_header``: a request header in which a reverse proxy that has
  authenticated the user names them. A user it names that ``ui_users`` does
  not list is a viewer.
- ``ui_cookie_secret``: signs the login cookie; unset, a random one is made
  at each start, so logins last until the UI restarts.

With none of them the UI has no logins: it serves localhost only, and whoever
reaches it is an admin, as anyone on the machine could use the command line.
"""

import dataclasses
import enum
import secrets
from collections.abc import Mapping
from typing import Any, Final

import argon2
from pinball_core.errors import ConfigError


class Role(enum.IntEnum):
    """What a user may do; each role may do everything the ones below may."""

    #: Reads every page but the token browser.
    VIEWER = 1
    #: Also acts on workflows, instances, jobs and schedules.
    OPERATOR = 2
    #: Also sets signals for every workflow at once, EXIT, and reads raw tokens.
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES: Final = {role.label: role for role in Role}

_hasher = argon2.PasswordHasher()


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """One entry of ``ui_users``."""

    name: str
    role: Role
    password_hash: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """The UI's access settings, checked."""

    users: Mapping[str, User]
    trusted_header: str | None
    cookie_secret: str
    #: Whether the cookie secret was made up at start (logins end on restart).
    cookie_secret_generated: bool = False

    @property
    def open(self) -> bool:
        """True when nobody has to log in: no users, no trusted header."""
        return not self.users and not self.trusted_header

    @property
    def password_logins(self) -> bool:
        """Whether any user can log in with a password."""
        return any(user.password_hash for user in self.users.values())

    def check_password(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None.

        An unknown name costs a hash check too, so the answer's timing does
        not tell which user names exist.
        """
        user = self.users.get(name)
        stored = user.password_hash if user is not None else None
        try:
            if stored is None:
                _hasher.verify(_DUMMY_HASH, password)
                return None
            _hasher.verify(stored, password)
        except argon2.exceptions.VerificationError:
            return None
        except argon2.exceptions.InvalidHashError:
            return None
        return user

    def header_user(self, name: str) -> User:
        """The user a trusted proxy named: as configured, else a viewer."""
        return self.users.get(name) or User(name, Role.VIEWER)


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` for ``ui_users``."""
    return _hasher.hash(password)


_DUMMY_HASH: Final = hash_password(secrets.token_hex(8))


def access_from_config(config: Any) -> Access:
    """The access settings of ``config``.

    :raises ConfigError: listing every bad entry, one ``KEY: reason`` each in
        its ``problems``, so that a user with several mistakes learns them all.
    """
    raw_users = getattr(config, "ui_users", None) or {}
    problems: list[str] = []
    users: dict[str, User] = {}
    for name, entry in raw_users.items():
        user = _user(str(name), entry, problems)
        if user is not None:
            users[user.name] = user

    header = getattr(config, "ui_trusted_header", None)
    if header is not None and not _is_header_name(header):
        problems.append(
            f"ui_trusted_header: {header!r} is not an HTTP header name; use "
            "letters, digits and dashes, e.g. X-Forwarded-User"
        )
        header = None
    if not getattr(config, "ui_trusted_header", None):
        for user in users.values():
            if user.password_hash is None:
                problems.append(
                    f"ui_users.{user.name}: needs a password_hash (make one with "
                    "`pinball ui --hash-password`), since no ui_trusted_header "
                    "is set through which this user could come in"
                )

    secret = getattr(config, "ui_cookie_secret", None)
    generated = not secret
    if secret is not None and len(secret) < 16:
        problems.append(
            "ui_cookie_secret: must be at least 16 characters long; make one with "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if problems:
        raise ConfigError(problems=problems)
    return Access(
        users=users,
        trusted_header=header or None,
        cookie_secret=secret or secrets.token_urlsafe(32),
        cookie_secret_generated=generated,
    )


def _user(name: str, entry: Any, problems: list[str]) -> User | None:
    """The user of one ``ui_users`` entry; None, with ``problems`` added to,
    when the entry is bad."""
    key = f"ui_users.{name}"
    if not name or any(c.isspace() or ord(c) < 0x20 for c in name):
        problems.append(f"{key}: a user name must not be empty or contain spaces")
        return None
    if not isinstance(entry, Mapping):
        problems.append(
            f"{key}: must be a mapping with 'role' and 'password_hash', got "
            f"{type(entry).__name__}"
        )
        return None
    found = len(problems)
    unknown = sorted(set(entry) - {"role", "password_hash"})
    if unknown:
        problems.append(
            f"{key}: unknown key(s) {', '.join(map(str, unknown))}; expected "
            "'role' and 'password_hash'"
        )
    role_name = entry.get("role", "viewer")
    role = ROLE_NAMES.get(str(role_name).lower())
    if role is None:
        problems.append(
            f"{key}.role: must be one of {', '.join(ROLE_NAMES)}, got {role_name!r}"
        )
    password_hash = entry.get("password_hash")
    if password_hash is not None and not _is_argon2_hash(password_hash):
        problems.append(
            f"{key}.password_hash: must be an Argon2 hash ($argon2id$...); "
            "make one with `pinball ui --hash-password`"
        )
    if role is None or len(problems) > found:
        return None
    return User(name, role, password_hash)


def _is_argon2_hash(value: Any) -> bool:
    # A cut or mangled hash would refuse every password at login; say so now.
    try:
        argon2.extract_parameters(str(value))
    except argon2.exceptions.InvalidHashError:
        return False
    return True


def _is_header_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "-_" for c in text)
