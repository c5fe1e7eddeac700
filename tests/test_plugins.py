"""The plugin manager: hook calls, component selection, blocking, discovery.

In-process tests register tiny plugin classes. The discovery tests run child
processes with the test-only distribution ``tests/fixtures/pinball_test_plugins``
really installed (see the ``test_plugins_path`` fixture), so entry points are
found, imported and reported exactly as for an installed third-party package.
"""

import argparse
import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from pinball_core import hookimpl
from pinball_core.commands.plugins import format_table
from pinball_core.components import Notification
from pinball_core.errors import ConfigError, PluginLoadError, StoreError
from pinball_core.plugins import (
    DISABLE_ENV,
    PluginInfo,
    PluginManager,
    mask_url,
    store_scheme,
)
from pinball_core.store import Store

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> PluginManager:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    return PluginManager()


class FakeStore(Store):
    """A store that is never used, only handed back."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.display_url = url
        self.options = options

    def initialize(self) -> None: ...
    def load_active_tokens(self) -> Any: ...
    def load_applied_requests(self, since: float) -> Any: ...
    def commit(self, change: Any) -> None: ...
    def read_tokens(self, prefix: str = "", **kwargs: Any) -> Any: ...
    def count_tokens(self, prefix: str = "", **kwargs: Any) -> Any: ...
    def group_token_names(self, prefix: str = "", *args: Any, **kw: Any) -> Any: ...
    def delete_archived_tokens(self, prefix: str) -> Any: ...
    def close(self) -> None: ...


class StorePlugin:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def pinball_make_store(self, url: str, options: Mapping[str, Any]) -> Store:
        self.calls.append(url)
        return FakeStore(url, options)


class Notifier:
    def __init__(self) -> None:
        self.received: list[Notification] = []

    @hookimpl
    def pinball_notify(self, notification: Notification) -> None:
        self.received.append(notification)


def assert_one_line(error: BaseException, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message
    for part in parts:
        assert part in message


# -- Hook calls ----------------------------------------------------------------


def test_notify_reaches_every_notifier(pm: PluginManager) -> None:
    first, second = Notifier(), Notifier()
    pm.register(first, "notifier.first")
    pm.register(second, "notifier.second")
    notification = Notification(("ops@example.com",), "job failed", "it broke")

    pm.hook.pinball_notify(notification=notification)

    assert first.received == [notification]
    assert second.received == [notification]


def test_each_manager_has_its_own_plugins(pm: PluginManager) -> None:
    notifier = Notifier()
    pm.register(notifier, "notifier.first")

    PluginManager().hook.pinball_notify(notification=Notification((), "s", "t"))

    assert notifier.received == []


def test_configure_reaches_plugins_registered_later(pm: PluginManager) -> None:
    class Configurable:
        def __init__(self) -> None:
            self.configs: list[Any] = []

        @hookimpl
        def pinball_configure(self, config: Any) -> None:
            self.configs.append(config)

    early, late = Configurable(), Configurable()
    pm.register(early, "early")

    pm.configure({"answer": 42})
    pm.register(late, "late")

    assert early.configs == [{"answer": 42}]
    assert late.configs == [{"answer": 42}]


def test_add_commands_follows_the_handler_convention(pm: PluginManager) -> None:
    class Commands:
        @hookimpl
        def pinball_add_commands(
            self, subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]"
        ) -> None:
            parser = subparsers.add_parser("greet")
            parser.add_argument("who")
            parser.set_defaults(handler=lambda args, app: len(args.who))

    pm.register(Commands(), "commands")
    parser = argparse.ArgumentParser(prog="pinball")
    subparsers = parser.add_subparsers()

    pm.hook.pinball_add_commands(subparsers=subparsers)
    args = parser.parse_args(["greet", "abc"])

    assert args.handler(args, None) == 3


class Listener:
    """Records every lifecycle event with the arguments it was given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def pinball_job_started(
        self, workflow: str, instance: str, job: str, execution: int
    ) -> None:
        self.seen.append(("pinball_job_started", _arguments(locals())))

    @hookimpl
    def pinball_job_succeeded(
        self, workflow: str, instance: str, job: str, execution: int, duration: float
    ) -> None:
        self.seen.append(("pinball_job_succeeded", _arguments(locals())))

    @hookimpl
    def pinball_job_failed(
        self,
        workflow: str,
        instance: str,
        job: str,
        execution: int,
        exit_code: int | None,
        reason: str,
        will_retry: bool,
    ) -> None:
        self.seen.append(("pinball_job_failed", _arguments(locals())))

    @hookimpl
    def pinball_job_timed_out(
        self, workflow: str, instance: str, job: str, execution: int, timeout: float
    ) -> None:
        self.seen.append(("pinball_job_timed_out", _arguments(locals())))

    @hookimpl
    def pinball_instance_finished(
        self, workflow: str, instance: str, status: str
    ) -> None:
        self.seen.append(("pinball_instance_finished", _arguments(locals())))

    @hookimpl
    def pinball_schedule_fired(
        self, workflow: str, instance: str, scheduled_time: float
    ) -> None:
        self.seen.append(("pinball_schedule_fired", _arguments(locals())))

    @hookimpl
    def pinball_schedule_skipped(
        self, workflow: str, scheduled_time: float, reason: str
    ) -> None:
        self.seen.append(("pinball_schedule_skipped", _arguments(locals())))

    @hookimpl
    def pinball_schedule_refused(
        self, workflow: str, scheduled_time: float, reason: str
    ) -> None:
        self.seen.append(("pinball_schedule_refused", _arguments(locals())))


def _arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in frame_locals.items() if k != "self"}


def test_lifecycle_events_are_broadcast_with_keywords(pm: PluginManager) -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("pinball_job_started", dict(workflow="w", instance="i", job="j", execution=0)),
        (
            "pinball_job_succeeded",
            dict(workflow="w", instance="i", job="j", execution=0, duration=1.5),
        ),
        (
            "pinball_job_failed",
            dict(
                workflow="w",
                instance="i",
                job="j",
                execution=1,
                exit_code=2,
                reason="exit code 2",
                will_retry=False,
            ),
        ),
        (
            "pinball_job_timed_out",
            dict(workflow="w", instance="i", job="j", execution=2, timeout=60.0),
        ),
        (
            "pinball_instance_finished",
            dict(workflow="w", instance="i", status="failed"),
        ),
        (
            "pinball_schedule_fired",
            dict(workflow="w", instance="i", scheduled_time=1.0),
        ),
        (
            "pinball_schedule_skipped",
            dict(workflow="w", scheduled_time=1.0, reason="1 instance running"),
        ),
        (
            "pinball_schedule_refused",
            dict(workflow="w", scheduled_time=1.0, reason="no such workflow"),
        ),
    ]
    first, second = Listener(), Listener()
    pm.register(first, "first")
    pm.register(second, "second")

    results = [getattr(pm.hook, name)(**kwargs) for name, kwargs in events]

    assert results == [[]] * len(events)
    assert first.seen == events
    assert second.seen == events


# -- Components ----------------------------------------------------------------


def test_make_store_calls_only_the_plugin_the_scheme_names(pm: PluginManager) -> None:
    memory, other = StorePlugin(), StorePlugin()
    pm.register(memory, "store.memory")
    pm.register(other, "store.other")

    store = pm.make_store("memory+driver://host/db", {"pool": 2})

    assert isinstance(store, FakeStore)
    assert store.options == {"pool": 2}
    assert memory.calls == ["memory+driver://host/db"]
    assert other.calls == []


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("sqlite:///x.db", "sqlite"),
        ("sqlite:////abs/x.db", "sqlite"),
        ("mysql+pymysql://u:p@h/db", "mysql"),
        ("MySQL://h/db", "mysql"),
    ],
)
def test_store_scheme(url: str, scheme: str) -> None:
    assert store_scheme(url) == scheme


@pytest.mark.parametrize("url", ["x.db", "://x", ""])
def test_store_url_without_scheme_is_a_config_error(
    pm: PluginManager, url: str
) -> None:
    with pytest.raises(ConfigError, match="has no scheme"):
        pm.make_store(url)


def test_mask_url_hides_the_password() -> None:
    assert mask_url("mysql+pymysql://me:s3cr:et@db/p") == "mysql+pymysql://me:***@db/p"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


def test_make_store_refuses_a_plugin_that_returns_none(pm: PluginManager) -> None:
    class Declines:
        @hookimpl
        def pinball_make_store(self, url: str) -> None:
            return None

    pm.register(Declines(), "store.mysql")

    with pytest.raises(PluginLoadError) as raised:
        pm.make_store("mysql://me:secret@db/p")

    assert_one_line(raised.value, "store plugin 'mysql'", "'pinball.stores'", "None")
    assert "secret" not in str(raised.value)


def test_make_store_refuses_what_is_not_a_store(pm: PluginManager) -> None:
    class Wrong:
        @hookimpl
        def pinball_make_store(self) -> object:
            return "a string"

    pm.register(Wrong(), "store.wrong")

    with pytest.raises(PluginLoadError, match="returned str .* not a Store"):
        pm.make_store("wrong://x")


def test_make_store_wraps_a_missing_driver(pm: PluginManager) -> None:
    class NeedsDriver:
        @hookimpl
        def pinball_make_store(self) -> Store:
            raise ModuleNotFoundError("No module named 'pymysql'")

    pm.register(NeedsDriver(), "store.mysql")

    with pytest.raises(PluginLoadError) as raised:
        pm.make_store("mysql+pymysql://db/p")

    assert_one_line(raised.value, "'mysql'", "'pinball.stores'", "pymysql")
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_make_store_lets_store_errors_through(pm: PluginManager) -> None:
    class Unreachable:
        @hookimpl
        def pinball_make_store(self) -> Store:
            raise StoreError("cannot reach db")

    pm.register(Unreachable(), "store.mysql")

    with pytest.raises(StoreError, match="cannot reach db"):
        pm.make_store("mysql://db/p")


def test_make_store_needs_the_store_hook(pm: PluginManager) -> None:
    pm.register(Notifier(), "store.notes")

    with pytest.raises(PluginLoadError, match="does not implement pinball_make_store"):
        pm.make_store("notes://x")


def test_missing_component_lists_what_is_installed(pm: PluginManager) -> None:
    with pytest.raises(PluginLoadError) as raised:
        pm.load_component("parser", "nonesuch")

    assert_one_line(
        raised.value,
        "cannot load parser plugin 'nonesuch' from entry-point group "
        "'pinball.parsers': no such plugin is installed (installed: ",
        "pip install",
    )


def test_missing_dotted_path_component_says_both(pm: PluginManager) -> None:
    with pytest.raises(PluginLoadError) as raised:
        pm.load_component("executor", "no_such_package.executors:Remote")

    assert_one_line(
        raised.value,
        "'pinball.executors'",
        "no such plugin is installed",
        "No module named 'no_such_package'",
    )
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)


def test_load_component_refuses_unknown_kinds(pm: PluginManager) -> None:
    with pytest.raises(ValueError, match="unknown component kind 'plugin'"):
        pm.load_component("plugin", "hello")


def test_load_component_prefers_a_plugin_registered_in_process(
    pm: PluginManager,
) -> None:
    # Registering under an installed name replaces the installed plugin.
    replacement = StorePlugin()
    pm.register(replacement, "store.sqlite")

    assert pm.load_component("store", "sqlite") is replacement


# -- Blocking ------------------------------------------------------------------


def test_blocked_by_config_is_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    pm = PluginManager(blocked=["store.memory"])

    pm.register(StorePlugin(), "store.memory")
    with pytest.raises(PluginLoadError) as raised:
        pm.make_store("memory://x")

    assert_one_line(
        raised.value,
        "cannot load store plugin 'memory' from entry-point group 'pinball.stores'",
        "blocked by the config key 'disabled_plugins'",
    )


def test_bare_name_blocks_every_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    pm = PluginManager(blocked=["email"])
    notifier = Notifier()

    pm.register(notifier, "notifier.email")
    pm.hook.pinball_notify(notification=Notification((), "s", "t"))

    assert notifier.received == []
    for kind in ("store", "parser", "executor", "overrun_policy", "notifier"):
        with pytest.raises(PluginLoadError, match="blocked"):
            pm.load_component(kind, "email")


def test_qualified_name_blocks_one_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    pm = PluginManager(blocked=["notifier.memory"])
    plugin = StorePlugin()

    pm.register(plugin, "store.memory")

    assert pm.load_component("store", "memory") is plugin


def test_env_var_blocks_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, " store.memory ,, parser.yaml")
    pm = PluginManager()

    with pytest.raises(PluginLoadError) as raised:
        pm.load_component("store", "memory")

    assert_one_line(raised.value, f"blocked by the environment variable {DISABLE_ENV}")


# -- In-process registration -----------------------------------------------------


def test_register_refuses_unknown_hooks(pm: PluginManager) -> None:
    class Typo:
        @hookimpl
        def pinball_notfy(self, notification: Notification) -> None: ...

    with pytest.raises(PluginLoadError) as raised:
        pm.register(Typo(), "notifier.typo")

    assert_one_line(raised.value, "'notifier.typo'", "unknown hook(s) pinball_notfy")
    # Nothing was left behind: the name can be used again.
    pm.register(Notifier(), "notifier.typo")


def test_register_refuses_arguments_the_spec_lacks(pm: PluginManager) -> None:
    class Extra:
        @hookimpl
        def pinball_notify(self, notification: Notification, urgent: bool) -> None:
            pass

    with pytest.raises(PluginLoadError) as raised:
        pm.register(Extra(), "notifier.extra")

    assert_one_line(raised.value, "'notifier.extra'", "urgent")


# -- Listing ---------------------------------------------------------------------


def test_list_plugins_includes_in_process_plugins(pm: PluginManager) -> None:
    pm.register(Notifier(), "notifier.inproc")
    pm.register(Notifier(), "custom")

    infos = {(info.kind, info.name): info for info in pm.list_plugins()}

    inproc = infos["notifier", "inproc"]
    assert inproc.status == "loaded"
    assert inproc.group is None
    assert inproc.target == f"{__name__}:Notifier"
    assert infos["plugin", "custom"].status == "loaded"
    # The built-in store is an entry point like any other.
    assert infos["store", "sqlite"].group == "pinball.stores"
    assert infos["store", "sqlite"].distribution == "pinball-core"


def test_format_table_aligns_columns() -> None:
    infos = [
        PluginInfo(
            "sqlite", "store", "pinball.stores", "pinball-core", "0.1.0", "loaded"
        ),
        PluginInfo("x", "plugin", None, None, None, "loaded"),
    ]

    lines = format_table(infos).splitlines()

    assert lines[0].split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS"]
    assert lines[1].split() == ["sqlite", "store", "pinball-core", "0.1.0", "loaded"]
    assert lines[2].split() == ["x", "plugin", "-", "-", "loaded"]
    assert lines[1].index("store") == lines[2].index("plugin")


# -- Discovery of a really installed distribution ----------------------------------

_PRELUDE = """\
import dataclasses, json, logging, sys
logging.basicConfig(
    stream=sys.stderr,
    level=logging.WARNING,
    format="%(levelname)s:%(name)s:%(message)s",
)
from pinball_core.components import Notification
from pinball_core.plugins import PluginManager

def dump(infos):
    print(json.dumps([dataclasses.asdict(info) for info in infos]))
"""


@dataclasses.dataclass
class Child:
    """A Python process that sees the test-only plugins as installed."""

    plugins_path: pathlib.Path
    tmp_path: pathlib.Path

    @property
    def notify_file(self) -> pathlib.Path:
        return self.tmp_path / "notifications.jsonl"

    def run(
        self, code: str, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` after the prelude, with ``args`` as ``sys.argv[1:]``."""
        return self.run_argv(["-c", _PRELUDE + textwrap.dedent(code), *args], env)

    def run_argv(
        self, argv: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {
            key: value
            for key, value in os.environ.items()
            if key not in (DISABLE_ENV, "PYTHONPATH")
        }
        environ.update(
            PYTHONPATH=os.pathsep.join([str(self.plugins_path), str(REPO)]),
            # stevedore caches entry points on disk; keep that out of $HOME.
            XDG_CACHE_HOME=str(self.tmp_path / "cache"),
            PINBALL_HOME=str(self.tmp_path / "home"),
            PINBALL_TEST_NOTIFY_FILE=str(self.notify_file),
        )
        environ.update(env or {})
        result = subprocess.run(
            [sys.executable, *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result

    def notifications(self) -> list[dict[str, Any]]:
        if not self.notify_file.exists():
            return []
        lines = self.notify_file.read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def child(test_plugins_path: pathlib.Path, tmp_path: pathlib.Path) -> Child:
    return Child(test_plugins_path, tmp_path)


def by_key(infos: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(info["kind"], info["name"]): info for info in infos}


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("WARNING:")]


def test_discovery_reports_every_installed_plugin(child: Child) -> None:
    result = child.run(
        """
        pm = PluginManager()
        pm.load_optional()
        pm.load_optional()
        dump(pm.list_plugins())
        """
    )

    infos = by_key(json.loads(result.stdout))
    for key in [("notifier", "good"), ("store", "memory"), ("plugin", "hello")]:
        assert infos[key]["distribution"] == "pinball-test-plugins"
        assert infos[key]["version"] == "1.2.3"
        assert infos[key]["status"] == "loaded"
    assert infos["notifier", "good"]["group"] == "pinball.notifiers"
    assert infos["plugin", "hello"]["target"] == "pinball_test_plugins.commands"
    assert infos["store", "broken"]["status"] == (
        "error: RuntimeError: pinball_test_plugins.broken fails on import"
    )
    assert infos["notifier", "ghost"]["status"] == (
        "error: No module named 'pinball_test_plugins_missing'"
    )
    assert infos["notifier", "ghost"]["distribution"] == "pinball-test-plugins"
    # Built-ins come through the same path; whether they load is not at stake.
    assert infos["store", "sqlite"]["distribution"] == "pinball-core"


def test_broken_optional_plugin_is_warned_about_once(child: Child) -> None:
    result = child.run(
        """
        pm = PluginManager()
        pm.load_optional()
        pm.load_optional()
        pm.list_plugins()
        """
    )

    assert warnings_in(result.stderr) == [
        "WARNING:pinball_core.plugins:skipping notifier plugin 'ghost' from "
        "entry-point group 'pinball.notifiers': "
        "No module named 'pinball_test_plugins_missing'"
    ]


def test_discovered_notifier_is_configured_and_notified(child: Child) -> None:
    child.run(
        """
        pm = PluginManager()
        pm.load_optional()
        pm.configure({"from": "test"})
        pm.hook.pinball_notify(notification=Notification(("a@b.c",), "hi", "text"))
        """
    )

    assert child.notifications() == [
        {
            "recipients": ["a@b.c"],
            "subject": "hi",
            "text": "text",
            "html": None,
            "kind": "message",
            "config": {"from": "test"},
        }
    ]


def test_listing_does_not_activate_plugins(child: Child) -> None:
    child.run(
        """
        pm = PluginManager()
        pm.list_plugins()
        pm.hook.pinball_notify(notification=Notification(("a@b.c",), "hi", "text"))
        """
    )

    assert child.notifications() == []


def test_discovered_module_plugin_adds_a_command(child: Child) -> None:
    result = child.run(
        """
        import argparse
        pm = PluginManager()
        pm.load_optional()
        parser = argparse.ArgumentParser(prog="pinball")
        pm.hook.pinball_add_commands(subparsers=parser.add_subparsers())
        args = parser.parse_args(sys.argv[1:])
        sys.exit(args.handler(args, None))
        """,
        "hello",
        "pinball",
    )

    assert result.stdout == "hello, pinball\n"


def test_broken_component_fails_with_one_line(child: Child) -> None:
    result = child.run(
        """
        from pinball_core.errors import PluginLoadError
        try:
            PluginManager().load_component("store", "broken")
        except PluginLoadError as error:
            print(json.dumps([str(error), type(error.__cause__).__name__]))
        """
    )

    message, cause = json.loads(result.stdout)
    assert message == (
        "cannot load store plugin 'broken' from entry-point group 'pinball.stores': "
        "RuntimeError: pinball_test_plugins.broken fails on import"
    )
    assert cause == "RuntimeError"
    assert warnings_in(result.stderr) == []


def test_discovered_store_is_made_by_scheme(child: Child) -> None:
    result = child.run(
        """
        pm = PluginManager()
        store = pm.make_store("memory://here", {"size": 3})
        dotted = pm.load_component(
            "store", "pinball_test_plugins.memory_store:MemoryStorePlugin"
        )
        print(json.dumps([type(store).__name__, store.options, type(dotted).__name__]))
        """
    )

    assert json.loads(result.stdout) == [
        "MemoryStore",
        {"size": 3},
        "MemoryStorePlugin",
    ]


def test_env_var_blocks_discovered_plugins_without_importing_them(
    child: Child,
) -> None:
    result = child.run(
        """
        from pinball_core.errors import PluginLoadError
        pm = PluginManager()
        pm.load_optional()
        pm.hook.pinball_notify(notification=Notification((), "s", "t"))
        infos = pm.list_plugins()
        try:
            pm.load_component("store", "broken")
        except PluginLoadError as error:
            message = str(error)
        imported = [m for m in sys.modules if m.startswith("pinball_test_plugins")]
        print(json.dumps([[dataclasses.asdict(i) for i in infos], message, imported]))
        """,
        env={DISABLE_ENV: "notifier.good, broken"},
    )

    infos, message, imported = json.loads(result.stdout)
    infos = by_key(infos)
    assert infos["notifier", "good"]["status"] == "blocked"
    assert infos["notifier", "good"]["distribution"] == "pinball-test-plugins"
    assert infos["store", "broken"]["status"] == "blocked"
    assert infos["store", "memory"]["status"] == "loaded"
    assert message == (
        "cannot load store plugin 'broken' from entry-point group 'pinball.stores': "
        f"it is blocked by the environment variable {DISABLE_ENV}"
    )
    assert "pinball_test_plugins.broken" not in imported
    assert "pinball_test_plugins.notifier" not in imported
    assert child.notifications() == []


def test_plugins_command_prints_a_table_and_json(child: Child) -> None:
    code = """
        import argparse, types
        from pinball_core.commands import plugins as command
        parser = argparse.ArgumentParser(prog="pinball")
        command.register(parser.add_subparsers())
        args = parser.parse_args(sys.argv[1:])
        pm = PluginManager()
        pm.load_optional()
        sys.exit(args.handler(args, types.SimpleNamespace(plugins=pm)))
        """

    table = child.run(code, "plugins").stdout.splitlines()
    listed = json.loads(child.run(code, "plugins", "--json").stdout)

    assert table[0].split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS"]
    assert ["good", "notifier", "pinball-test-plugins", "1.2.3", "loaded"] in [
        line.split() for line in table
    ]
    assert by_key(listed)["notifier", "good"] == {
        "name": "good",
        "kind": "notifier",
        "group": "pinball.notifiers",
        "distribution": "pinball-test-plugins",
        "version": "1.2.3",
        "status": "loaded",
        "target": "pinball_test_plugins.notifier:FileNotifier",
    }


@pytest.mark.skipif(
    importlib.util.find_spec("pinball_core.__main__") is None,
    reason="the pinball command line is not written yet",
)
def test_pinball_plugins_json_end_to_end(child: Child) -> None:
    result = child.run_argv(["-m", "pinball_core", "plugins", "--json"])

    infos = by_key(json.loads(result.stdout))
    assert infos["notifier", "good"]["status"] == "loaded"
    assert infos["store", "broken"]["status"].startswith("error: RuntimeError")
