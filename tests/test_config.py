"""The config file: defaults, the original's keys, errors that name the key."""

import logging
import pathlib
import textwrap

import pytest
from sqlalchemy.engine import make_url

from pinball_core import hookimpl
from pinball_core.components import Parser
from pinball_core.config import Config, load_config
from pinball_core.errors import ConfigError, PluginLoadError
from pinball_core.plugins import PluginManager

# The sample config of the original Pinball's README, as its users have it.
ORIGINAL_SAMPLE = """\
databases:
  default:
    ENGINE: django.db.backends.mysql
    NAME: pinball
    USER: flipper
    PASSWORD: flipper123
    HOST: 127.0.0.1
    PORT: "3306"
  pinball.persistence:
    ENGINE: django.db.backends.mysql
    NAME: pinball
    USER: flipper
    PASSWORD: flipper123
    HOST: 127.0.0.1
    PORT: "3306"

ui_host: pinball
ui_port: 8080

parser: pinball_ext.workflows.parser.PyWorkflowParser
parser_params:
  workflows_config: pinball_ext.examples.workflows.WORKFLOWS
  job_repo_dir: "~"
  job_import_dirs_config: pinball_ext.examples.jobs.JOB_IMPORT_DIRS

default_email: pinball-admin@example.com
"""


@pytest.fixture(autouse=True)
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A private Pinball home, and no Pinball variables from the caller."""
    home = tmp_path / "home"
    monkeypatch.setenv("PINBALL_HOME", str(home))
    monkeypatch.delenv("PINBALL_MASTER_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


def write(tmp_path: pathlib.Path, text: str, name: str = "pinball.yaml") -> str:
    (tmp_path / name).write_text(textwrap.dedent(text))
    return name


def error_of(path: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


# -- Defaults


def test_no_config_file_gives_a_working_embedded_setup(home: pathlib.Path) -> None:
    config = load_config(None)

    assert config.source is None
    assert config.home == home
    assert config.logs_dir == home / "logs"
    assert config.store_url == f"sqlite:///{home}/pinball.db"
    assert config.master_host == "localhost"
    assert config.master_port == 9090
    assert config.workers == 5
    assert config.default_email == "pinball@localhost"
    assert config.parser == "python"
    assert config.parser_params == {}
    assert config.disabled_plugins == []
    assert config.master_secret is None
    # Nothing is created until a store is opened.
    assert not home.exists()


def test_the_default_file_is_read_from_the_home_folder(home: pathlib.Path) -> None:
    home.mkdir()
    (home / "pinball.yaml").write_text("workers: 7\n")

    config = load_config(None)

    assert config.workers == 7
    assert config.source == home / "pinball.yaml"


def test_an_empty_file_means_all_defaults(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "# nothing set yet\n")

    assert load_config(path).workers == 5


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: pathlib.Path) -> None:
    message = error_of("missing.yaml")

    assert message.startswith("missing.yaml: cannot read the config file")


# -- The original's config


def test_the_original_sample_config_loads(tmp_path: pathlib.Path) -> None:
    config = load_config(write(tmp_path, ORIGINAL_SAMPLE))

    assert (
        config.store_url == "mysql+pymysql://flipper:flipper123@127.0.0.1:3306/pinball"
    )
    assert config.parser == "pinball_ext.workflows.parser.PyWorkflowParser"
    assert config.parser_params["job_repo_dir"] == "~"
    assert config.ui_host == "pinball"
    assert config.ui_port == 8080
    assert config.default_email == "pinball-admin@example.com"


def test_mysql_user_and_password_are_quoted_in_the_url(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        databases:
          default:
            ENGINE: django.db.backends.mysql
            NAME: pinball
            USER: "flip@per"
            PASSWORD: "p@ss:w/rd%"
            HOST: db.example.com
            PORT: 3307
            OPTIONS: {charset: utf8mb4}
        """,
    )

    url = make_url(load_config(path).store_url)

    assert url.drivername == "mysql+pymysql"
    assert (url.username, url.password) == ("flip@per", "p@ss:w/rd%")
    assert (url.host, url.port, url.database) == ("db.example.com", 3307, "pinball")
    assert url.query == {"charset": "utf8mb4"}


def test_the_persistence_entry_wins_over_default(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        databases:
          default: {ENGINE: django.db.backends.mysql, NAME: web, HOST: h}
          pinball.persistence: {ENGINE: django.db.backends.mysql, NAME: tokens, HOST: h}
        """,
    )

    assert make_url(load_config(path).store_url).database == "tokens"


def test_a_sqlite_database_resolves_against_the_config_folder(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "etc").mkdir()
    path = write(
        tmp_path,
        """\
        databases:
          default:
            ENGINE: django.db.backends.sqlite3
            NAME: data/pinball.db
        """,
        name="etc/pinball.yaml",
    )

    assert load_config(path).store_url == f"sqlite:///{tmp_path}/etc/data/pinball.db"


def test_an_unsupported_engine_names_the_key(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        databases:
          default: {ENGINE: django.db.backends.postgresql, NAME: pinball}
        """,
    )

    message = error_of(path)

    assert message.startswith("pinball.yaml: databases.default.ENGINE: ")
    assert "'django.db.backends.postgresql'" in message
    assert "django.db.backends.mysql" in message
    assert "django.db.backends.sqlite3" in message


def test_store_wins_over_databases(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "store: sqlite:///state/p.db\n" + ORIGINAL_SAMPLE)

    assert load_config(path).store_url == f"sqlite:///{tmp_path}/state/p.db"


def test_a_store_that_is_no_url_is_refused(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "store: /var/lib/pinball.db\n"))

    assert message.startswith("pinball.yaml: store: must be a database URL")


def test_ignored_original_keys_are_accepted_and_logged(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        """\
        allowed_hosts: ['*']
        worker_creation_sleep_interval_sec: 600
        github_oauth_token: abc
        workers: 2
        """,
    )

    with caplog.at_level(logging.WARNING, logger="pinball_core.config"):
        config = load_config(path)

    assert config.workers == 2
    [record] = caplog.records
    assert "allowed_hosts" in record.getMessage()
    assert "github_oauth_token" in record.getMessage()
    assert "worker_creation_sleep_interval_sec" in record.getMessage()
    assert "allowed_hosts" not in config.for_display()


def test_the_original_log_root_sets_the_logs_folder(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "local_logs_dir_prefix: /var/log/\n")

    assert load_config(path).logs_dir == pathlib.Path("/var/log/pinball_job_logs")


# -- New keys


def test_relative_folders_resolve_against_the_config_folder(
    tmp_path: pathlib.Path,
) -> None:
    path = write(tmp_path, "home: state\n")

    config = load_config(path)

    assert config.home == tmp_path / "state"
    assert config.logs_dir == tmp_path / "state" / "logs"
    assert config.store_url == f"sqlite:///{tmp_path}/state/pinball.db"


def test_plugin_keys(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        disabled_plugins: [notifier.email, yaml]
        plugins:
          sqlite: {pool_size: 3}
          email:
        """,
    )

    config = load_config(path)

    assert config.disabled_plugins == ["notifier.email", "yaml"]
    assert config.plugin_options("sqlite") == {"pool_size": 3}
    assert config.plugin_options("email") == {}
    assert config.plugin_options("absent") == {}


# -- Errors


def test_a_bad_value_names_file_key_and_reason(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "workers: five\n"))

    assert message == "pinball.yaml: workers: must be a positive integer, got 'five'"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("workers: true", "workers: must be a positive integer, got True"),
        ("master_port: false", "master_port: must be a port number"),
        ("worker_lease_sec: true", "worker_lease_sec: must be a positive number"),
    ],
)
def test_a_flag_where_a_number_belongs_is_refused(
    tmp_path: pathlib.Path, line: str, expected: str
) -> None:
    # YAML's true would otherwise pass as the number 1.
    message = error_of(write(tmp_path, line + "\n"))

    assert message.startswith(f"pinball.yaml: {expected}")


def test_a_misspelt_key_is_refused_with_a_suggestion(tmp_path: pathlib.Path) -> None:
    # The original's shipped config had this typo, which it silently ignored.
    message = error_of(write(tmp_path, "max_backoff_client_reconnet_sec: 60\n"))

    assert message == (
        "pinball.yaml: max_backoff_client_reconnet_sec: unknown key; "
        "did you mean 'max_backoff_client_reconnect_sec'?"
    )


def test_a_nested_misspelt_key_is_refused(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        databases:
          default: {ENGINE: django.db.backends.mysql, PASWORD: x}
        """,
    )

    message = error_of(path)

    assert "databases.default.PASWORD: unknown key; did you mean 'PASSWORD'?" in message


def test_an_unknown_key_without_a_close_match(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "zzz: 1\n"))

    assert message.startswith("pinball.yaml: zzz: unknown key")
    assert "did you mean" not in message


def test_every_problem_is_reported_on_one_line(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "master_port: 70000\ndebug: maybe\n"))

    assert "\n" not in message
    assert "master_port: must be a port number from 0 to 65535, got 70000" in message
    assert "debug: must be true or false, got 'maybe'" in message


def test_a_yaml_syntax_error_names_file_and_line(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "workers: 5\nui_port: 80\n  ui_host: x\n"))

    assert message.startswith("pinball.yaml: line 3, column ")
    assert "invalid YAML" in message


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: pathlib.Path) -> None:
    message = error_of(write(tmp_path, "- workers\n- 5\n"))

    assert message == (
        "pinball.yaml: the config must be a mapping of keys to values, got a list"
    )


# -- Secrets


def test_whole_values_come_from_the_environment(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SECRET", "s3cret")
    monkeypatch.setenv("TEST_DB_PASSWORD", "pw")
    monkeypatch.setenv("TEST_PORT", "9191")
    path = write(
        tmp_path,
        """\
        master_secret: ${TEST_SECRET}
        master_port: ${TEST_PORT}
        smtp_user: prefix-${TEST_SECRET}
        databases:
          default:
            ENGINE: django.db.backends.mysql
            USER: u
            PASSWORD: ${TEST_DB_PASSWORD}
        """,
    )

    config = load_config(path)

    assert config.master_secret == "s3cret"
    assert config.master_port == 9191
    assert config.smtp_user == "prefix-${TEST_SECRET}"  # only whole values
    assert make_url(config.store_url).password == "pw"


def test_a_missing_variable_names_key_and_variable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_NOT_SET", raising=False)
    path = write(
        tmp_path,
        """\
        databases:
          default: {ENGINE: django.db.backends.mysql, PASSWORD: "${TEST_NOT_SET}"}
        """,
    )

    message = error_of(path)

    assert message == (
        "pinball.yaml: databases.default.PASSWORD: "
        "environment variable TEST_NOT_SET is not set"
    )


def test_the_master_secret_variable_overrides_the_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINBALL_MASTER_SECRET", "from-env")

    assert load_config(write(tmp_path, "master_secret: x\n")).master_secret == (
        "from-env"
    )
    assert load_config(None).master_secret == "from-env"


def test_display_masks_secrets(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """\
        master_secret: s3cret
        smtp_pass: mailpw
        store: mysql+pymysql://u:dbpw@db/pinball
        databases:
          default: {ENGINE: django.db.backends.mysql, PASSWORD: djangopw}
        plugins:
          slack: {api_token: tok, channel: "#ops"}
        """,
    )

    shown = load_config(path).for_display()

    text = repr(shown)
    for secret in ("s3cret", "mailpw", "dbpw", "djangopw", "tok'"):
        assert secret not in text
    assert shown["master_secret"] == "***"
    assert shown["smtp_pass"] == "***"
    assert shown["store"] == "mysql+pymysql://u:***@db/pinball"
    assert shown["store_url"] == "mysql+pymysql://u:***@db/pinball"
    assert shown["databases"]["default"]["PASSWORD"] == "***"
    assert shown["plugins"]["slack"] == {"api_token": "***", "channel": "#ops"}
    assert shown["client_timeout_sec"] == 180
    assert shown["smtp_user"] == ""


def test_a_config_can_be_built_in_code(home: pathlib.Path) -> None:
    config = Config(workers=3)

    assert config.workers == 3
    assert config.store_url == f"sqlite:///{home}/pinball.db"


def test_a_copy_with_other_values_derives_again(tmp_path: pathlib.Path) -> None:
    config = load_config(write(tmp_path, "workers: 2\n"))

    copy = config.model_copy(update={"home": tmp_path / "elsewhere"})

    assert copy.store_url == f"sqlite:///{tmp_path}/elsewhere/pinball.db"
    assert copy.workers == 2


# -- Errors the plugins find in the config


def test_errors_name_the_file_as_it_was_given(home: pathlib.Path) -> None:
    pathlib.Path("pinball.yaml").write_text("workers: 2\n")

    assert load_config("pinball.yaml").label == "pinball.yaml"


def test_without_a_file_errors_name_the_default_path(home: pathlib.Path) -> None:
    assert load_config(None).label == str(home / "pinball.yaml")
    assert Config(workers=3).label == str(home / "pinball.yaml")


class StrictParser:
    """A parser plugin that refuses its parser_params, naming the key only."""

    @hookimpl
    def pinball_make_parser(self, params: object) -> Parser:
        raise ConfigError("parser_params.path: is required")


class StrictUsers:
    @hookimpl
    def pinball_configure(self, config: object) -> None:
        raise ConfigError("ui_users.bob.role: must be one of viewer, operator, admin")


@pytest.fixture
def configured(home: pathlib.Path) -> PluginManager:
    """A plugin manager configured from ``pinball.yaml`` in the current folder."""
    pathlib.Path("pinball.yaml").write_text("workers: 2\n")
    plugins = PluginManager()
    plugins.register(StrictParser(), "parser.strict")
    plugins.configure(load_config("pinball.yaml"))
    return plugins


def test_a_key_a_plugin_refuses_is_named_with_the_file(home: pathlib.Path) -> None:
    pathlib.Path("pinball.yaml").write_text("workers: 2\n")
    plugins = PluginManager()
    plugins.register(StrictUsers(), "plugin.users")

    with pytest.raises(ConfigError) as refused:
        plugins.configure(load_config("pinball.yaml"))

    assert str(refused.value) == (
        "pinball.yaml: ui_users.bob.role: must be one of viewer, operator, admin"
    )


def test_parser_params_a_parser_refuses_are_named_with_the_file(
    configured: PluginManager,
) -> None:
    with pytest.raises(ConfigError) as refused:
        configured.make_parser("strict", {})

    assert str(refused.value) == "pinball.yaml: parser_params.path: is required"


@pytest.mark.parametrize("kind", ["parser", "executor"])
def test_a_component_that_cannot_load_is_named_with_file_and_key(
    configured: PluginManager, kind: str
) -> None:
    with pytest.raises(PluginLoadError) as refused:
        configured.load_component(kind, "nonesuch")

    assert str(refused.value).startswith(
        f"pinball.yaml: {kind}: cannot load {kind} plugin 'nonesuch'"
    )


def test_before_configure_the_file_is_not_known(home: pathlib.Path) -> None:
    plugins = PluginManager()
    plugins.register(StrictParser(), "parser.strict")

    with pytest.raises(ConfigError) as refused:
        plugins.make_parser("strict", {})

    assert str(refused.value) == "parser_params.path: is required"
