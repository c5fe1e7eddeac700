"""The hook specifications keep their promises: named, typed, documented."""

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pinball_core import PROJECT_NAME, hookspecs
from pinball_core.components import (
    ExecutionHandle,
    ExecutionSpec,
    Executor,
    Notification,
    OverrunContext,
    OverrunDecision,
    OverrunPolicy,
    Parser,
)
from pinball_core.plugins import PluginManager
from pinball_core.token import Token

SPECS: dict[str, Callable[..., Any]] = {
    name: function
    for name, function in vars(hookspecs).items()
    if hasattr(function, f"{PROJECT_NAME}_spec")
}

COMPONENT_HOOKS = {
    "pinball_make_store",
    "pinball_make_parser",
    "pinball_make_executor",
    "pinball_make_overrun_policy",
}


def spec_options(name: str) -> Mapping[str, Any]:
    options: Mapping[str, Any] = getattr(SPECS[name], f"{PROJECT_NAME}_spec")
    return options


def test_every_hook_the_issue_asks_for_is_specified() -> None:
    assert set(SPECS) == COMPONENT_HOOKS | {
        "pinball_notify",
        "pinball_configure",
        "pinball_add_commands",
        "pinball_job_started",
        "pinball_job_succeeded",
        "pinball_job_failed",
        "pinball_job_timed_out",
        "pinball_instance_finished",
        "pinball_schedule_fired",
        "pinball_schedule_skipped",
        "pinball_schedule_refused",
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_prefixed_typed_and_documented(name: str) -> None:
    signature = inspect.signature(SPECS[name])

    assert name.startswith("pinball_")
    assert inspect.getdoc(SPECS[name])
    assert signature.return_annotation is not inspect.Signature.empty
    for parameter in signature.parameters.values():
        assert parameter.annotation is not inspect.Parameter.empty, parameter.name
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


@pytest.mark.parametrize("name", sorted(SPECS))
def test_only_component_hooks_stop_at_the_first_result(name: str) -> None:
    firstresult = spec_options(name)["firstresult"]

    assert firstresult == (name in COMPONENT_HOOKS)
    doc = inspect.getdoc(SPECS[name]) or ""
    assert ("Stops at first non-None result." in doc) == firstresult


def test_only_configure_is_historic() -> None:
    historic = {name for name in SPECS if spec_options(name)["historic"]}

    assert historic == {"pinball_configure"}


def test_manager_relay_has_every_hook() -> None:
    relay = PluginManager().hook

    for name in SPECS:
        assert getattr(relay, name).has_spec()


def test_minimal_components_satisfy_the_protocols() -> None:
    class Handle:
        logs: dict[str, str] = {}
        event_attributes: dict[str, str] = {}
        properties: dict[str, list[str]] = {}

        def wait(self, timeout: float | None = None) -> int | None:
            return None

        def abort(self, grace_sec: float = 10.0) -> None:
            pass

    class Local:
        def start(self, spec: ExecutionSpec) -> Handle:
            return Handle()

    class Skip:
        def decide(self, context: OverrunContext) -> OverrunDecision:
            return OverrunDecision.SKIP if context.running else OverrunDecision.START

    class Empty:
        def workflow_names(self) -> list[str]:
            return []

        def instance_tokens(self, workflow: str, instance: str) -> list[Token]:
            return []

        def schedule_token(self, workflow: str) -> Token | None:
            return None

        def validate(self) -> list[str]:
            return []

    assert isinstance(Local(), Executor)
    spec = ExecutionSpec("w", "1", "j", 0, "shell", "true", {}, "/tmp")
    assert isinstance(Local().start(spec), ExecutionHandle)
    assert isinstance(Skip(), OverrunPolicy)
    assert isinstance(Empty(), Parser)
    assert not isinstance(Empty(), Executor)


def test_notification_is_immutable() -> None:
    notification = Notification(("a@b.c",), "subject", "text")

    with pytest.raises(dataclasses.FrozenInstanceError):
        notification.subject = "other"  # type: ignore[misc]
    assert notification.html is None
    assert notification.kind == "message"
