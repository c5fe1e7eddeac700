"""The Pinball config file: one YAML mapping of keys to values, with defaults.

Every key of the original Pinball's config is accepted, so an existing config
keeps working. Keys this rewrite no longer uses are logged once as ignored.
Anything else that is wrong, including a misspelt key, stops :func:`load_config`
with a :class:`~pinball_core.errors.ConfigError` naming the file, the key and
the reason. Keys that a plugin reads (``parser_params``, ``ui_users``) are
checked by that plugin, which names the key; the plugin manager adds the file
(:attr:`Config.label`), so those errors read the same.

A string value written as ``${NAME}`` (the whole value) is replaced by the
environment variable ``NAME`` at load time, so secrets need not sit in the
file. Relative paths resolve against the config file's folder.
"""

import difflib
import logging
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import pydantic
import pydantic_core
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from pinball_core.errors import ConfigError

log = logging.getLogger(__name__)

#: The config file's name inside the Pinball home folder.
CONFIG_FILE_NAME: Final = "pinball.yaml"

#: Environment variable naming the Pinball home folder.
HOME_ENV: Final = "PINBALL_HOME"

#: Environment variable that, when set and not empty, overrides ``master_secret``.
MASTER_SECRET_ENV: Final = "PINBALL_MASTER_SECRET"

#: Keys of the original Pinball that this rewrite accepts but does not use:
#: S3 logs, the GitHub repository parser, Google sign-in, Django's cookie
#: crypto and host checks, and a setting the original itself never read.
IGNORED_KEYS: Final = frozenset(
    {
        "allowed_hosts",
        "aes_cbc_key",
        "authentication_domains",
        "aws_access_key_id",
        "aws_secret_access_key",
        "crypto_version",
        "github_api_uri",
        "github_http_timeout_sec",
        "github_oauth_token",
        "github_server",
        "google_client_id",
        "google_client_secret",
        "hmac_key",
        "s3_logs_dir_prefix",
        "secret_key",
        "user",
        "worker_creation_sleep_interval_sec",
    }
)

# Key names whose values are hidden by Config.for_display().
_SECRET_WORDS = ("secret", "password", "pass", "key", "token")
_MASK = "***"

# A string value that is exactly ${NAME}.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_MYSQL_ENGINE = "django.db.backends.mysql"
_SQLITE_ENGINE = "django.db.backends.sqlite3"

# Settings of a Django DATABASES entry that mean nothing to a Pinball store.
_DJANGO_ONLY_SETTINGS = frozenset(
    {
        "ATOMIC_REQUESTS",
        "AUTOCOMMIT",
        "CONN_HEALTH_CHECKS",
        "CONN_MAX_AGE",
        "DISABLE_SERVER_SIDE_CURSORS",
        "TEST",
        "TIME_ZONE",
    }
)


def default_home() -> pathlib.Path:
    """The Pinball home folder when the config does not set ``home``.

    ``$PINBALL_HOME`` if set, else ``~/.pinball``; always absolute.
    """
    home = os.environ.get(HOME_ENV) or "~/.pinball"
    return pathlib.Path(home).expanduser().absolute()


def default_config_path() -> pathlib.Path:
    """Where ``pinball`` looks for its config when ``-c`` is not given."""
    return default_home() / CONFIG_FILE_NAME


class _Expect:
    """What a key's value must be, for error messages ("must be <text>")."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _not_a_flag(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number belongs.

    Pydantic takes a bool for 1 or 0, so ``workers: true`` would run one
    worker; a flag in a number's place is a mistake worth naming.
    """
    if isinstance(value, bool):
        # Not a value_error: the message is then the key's own "must be ...".
        raise pydantic_core.PydanticCustomError("flag_for_number", "not a number")
    return value


Number = BeforeValidator(_not_a_flag)
PositiveInt = Annotated[int, Number, Field(gt=0), _Expect("a positive integer")]
NonNegativeInt = Annotated[int, Number, Field(ge=0), _Expect("a non-negative integer")]
Port = Annotated[
    int, Number, Field(ge=0, le=65535), _Expect("a port number from 0 to 65535")
]
Seconds = Annotated[float, Number, Field(gt=0), _Expect("a positive number of seconds")]
Flag = Annotated[bool, _Expect("true or false")]
Text = Annotated[str, _Expect("a string")]
OptionalText = Annotated[str | None, _Expect("a string")]
Folder = Annotated[pathlib.Path, _Expect("a folder path")]
Names = Annotated[list[str], _Expect("a list of names")]
Options = Annotated[dict[str, Any], _Expect("a mapping of keys to values")]


class DatabaseEntry(BaseModel):
    """One entry of the original's Django-style ``databases:`` mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    engine: Text = Field(alias="ENGINE", description="Django database backend")
    name: OptionalText = Field(
        default=None, alias="NAME", description="database or file"
    )
    user: OptionalText = Field(default=None, alias="USER")
    password: OptionalText = Field(default=None, alias="PASSWORD")
    host: OptionalText = Field(default=None, alias="HOST")
    port: OptionalText = Field(
        default=None, alias="PORT", description="as text or number"
    )
    options: Options = Field(
        default_factory=dict,
        alias="OPTIONS",
        description="driver options, passed on as URL query parameters",
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_django_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _DJANGO_ONLY_SETTINGS}
        return data

    @field_validator("port", mode="before")
    @classmethod
    def _port_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("port")
    @classmethod
    def _port_is_number(cls, value: str | None) -> str | None:
        if value and not value.isdigit():
            raise ValueError(f"must be a port number, got {value!r}")
        return value or None

    def store_url(self, key: str, base_dir: pathlib.Path) -> str:
        """The SQLAlchemy URL of this entry; ``key`` names it in errors."""
        if self.engine == _MYSQL_ENGINE:
            query: dict[str, str] = {}
            for option, value in self.options.items():
                if isinstance(value, dict | list):
                    raise _KeyProblem(
                        f"{key}.OPTIONS.{option}",
                        "must be a single value to pass to the MySQL driver",
                    )
                query[option] = str(value)
            url = URL.create(
                "mysql+pymysql",
                username=self.user or None,
                password=self.password or None,
                host=self.host or None,
                port=int(self.port) if self.port else None,
                database=self.name or None,
                query=query,
            )
            return url.render_as_string(hide_password=False)
        if self.engine == _SQLITE_ENGINE:
            if not self.name:
                raise _KeyProblem(f"{key}.NAME", "must name the SQLite database file")
            database = self.name
            if database != ":memory:":
                database = str(_resolve(database, base_dir))
            return URL.create("sqlite", database=database).render_as_string()
        raise _KeyProblem(
            f"{key}.ENGINE",
            f"unsupported engine {self.engine!r}; use {_MYSQL_ENGINE} or "
            f"{_SQLITE_ENGINE}, or set 'store' to a database URL",
        )


class Config(BaseModel):
    """The validated config: every key with its value or its default.

    Build one with :func:`load_config`. It is read-only; derived values
    (:attr:`store_url`) are properties.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- General
    generation: NonNegativeInt = Field(
        default=1, description="worker generation; an EXIT signal stops older ones"
    )
    debug: Flag = Field(
        default=False, description="debug mode for components and the UI"
    )
    home: Folder = Field(
        default_factory=default_home,
        description="Pinball home folder: default store, logs",
    )
    # The original's log root was these two joined as strings; when either
    # is set, logs_dir defaults to that join, as it did there.
    local_logs_dir_prefix: OptionalText = Field(default=None, description="e.g. /tmp/")
    job_log_path_prefix: OptionalText = Field(
        default=None, description="pinball_job_logs/"
    )
    logs_dir: Folder = Field(
        default_factory=lambda data: _home_of(data) / "logs",
        description="job logs; default <home>/logs",
    )

    # -- Master
    master_host: Text = Field(default="localhost", description="where clients reach it")
    master_port: Port = Field(default=9090, description="master's listen port")
    master_name: OptionalText = Field(default=None, description="this master's name")
    master_secret: OptionalText = Field(
        default=None, description="shared secret every master request must carry"
    )
    request_id_retention_sec: Seconds = Field(
        default=600,
        description="how long applied request ids are remembered; longer than "
        "any client keeps retrying (client_connect_attempts with backoff)",
    )

    # -- Client
    client_connect_attempts: PositiveInt = Field(
        default=10, description="connection attempts before a client gives up"
    )
    client_timeout_sec: Seconds = Field(
        default=180, description="request timeout and base retry backoff"
    )
    max_backoff_client_reconnect_sec: Seconds = Field(
        default=1200, description="cap of the client's retry backoff"
    )

    # -- Workers
    workers: PositiveInt = Field(default=5, description="worker threads per process")
    worker_poll_time_sec: Seconds = Field(
        default=10,
        description="how often idle workers look for work that no event announces "
        "(drained instances, jobs changed by hand) and for archives due",
    )
    worker_lease_sec: Seconds = Field(
        default=60,
        description="lease on a running job, renewed every third of it; a worker "
        "that cannot renew kills its job, and a dead worker's job is rerun after it",
    )
    executor: Text = Field(
        default="local", description="executor plugin that runs jobs"
    )
    abort_grace_sec: Seconds = Field(
        default=10, description="between SIGTERM and SIGKILL when a job is stopped"
    )
    archive_delay_sec: Seconds = Field(
        default=43200,
        description="how long a finished instance stays active before it is archived",
    )
    default_max_workflow_running_instances: PositiveInt = Field(
        default=3, description="running instances per workflow unless its schedule says"
    )

    # -- Scheduler
    scheduler_poll_sec: Seconds = Field(
        default=30,
        description="how often the scheduler reads the schedules to see new and "
        "changed ones; runs start when due, not at this period",
    )
    scheduler_delay_sec: Seconds = Field(
        default=60,
        description="how long a run held back (DELAY, DELAY_UNTIL_SUCCESS, the "
        "running-instance cap) waits before the scheduler asks again",
    )

    # -- UI
    ui_host: OptionalText = Field(
        default=None, description="UI host name; None: localhost"
    )
    ui_port: Port = Field(default=8080, description="UI listen port")
    # Checked in detail by the UI plugin, which names the bad entry.
    ui_users: Options = Field(
        default_factory=dict,
        description="UI users: name to {role: viewer|operator|admin, "
        "password_hash: Argon2id hash}; none: the UI serves localhost only",
    )
    ui_trusted_header: OptionalText = Field(
        default=None,
        description="request header in which a reverse proxy names the user",
    )
    ui_cookie_secret: OptionalText = Field(
        default=None,
        description="signs UI login cookies; unset: a new one each start",
    )

    # -- Store
    store: OptionalText = Field(
        default=None, description="store URL; wins over databases"
    )
    databases: dict[str, DatabaseEntry] = Field(
        default_factory=dict, description="the original's Django-style databases"
    )

    # -- Parser
    parser: Text = Field(
        default="python", description="parser plugin name or dotted path"
    )
    parser_params: Options = Field(
        default_factory=dict, description="options for the parser"
    )

    # -- Plugins
    disabled_plugins: Names = Field(
        default_factory=list, description="plugins not to load: kind.name or name"
    )
    plugins: dict[str, Options] = Field(
        default_factory=dict, description="per-plugin options by plugin name"
    )

    # -- Email
    default_email: Text = Field(
        default="pinball@localhost", description="sender of mail"
    )
    smtp_host: Text = Field(default="localhost", description="SMTP server")
    smtp_port: Port = Field(default=25, description="SMTP port")
    smtp_user: Text = Field(default="", description="SMTP login; empty: no login")
    smtp_pass: Text = Field(default="", description="SMTP password")
    smtp_ssl: Flag = Field(default=False, description="connect to SMTP over SSL")

    # -- Legacy: accepted so old configs load, logged as ignored (IGNORED_KEYS)
    allowed_hosts: Any = None
    worker_creation_sleep_interval_sec: Any = None
    s3_logs_dir_prefix: Any = None
    aws_access_key_id: Any = None
    aws_secret_access_key: Any = None
    github_server: Any = None
    github_api_uri: Any = None
    github_oauth_token: Any = None
    github_http_timeout_sec: Any = None
    user: Any = None
    authentication_domains: Any = None
    google_client_id: Any = None
    google_client_secret: Any = None
    secret_key: Any = None
    aes_cbc_key: Any = None
    hmac_key: Any = None
    crypto_version: Any = None

    # Where relative paths in the file resolve: the config file's folder.
    _base_dir: pathlib.Path = PrivateAttr(default_factory=pathlib.Path.cwd)
    _source: pathlib.Path | None = PrivateAttr(None)
    _label: str = PrivateAttr(default_factory=lambda: str(default_config_path()))

    @model_validator(mode="before")
    @classmethod
    def _original_logs_dir(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("logs_dir") is not None:
            return data
        prefix = data.get("local_logs_dir_prefix")
        suffix = data.get("job_log_path_prefix")
        if prefix is None and suffix is None:
            return data
        if not isinstance(prefix, str | None) or not isinstance(suffix, str | None):
            return data  # the field validation reports it
        joined = (prefix or "/tmp/") + (suffix or "pinball_job_logs/")
        return {**data, "logs_dir": joined}

    @field_validator("home", "logs_dir")
    @classmethod
    def _resolve_folder(cls, value: pathlib.Path, info: ValidationInfo) -> pathlib.Path:
        return _resolve(value, _base_dir(info))

    @field_validator("store")
    @classmethod
    def _check_store_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(
                "must be a database URL such as sqlite:///PATH or "
                "mysql+pymysql://USER:PASSWORD@HOST/DATABASE, "
                f"got {_mask_url(value)!r}"
            ) from None
        if url.get_backend_name() == "sqlite" and url.database not in (
            None,
            "",
            ":memory:",
        ):
            database = str(_resolve(url.database, _base_dir(info)))
            url = url.set(database=database)
        return url.render_as_string(hide_password=False)

    @field_validator("plugins", mode="before")
    @classmethod
    def _empty_plugin_options(cls, value: Any) -> Any:
        # "plugins: {email: }" in YAML gives None for "no options".
        if isinstance(value, dict):
            return {k: {} if v is None else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _check_derived(self, info: ValidationInfo) -> "Config":
        self._base_dir = _base_dir(info)
        self._compute_store_url()  # a bad databases entry fails the load
        return self

    def _compute_store_url(self) -> str:
        if self.store:
            return self.store
        if self.databases:
            # The original read its tokens through this entry.
            entry = "pinball.persistence"
            if entry not in self.databases:
                entry = "default"
            if entry not in self.databases:
                raise _KeyProblem(
                    "databases",
                    "must have an entry named 'pinball.persistence' or 'default'",
                )
            return self.databases[entry].store_url(f"databases.{entry}", self._base_dir)
        return URL.create(
            "sqlite", database=str(self.home / "pinball.db")
        ).render_as_string()

    @property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL, password included.

        ``store`` if set; else the ``databases`` entry ``pinball.persistence``
        (or ``default``) in URL form; else a SQLite file in :attr:`home`.
        """
        return self._compute_store_url()

    @property
    def store_display_url(self) -> str:
        """:attr:`store_url` with any password masked, for logs and output."""
        return _mask_url(self.store_url)

    @property
    def source(self) -> pathlib.Path | None:
        """The file this config was read from; None when only defaults apply."""
        return self._source

    @property
    def label(self) -> str:
        """How errors name this config: the file as it was given, or the
        default path when no file exists and only the defaults apply.

        Every error that comes from a key's value starts with it, as in
        ``pinball.yaml: workers: must be a positive integer``; plugins raise
        ``ConfigError("KEY: reason")`` and Pinball adds the label.
        """
        return self._label

    def ignored_keys(self) -> list[str]:
        """Keys set in the file that Pinball accepts but no longer uses."""
        return sorted(IGNORED_KEYS & self.model_fields_set)

    def plugin_options(self, name: str) -> dict[str, Any]:
        """The ``plugins:`` options of the plugin ``name``; empty if none."""
        return dict(self.plugins.get(name, {}))

    def resolve_path(self, path: str | pathlib.Path) -> pathlib.Path:
        """``path`` made absolute: a relative one is taken from the folder of
        the config file, as every path in the config is."""
        return _resolve(path, self._base_dir)

    def for_display(self) -> dict[str, Any]:
        """The effective values, secrets masked, ready for YAML or JSON.

        Ignored legacy keys are left out; :attr:`store_url` is added after
        ``store``. Masked: values of keys whose name contains secret,
        password, pass, key or token, and the password inside URLs.
        """
        dumped = self.model_dump(mode="json", by_alias=True, exclude=set(IGNORED_KEYS))
        values: dict[str, Any] = {}
        for key, value in dumped.items():
            values[key] = value
            if key == "store":
                values[key] = None if value is None else _mask_url(value)
                values["store_url"] = self.store_display_url
        return {key: _display_value(key, value) for key, value in values.items()}


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read, check and return the config.

    :param path:
        The YAML file. None means :func:`default_config_path`; when that file
        does not exist every key takes its default.

    :raises ConfigError:
        The file cannot be read, is not YAML, is not a mapping, or a key is
        unknown or has a bad value. The message names the file and the key.
    """
    data, label, file = _read(path)
    return _validate(data, label=label, file=file)


def load_config_without_bad_keys(
    path: str | os.PathLike[str] | None,
) -> tuple[Config, frozenset[str]] | None:
    """The config with every top-level key that fails its check left out.

    ``pinball config check`` uses it, after :func:`load_config` refused the
    file, to have the plugins still check their own keys (``ui_users``,
    ``parser_params``), so that one run reports every problem. Left-out keys
    take their defaults, which is why the result must not be used to run
    anything.

    :returns: the config and the keys left out; None if the file cannot be
        read as a mapping, or a problem names no key that could be left out.
    """
    try:
        data, label, file = _read(path)
    except ConfigError:
        return None
    left_out: set[str] = set()
    # Each round leaves out at least one key, so this ends.
    while True:
        try:
            return _validate(data, label=label, file=file), frozenset(left_out)
        except _BadKeys as exc:
            bad = exc.keys & set(data)
            if not bad:
                return None
            left_out |= bad
            data = {key: value for key, value in data.items() if key not in bad}


def _read(
    path: str | os.PathLike[str] | None,
) -> tuple[dict[Any, Any], str, pathlib.Path | None]:
    """The file's mapping, how errors name the file, and the file if any."""
    if path is None:
        file = default_config_path()
        if not file.exists():
            log.debug("no config file at %s; using the defaults", file)
            return {}, str(file), None
        label = str(file)
    else:
        file = pathlib.Path(path)
        label = os.fspath(path)

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{label}: cannot read the config file: {exc.strerror or exc}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: the config file is not UTF-8 text") from exc

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        raise ConfigError(f"{label}: {where}invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}") from exc

    if data is None:  # an empty file, or only comments
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: the config must be a mapping of keys to values, "
            f"got {_kind(data)}"
        )
    return data, label, file


def _validate(data: dict[Any, Any], *, label: str, file: pathlib.Path | None) -> Config:
    base_dir = file.absolute().parent if file is not None else pathlib.Path.cwd()
    try:
        for key in data:
            if not isinstance(key, str):
                raise _KeyProblem(str(key), f"keys must be names, got {key!r}")
        data = _expand_environment(data, "")
        if secret := os.environ.get(MASTER_SECRET_ENV):
            data["master_secret"] = secret
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except _KeyProblem as exc:
        raise _BadKeys(label, [(exc.key, exc.reason)]) from None
    except pydantic.ValidationError as exc:
        raise _BadKeys(label, _describe(exc, list(data))) from None

    config._source = file
    config._label = label
    if ignored := config.ignored_keys():
        log.warning(
            "%s: ignoring keys this Pinball no longer uses: %s",
            label,
            ", ".join(ignored),
        )
    return config


class _KeyProblem(ConfigError):
    """A bad value found outside pydantic; load_config adds the file name."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class _BadKeys(ConfigError):
    """Keys of the file that failed their checks, each with its reason.

    :param label: the config file, as errors name it.
    :param problems: the dotted key and the reason, for each bad key.
    """

    def __init__(self, label: str, problems: list[tuple[str, str]]) -> None:
        texts = [f"{label}: {key}: {reason}" for key, reason in problems]
        joined = "; ".join(f"{key}: {reason}" for key, reason in problems)
        super().__init__(f"{label}: {joined}", problems=texts)
        #: The top-level keys at fault, for load_config_without_bad_keys.
        self.keys = {re.split(r"[.\[]", key, maxsplit=1)[0] for key, _ in problems}


def _expand_environment(value: Any, key: str) -> Any:
    """Replace every ``${NAME}`` string value, at any depth, by ``$NAME``."""
    if isinstance(value, str):
        match = _ENV_REFERENCE.fullmatch(value)
        if match is None:
            return value
        variable = match.group(1)
        if variable not in os.environ:
            raise _KeyProblem(key, f"environment variable {variable} is not set")
        return os.environ[variable]
    if isinstance(value, dict):
        return {
            k: _expand_environment(v, f"{key}.{k}" if key else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_environment(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(
    error: pydantic.ValidationError, keys: list[Any]
) -> list[tuple[str, str]]:
    """The dotted key and the reason of each problem, in the order of ``keys``."""
    problems = []
    for detail in error.errors():
        if detail["type"] == "default_factory_not_called":
            continue  # a consequence of another error reported here
        loc = detail["loc"]
        position = keys.index(loc[0]) if loc and loc[0] in keys else len(keys)
        problems.append((position, _dotted(loc), _reason(detail, loc)))
    problems.sort(key=lambda problem: problem[0])
    return [(key, reason) for _, key, reason in problems]


def _reason(detail: Any, loc: tuple[int | str, ...]) -> str:
    kind = detail["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        suggestion = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if suggestion:
            return f"unknown key; did you mean {suggestion[0]!r}?"
        return "unknown key (see the config reference in the README)"
    if kind == "missing":
        return "is required"
    got = f", got {_short_repr(detail['input'])}"
    if kind == "value_error":
        message = str(detail["ctx"]["error"])
        return message if message.startswith("must ") else message + got
    expected = _expectation(loc)
    if expected is not None:
        return f"must be {expected}{got}"
    message = str(detail["msg"])
    message = message.replace("Input should be", "must be", 1)
    return message[:1].lower() + message[1:] + got


def _known_keys(parent: tuple[int | str, ...]) -> list[str]:
    if not parent:
        return [k for k in Config.model_fields if k not in IGNORED_KEYS]
    if len(parent) == 2 and parent[0] == "databases":
        return [f.alias or n for n, f in DatabaseEntry.model_fields.items()]
    return []


def _expectation(loc: tuple[int | str, ...]) -> str | None:
    field = None
    if len(loc) == 1:
        field = Config.model_fields.get(str(loc[0]))
    elif len(loc) == 3 and loc[0] == "databases":
        by_alias = {f.alias: f for f in DatabaseEntry.model_fields.values()}
        field = by_alias.get(str(loc[2]))
    if field is None:
        return None
    for item in field.metadata:
        if isinstance(item, _Expect):
            return item.text
    return None


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _base_dir(info: ValidationInfo) -> pathlib.Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return base if isinstance(base, pathlib.Path) else pathlib.Path.cwd()


def _resolve(path: str | pathlib.Path, base_dir: pathlib.Path) -> pathlib.Path:
    resolved = pathlib.Path(path).expanduser()
    return resolved if resolved.is_absolute() else base_dir / resolved


def _home_of(data: Mapping[str, Any]) -> pathlib.Path:
    home = data.get("home")
    return home if isinstance(home, pathlib.Path) else default_home()


def _mask_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL we can parse; hide anything between "://" and "@".
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1" + _MASK + "@", url)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _display_value(key: str, value: Any) -> Any:
    if _is_secret(key) and value not in (None, "", {}, []):
        return _MASK
    if isinstance(value, dict):
        return {str(k): _display_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_display_value("", v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
