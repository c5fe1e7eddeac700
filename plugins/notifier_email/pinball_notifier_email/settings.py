"""The email notifier's settings: the config's SMTP keys and its own options.

The SMTP server, the sender and the UI address are top-level config keys
shared with the rest of Pinball (``smtp_host``, ``default_email``,
``ui_host``...). What only this plugin uses sits under ``plugins: {email:
{...}}``; a wrong option stops start-up with an error naming it.
"""

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Final

import pydantic
from pinball_core.errors import ConfigError
from pydantic import BaseModel, ConfigDict, Field

#: The plugin's name under the config's ``plugins:`` mapping.
PLUGIN_NAME: Final = "email"

#: Every event that can send mail, and whether it does unless configured.
DEFAULT_EVENTS: Final[Mapping[str, bool]] = {
    # A job failed with no attempt left (10.1 of the original's rules).
    "job_failed": True,
    # A job failed and will be tried again; Airflow's email_on_retry.
    "job_retried": False,
    # A running job passed its warn_timeout_sec (10.3).
    "warn_timeout": True,
    # An instance ended (10.2), by status; success is news to few people.
    "instance_succeeded": False,
    "instance_failed": True,
    "instance_aborted": True,
    # A scheduled run was refused, e.g. at max_running_instances (10.4).
    "schedule_refused": True,
    # Anything else sent with the pinball_notify hook.
    "message": True,
}

PositiveSeconds = Annotated[float, Field(gt=0)]


class _Options(BaseModel):
    """The ``plugins: {email: ...}`` mapping as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    starttls: bool = False
    timeout_sec: PositiveSeconds = 30.0
    ca_file: str | None = None
    ui_url: str | None = None
    subject_prefix: str = "[Pinball] "
    events: dict[str, bool] = Field(default_factory=dict)
    log_lines: Annotated[int, Field(ge=0, le=1000)] = 20
    queue_size: Annotated[int, Field(gt=0)] = 1000
    retry_delay_sec: PositiveSeconds = 5.0
    max_retry_delay_sec: PositiveSeconds = 300.0
    give_up_after_sec: PositiveSeconds = 6 * 3600.0
    exit_flush_sec: Annotated[float, Field(ge=0)] = 10.0
    spool: bool = True
    spool_dir: str | None = None


# What each option must be, for error messages.
_EXPECTED: Final[Mapping[str, str]] = {
    "starttls": "true or false",
    "timeout_sec": "a positive number of seconds",
    "ca_file": "a file path",
    "ui_url": "a URL such as https://pinball.example.com",
    "subject_prefix": "a string",
    "events": "a mapping of event names to true or false",
    "log_lines": "a whole number from 0 to 1000",
    "queue_size": "a positive whole number",
    "retry_delay_sec": "a positive number of seconds",
    "max_retry_delay_sec": "a positive number of seconds",
    "give_up_after_sec": "a positive number of seconds",
    "exit_flush_sec": "a number of seconds, 0 or more",
    "spool": "true or false",
    "spool_dir": "a folder path",
}

#: The spool's folder under the Pinball home when ``spool_dir`` is not set.
DEFAULT_SPOOL_DIR: Final = "mail-spool"


@dataclasses.dataclass(frozen=True, slots=True)
class EmailSettings:
    """Everything the notifier needs to know, checked."""

    sender: str
    smtp_host: str
    smtp_port: int
    smtp_user: str
    smtp_pass: str
    smtp_ssl: bool
    starttls: bool
    timeout_sec: float
    ca_file: str | None
    ui_url: str
    subject_prefix: str
    events: Mapping[str, bool]
    log_lines: int
    queue_size: int
    retry_delay_sec: float
    max_retry_delay_sec: float
    give_up_after_sec: float
    exit_flush_sec: float
    #: Where job logs are; only files under it are quoted in mails.
    logs_dir: str = "logs"
    #: Where to read schedules and instances: the master's address.
    master_host: str = "localhost"
    master_port: int = 9090
    master_secret: str | None = None
    default_max_running_instances: int = 3
    #: Where composed mails wait on disk until sent, as an absolute path;
    #: None when the spool is off and mail waits in memory only.
    spool_dir: str | None = None

    def sends(self, event: str) -> bool:
        """Whether mail goes out for ``event``; unknown kinds always do."""
        return self.events.get(event, True)


def settings_from_config(config: Any) -> EmailSettings:
    """The notifier's settings from a :class:`~pinball_core.config.Config`.

    :raises ConfigError: naming the file and the option, if an option under
        ``plugins.email`` is unknown or has a bad value.
    """
    label = str(config.source) if config.source is not None else "config"
    raw = config.plugin_options(PLUGIN_NAME)
    try:
        options = _Options.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(f"{label}: {_describe(exc)}") from None

    unknown = sorted(set(options.events) - set(DEFAULT_EVENTS))
    if unknown:
        known = ", ".join(DEFAULT_EVENTS)
        raise ConfigError(
            f"{label}: plugins.{PLUGIN_NAME}.events.{unknown[0]}: unknown event"
            f"{_suggest(unknown[0], DEFAULT_EVENTS)} (the events are {known})"
        )
    if options.starttls and config.smtp_ssl:
        raise ConfigError(
            f"{label}: plugins.{PLUGIN_NAME}.starttls: cannot be true with "
            "smtp_ssl; smtp_ssl connects over TLS from the start (port 465), "
            "starttls upgrades a plain connection (port 587): choose one"
        )
    if options.ui_url is not None and not options.ui_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError(
            f"{label}: plugins.{PLUGIN_NAME}.ui_url: must start with http:// or "
            f"https://, got {options.ui_url!r}"
        )

    ui_url = (
        options.ui_url or f"http://{config.ui_host or 'localhost'}:{config.ui_port}"
    )
    return EmailSettings(
        sender=config.default_email,
        smtp_host=config.smtp_host,
        smtp_port=config.smtp_port,
        smtp_user=config.smtp_user,
        smtp_pass=config.smtp_pass,
        smtp_ssl=config.smtp_ssl,
        starttls=options.starttls,
        timeout_sec=options.timeout_sec,
        ca_file=options.ca_file,
        ui_url=ui_url.rstrip("/"),
        subject_prefix=options.subject_prefix,
        events={**DEFAULT_EVENTS, **options.events},
        log_lines=options.log_lines,
        queue_size=options.queue_size,
        retry_delay_sec=options.retry_delay_sec,
        max_retry_delay_sec=max(options.max_retry_delay_sec, options.retry_delay_sec),
        give_up_after_sec=options.give_up_after_sec,
        exit_flush_sec=options.exit_flush_sec,
        logs_dir=str(config.logs_dir),
        master_host=config.master_host,
        master_port=config.master_port,
        master_secret=config.master_secret,
        default_max_running_instances=config.default_max_workflow_running_instances,
        spool_dir=_spool_dir(config, options),
    )


def _spool_dir(config: Any, options: _Options) -> str | None:
    """The spool folder: ``spool_dir`` taken from the config file's folder
    when relative, as every path in the config is, else ``<home>/mail-spool``."""
    if not options.spool:
        return None
    if options.spool_dir is None:
        return str(config.home / DEFAULT_SPOOL_DIR)
    return str(config.resolve_path(options.spool_dir))


def _describe(error: pydantic.ValidationError) -> str:
    """The first bad option as ``plugins.email.KEY: reason``."""
    detail = error.errors()[0]
    loc = [str(part) for part in detail["loc"]]
    key = ".".join(["plugins", PLUGIN_NAME, *loc])
    if detail["type"] == "extra_forbidden":
        return (
            f"{key}: unknown option{_suggest(loc[-1], _Options.model_fields)} "
            f"(the options are {', '.join(_Options.model_fields)})"
        )
    expected = _EXPECTED.get(loc[0], "something else")
    if loc[0] == "events" and len(loc) > 1:
        expected = "true or false"
    got = repr(detail["input"])
    if len(got) > 60:
        got = got[:57] + "..."
    return f"{key}: must be {expected}, got {got}"


def _suggest(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
