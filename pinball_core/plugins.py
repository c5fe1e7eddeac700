"""Finding, loading and calling plugins: one :class:`PluginManager` per app.

Plugins are found through entry points, one group per kind; the entry-point
name is the name the config uses (``store: sqlite`` loads ``sqlite`` from
``pinball.stores``):

- ``store`` (``pinball.stores``): the one the store URL's scheme names;
- ``parser`` (``pinball.parsers``): the one the config names;
- ``executor`` (``pinball.executors``): the one the config names;
- ``overrun_policy`` (``pinball.overrun_policies``): each one a schedule names;
- ``notifier`` (``pinball.notifiers``): all of them, at start-up;
- ``plugin`` (``pinball.plugins``): all of them, at start-up; these add
  commands and listen to lifecycle events.

The failure policy depends on the kind. A component the config names that is
missing, broken or blocked stops start-up with a one-line
:class:`~pinball_core.errors.PluginLoadError` naming the group, the name and
the cause. A broken notifier or general plugin is logged once, as a warning,
and skipped, so one bad package cannot take the scheduler down.

An entry point's object is a module or a class; a class is instantiated with
no arguments, so a plugin's state lives on its instance, one per application.
Each plugin is registered with pluggy as ``<kind>.<name>`` (``store.sqlite``).
Pinball's own implementations are entry points of the ``pinball-core``
distribution and go through the same path, so they can be listed, blocked
and replaced like any other plugin.

Plugins are blocked by name with the config's ``disabled_plugins`` or the
comma-separated ``PINBALL_DISABLE_PLUGINS`` environment variable; a name is
either ``<kind>.<name>`` (``notifier.email``) or a bare name, which blocks
it in every kind. A blocked plugin is never imported.
"""

import contextlib
import dataclasses
import importlib.metadata
import inspect
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, cast

import pluggy
from stevedore.named import NamedExtensionManager

from pinball_core import PROJECT_NAME, hookspecs
from pinball_core.components import Executor, OverrunPolicy, Parser
from pinball_core.errors import ConfigError, PinballError, PluginLoadError
from pinball_core.store import Store

log = logging.getLogger(__name__)

#: The entry-point group of each plugin kind.
GROUPS: Final[Mapping[str, str]] = {
    "store": "pinball.stores",
    "parser": "pinball.parsers",
    "executor": "pinball.executors",
    "overrun_policy": "pinball.overrun_policies",
    "notifier": "pinball.notifiers",
    "plugin": "pinball.plugins",
}

#: Parser names of the original Pinball's configs, and the parser they mean:
#: its class path, and the one its README printed.
PARSER_ALIASES: Final[Mapping[str, str]] = {
    "pinball_ext.workflow.parser.PyWorkflowParser": "python",
    "pinball_ext.workflows.parser.PyWorkflowParser": "python",
}

#: Kinds that :meth:`PluginManager.load_component` loads one of, by name.
COMPONENT_KINDS: Final = ("store", "parser", "executor", "overrun_policy", "notifier")

#: Kinds that :meth:`PluginManager.load_optional` loads all of.
OPTIONAL_KINDS: Final = ("notifier", "plugin")

#: The environment variable listing plugins not to load, comma separated.
DISABLE_ENV: Final = "PINBALL_DISABLE_PLUGINS"

# The hook a plugin of each kind exists to implement; one without it is broken.
_REQUIRED_HOOK: Final[Mapping[str, str]] = {
    "store": "pinball_make_store",
    "parser": "pinball_make_parser",
    "executor": "pinball_make_executor",
    "overrun_policy": "pinball_make_overrun_policy",
    "notifier": "pinball_notify",
}

#: The config key that names the component of each kind the config chooses.
CONFIG_KEYS: Final[Mapping[str, str]] = {
    "store": "store",
    "parser": "parser",
    "executor": "executor",
}

_CONFIG_SOURCE: Final = "the config key 'disabled_plugins'"
_ENV_SOURCE: Final = f"the environment variable {DISABLE_ENV}"


@dataclasses.dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin as ``pinball plugins`` shows it.

    ``status`` is ``loaded`` (it imports and its hooks are valid), ``blocked``
    (not imported on purpose) or ``error: <cause>``. ``group`` and ``target``
    (``module:attr``) are None for a plugin registered in-process.
    """

    name: str
    kind: str
    group: str | None
    distribution: str | None
    version: str | None
    status: str
    target: str | None = None


class _BadPlugin(Exception):
    """A plugin imported but cannot be used; the message is the whole cause."""


@dataclasses.dataclass(slots=True)
class _Loaded:
    """What loading one entry point gave, kept so each is tried only once."""

    entry_point: importlib.metadata.EntryPoint
    plugin: object = None
    error: Exception | None = None


class PluginManager:
    """The plugins of one application and the relay to call their hooks.

    Never a module global: an application (and each test) makes its own, so
    plugins keep per-application state on their instances.

    :param blocked:
        Plugin names not to load, ``<kind>.<name>`` or bare names, usually
        the config's ``disabled_plugins``. Names in the environment variable
        ``PINBALL_DISABLE_PLUGINS`` are added to them.
    """

    def __init__(self, blocked: Iterable[str] = ()) -> None:
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)

        # Blocked names as written, mapped to where they came from.
        self._blocked: dict[str, str] = {}
        for name in blocked:
            self._block(name, _CONFIG_SOURCE)
        for name in os.environ.get(DISABLE_ENV, "").split(","):
            self._block(name, _ENV_SOURCE)

        # Every entry point tried, by (kind, name): the plugin or the error.
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        # Broken optional plugins already warned about.
        self._warned: set[tuple[str, str]] = set()
        # How errors name the config file, once configure() has seen it.
        self._config_label: str | None = None
        # Built on first use: scanning every installed distribution is slow.
        self._dist_by_entry_point: dict[tuple[str, ...], tuple[str, str]] | None = None
        self._dists_by_package: Mapping[str, list[str]] | None = None

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hook relay: ``hook.pinball_notify(notification=n)`` calls them all."""
        return self._pm.hook

    # -- Loading --------------------------------------------------------------

    def load_optional(self) -> None:
        """Load every notifier and general plugin that is installed.

        A plugin that is missing or broken is logged once per manager, as a
        warning naming it, its group and the cause, and skipped; a blocked one
        is skipped silently. Calling this again loads only what is new.
        """
        for kind in OPTIONAL_KINDS:
            group = GROUPS[kind]
            names = [
                name
                for name in self._entry_points(group)
                if self._pm.get_plugin(f"{kind}.{name}") is None
                and self._blocked_by(kind, name) is None
            ]
            self._load(kind, names)

            for name in sorted(names):
                loaded = self._loaded[kind, name]
                if loaded.error is None:
                    self._register_loaded(kind, name, loaded.plugin)
                elif (kind, name) not in self._warned:
                    self._warned.add((kind, name))
                    # One line; the traceback only when debugging (stevedore's way).
                    traceback = log.isEnabledFor(logging.DEBUG)
                    log.warning(
                        "skipping %s from entry-point group %r: %s",
                        _describe_plugin(kind, name),
                        group,
                        _describe(loaded.error),
                        exc_info=loaded.error if traceback else None,
                    )

    def load_component(self, kind: str, name: str) -> object:
        """Load and register the ``kind`` plugin the config calls ``name``.

        A plugin already registered under ``<kind>.<name>`` (in-process, or
        loaded before) is returned as it is. A ``name`` that is no entry point
        but a dotted path (``package.module:Class`` or ``package.module.Class``)
        is imported directly, for third-party classes the config names.

        :raises PluginLoadError: if the plugin is missing, broken or blocked;
            the message is one line naming the entry-point group, the name
            and the cause, and the original error is its ``__cause__``. For
            a kind the config chooses (:data:`CONFIG_KEYS`) it starts with
            the config file and the key, once :meth:`configure` has run.
        """
        with self._naming_the_config(CONFIG_KEYS.get(kind)):
            return self._load_component(kind, name)

    def _load_component(self, kind: str, name: str) -> object:
        if kind not in COMPONENT_KINDS:
            raise ValueError(
                f"unknown component kind {kind!r}; expected one of "
                f"{', '.join(COMPONENT_KINDS)}"
            )
        group = GROUPS[kind]
        registered = self._pm.get_plugin(f"{kind}.{name}")
        if registered is not None:
            return registered

        what = (
            f"cannot load {_describe_plugin(kind, name)} "
            f"from entry-point group {group!r}"
        )
        source = self._blocked_by(kind, name)
        if source is not None:
            raise PluginLoadError(f"{what}: it is blocked by {source}")

        installed = self._entry_points(group)
        not_installed = (
            f"no such plugin is installed (installed: "
            f"{', '.join(sorted(installed)) or 'none'})"
        )
        if name in installed:
            self._load(kind, [name])
        elif _is_dotted_path(name):
            self._load_dotted_path(kind, name)
        else:
            raise PluginLoadError(
                f"{what}: {not_installed}; "
                f"pip install the distribution that provides it"
            )

        loaded = self._loaded[kind, name]
        error = loaded.error
        if error is not None:
            cause = _describe(error)
            if name not in installed and isinstance(
                error, ImportError | AttributeError
            ):
                cause = f"{not_installed}, and as a dotted path: {cause}"
            raise PluginLoadError(f"{what}: {cause}") from error
        self._register_loaded(kind, name, loaded.plugin)
        return loaded.plugin

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` in-process under ``name``, e.g. ``store.memory``.

        For tests and embedding. A name of the form ``<kind>.<name>`` makes
        the plugin the one :meth:`load_component` returns for that kind and
        name, in place of any installed one. A blocked name is ignored, as
        pluggy does.

        :raises PluginLoadError: if the plugin implements hooks Pinball does
            not define or with arguments the specs do not have.
        """
        try:
            if self._pm.register(plugin, name=name) is None:
                log.debug("not registering blocked plugin %r", name)
                return
            _check_hooks(self._pm, plugin, required=None)
        except (_BadPlugin, pluggy.PluginValidationError) as exc:
            self._pm.unregister(name=name)
            raise PluginLoadError(
                f"cannot register plugin {name!r}: {_describe(exc)}"
            ) from exc

    def configure(self, config: Any) -> None:
        """Call :func:`~pinball_core.hookspecs.pinball_configure` once.

        The call is historic, so plugins loaded afterwards receive it too.
        From here on, errors that come from the config name its file (the
        config's ``label``): a :class:`~pinball_core.errors.ConfigError` a
        plugin raises about its keys, and the failure to make the store,
        parser or executor the config chooses.

        :raises ConfigError: if a plugin refuses its config keys; the message
            starts with the config file.
        """
        self._config_label = getattr(config, "label", None)
        with self._naming_the_config():
            self._pm.hook.pinball_configure.call_historic(kwargs={"config": config})

    # -- Components -------------------------------------------------------------

    def make_store(self, url: str, options: Mapping[str, Any] | None = None) -> Store:
        """Open the store at ``url`` with the plugin named by its scheme.

        The scheme is the part of the URL before ``+`` and ``://``:
        ``sqlite:///x.db`` uses the ``sqlite`` plugin, ``mysql+pymysql://...``
        the ``mysql`` one. Only that plugin's ``pinball_make_store`` is called.

        :raises ConfigError: if the URL has no scheme.
        :raises PluginLoadError: if the plugin cannot be loaded or makes no
            store; store errors it raises (``StoreError``) pass through.
        """
        scheme = store_scheme(url)
        store = self._make(
            "store",
            scheme,
            "pinball_make_store",
            {"url": url, "options": dict(options or {})},
            Store,
            f" for {mask_url(url)!r}",
        )
        return cast(Store, store)

    def make_parser(self, name: str, params: Mapping[str, Any] | None = None) -> Parser:
        """Make the workflow parser ``name`` with the config's ``parser_params``.

        The original's dotted parser names (:data:`PARSER_ALIASES`) make the
        registered ``python`` parser.
        """
        parser = self._make(
            "parser",
            PARSER_ALIASES.get(name, name),
            "pinball_make_parser",
            {"params": dict(params or {})},
            Parser,
        )
        return cast(Parser, parser)

    def make_executor(
        self, name: str, options: Mapping[str, Any] | None = None
    ) -> Executor:
        """Make the job executor ``name`` with the config's executor options."""
        executor = self._make(
            "executor",
            name,
            "pinball_make_executor",
            {"options": dict(options or {})},
            Executor,
        )
        return cast(Executor, executor)

    def make_overrun_policy(self, name: str) -> OverrunPolicy:
        """Make the overrun policy ``name`` (``SKIP``, ``DELAY``, ...)."""
        policy = self._make(
            "overrun_policy", name, "pinball_make_overrun_policy", {}, OverrunPolicy
        )
        return cast(OverrunPolicy, policy)

    # -- Listing ----------------------------------------------------------------

    def list_plugins(self) -> list[PluginInfo]:
        """Every plugin installed or registered, each loaded to report its status.

        Loading here only checks a plugin: one that is not in use yet is not
        registered, so its hooks are not called. Broken plugins are reported
        in their status, not logged.
        """
        infos: list[PluginInfo] = []
        from_entry_points: set[int] = set()
        for kind, group in GROUPS.items():
            installed = self._entry_points(group)
            self._load(
                kind,
                [
                    name
                    for name in installed
                    if (kind, name) not in self._loaded
                    and self._blocked_by(kind, name) is None
                    and self._pm.get_plugin(f"{kind}.{name}") is None
                ],
            )
            tried = {name for (k, name) in self._loaded if k == kind}
            for name in sorted(installed.keys() | tried):
                info = self._entry_point_info(kind, name, installed.get(name, []))
                if info is not None:
                    infos.append(info)
                loaded = self._loaded.get((kind, name))
                if loaded is not None and loaded.plugin is not None:
                    from_entry_points.add(id(loaded.plugin))

        for name, plugin in self._pm.list_name_plugin():
            if plugin is None or id(plugin) in from_entry_points:
                continue  # blocked, or listed above
            kind, _, short = name.partition(".")
            if kind not in GROUPS or not short:
                kind, short = "plugin", name
            module = getattr(plugin, "__name__", None)
            if not inspect.ismodule(plugin):
                module = type(plugin).__module__
            distribution, version = self._module_distribution(module or "")
            infos.append(
                PluginInfo(
                    name=short,
                    kind=kind,
                    group=None,
                    distribution=distribution,
                    version=version,
                    status="loaded",
                    target=_target(plugin),
                )
            )
        return infos

    # -- Internals --------------------------------------------------------------

    def _block(self, name: str, source: str) -> None:
        name = name.strip()
        if not name:
            return
        self._blocked.setdefault(name, source)
        # Also refuse in-process registrations under the blocked names.
        self._pm.set_blocked(name)
        kind, dot, _ = name.partition(".")
        if not (dot and kind in GROUPS):
            for kind in GROUPS:
                self._pm.set_blocked(f"{kind}.{name}")

    def _blocked_by(self, kind: str, name: str) -> str | None:
        for key in (f"{kind}.{name}", name):
            if key in self._blocked:
                return self._blocked[key]
        return None

    def _entry_points(
        self, group: str
    ) -> dict[str, list[importlib.metadata.EntryPoint]]:
        """The installed entry points of ``group`` by name, without importing any."""
        # NOTE: stevedore caches the list per group for the life of the process.
        lister: NamedExtensionManager[Any] = NamedExtensionManager(
            group, names=[], on_missing_entrypoints_callback=None
        )
        found: dict[str, list[importlib.metadata.EntryPoint]] = {}
        for ep in lister.list_entry_points():
            same_name = found.setdefault(ep.name, [])
            if all(other.value != ep.value for other in same_name):
                same_name.append(ep)
        return found

    def _load(self, kind: str, names: Iterable[str]) -> None:
        """Import, instantiate and check the named entry points of ``kind``.

        Each outcome goes to ``self._loaded``; nothing is registered.
        """
        group = GROUPS[kind]
        installed = self._entry_points(group)
        wanted: list[str] = []
        for name in names:
            if (kind, name) in self._loaded:
                continue
            eps = installed[name]
            if len(eps) > 1:
                targets = ", ".join(self._describe_target(ep) for ep in eps)
                conflict = _BadPlugin(
                    f"{len(eps)} entry points have this name: {targets}; "
                    f"uninstall all but one"
                )
                self._loaded[kind, name] = _Loaded(eps[0], error=conflict)
            else:
                wanted.append(name)
        if not wanted:
            return

        failures: dict[str, Exception] = {}

        def on_failure(
            _manager: object, ep: importlib.metadata.EntryPoint, exc: BaseException
        ) -> None:
            assert isinstance(exc, Exception)  # stevedore re-raises the others
            failures[ep.name] = exc

        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            group,
            names=wanted,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=None,
        )
        imported = {ext.name: ext.plugin for ext in manager.extensions}

        for name in wanted:
            loaded = _Loaded(installed[name][0])
            if name in failures:
                loaded.error = failures[name]
            else:
                try:
                    loaded.plugin = _instantiate(kind, name, imported[name])
                except Exception as exc:
                    loaded.error = exc
            self._loaded[kind, name] = loaded

    def _load_dotted_path(self, kind: str, name: str) -> None:
        module, colon, attr = name.partition(":")
        if not colon:
            module, _, attr = name.rpartition(".")
        ep = importlib.metadata.EntryPoint(
            name=name, value=f"{module}:{attr}", group=GROUPS[kind]
        )
        loaded = _Loaded(ep)
        try:
            loaded.plugin = _instantiate(kind, name, ep.load())
        except Exception as exc:
            loaded.error = exc
        self._loaded[kind, name] = loaded

    def _register_loaded(self, kind: str, name: str, plugin: object) -> None:
        # One module may be the target of several entry points.
        if self._pm.get_name(plugin) is None:
            self._pm.register(plugin, name=f"{kind}.{name}")

    def _make(
        self,
        kind: str,
        name: str,
        hook_name: str,
        kwargs: Mapping[str, Any],
        expected: type,
        context: str = "",
    ) -> object:
        """Call ``hook_name`` on the ``kind`` plugin ``name`` alone.

        ``context`` ends the error messages, e.g. `` for 'sqlite:///x.db'``.
        Errors about a component the config chooses name the config file.
        """
        with self._naming_the_config(CONFIG_KEYS.get(kind)):
            return self._call_factory(kind, name, hook_name, kwargs, expected, context)

    def _call_factory(
        self,
        kind: str,
        name: str,
        hook_name: str,
        kwargs: Mapping[str, Any],
        expected: type,
        context: str,
    ) -> object:
        plugin = self._load_component(kind, name)
        what = f"{_describe_plugin(kind, name)} from entry-point group {GROUPS[kind]!r}"
        if hook_name not in {c.name for c in self._pm.get_hookcallers(plugin) or []}:
            raise PluginLoadError(f"{what} does not implement {hook_name}")

        others = [p for p in self._pm.get_plugins() if p is not plugin]
        call: Callable[..., object] = self._pm.subset_hook_caller(hook_name, others)
        try:
            made = call(**kwargs)
        except PinballError:
            raise
        except Exception as exc:
            raise PluginLoadError(
                f"{what} failed in {hook_name}{context}: {_describe(exc)}"
            ) from exc

        if made is None:
            raise PluginLoadError(
                f"{what} made nothing{context}: {hook_name} returned None"
            )
        if not isinstance(made, expected):
            raise PluginLoadError(
                f"{what} returned {type(made).__name__} from {hook_name}, "
                f"not a {expected.__name__}"
            )
        return made

    @contextlib.contextmanager
    def _naming_the_config(self, key: str | None = None) -> Iterator[None]:
        """Start the block's errors that come from the config with its file.

        A :class:`ConfigError` is a plugin refusing its keys, which it names
        (``parser_params.path: ...``); a :class:`PluginLoadError` is the
        component the config ``key`` chose failing, so it gets the key too.
        Before :meth:`configure` the file is unknown and errors pass as they are.
        """
        label = self._config_label
        try:
            yield
        except ConfigError as exc:
            if label is None:
                raise
            raise exc.within(label) from exc
        except PluginLoadError as exc:
            if label is None or key is None:
                raise
            raise PluginLoadError(f"{label}: {key}: {exc}") from exc

    def _entry_point_info(
        self, kind: str, name: str, eps: list[importlib.metadata.EntryPoint]
    ) -> PluginInfo | None:
        loaded = self._loaded.get((kind, name))
        ep = loaded.entry_point if loaded is not None else eps[0]
        registered = self._pm.get_plugin(f"{kind}.{name}")
        if registered is not None and (
            loaded is None or registered is not loaded.plugin
        ):
            return None  # replaced in-process; listed with the in-process plugins

        if self._blocked_by(kind, name) is not None:
            status = "blocked"
        elif loaded is not None and loaded.error is not None:
            status = f"error: {_describe(loaded.error)}"
        else:
            status = "loaded"
        distribution, version = self._distribution(ep)
        return PluginInfo(
            name=name,
            kind=kind,
            group=GROUPS[kind],
            distribution=distribution,
            version=version,
            status=status,
            target=ep.value,
        )

    def _distribution(
        self, ep: importlib.metadata.EntryPoint
    ) -> tuple[str | None, str | None]:
        """The distribution that declares ``ep``, and its version."""
        dist = getattr(ep, "dist", None)
        if dist is not None:
            return dist.metadata["Name"], dist.version

        # stevedore rebuilds entry points from its cache, without their dist.
        if self._dist_by_entry_point is None:
            self._dist_by_entry_point = {}
            groups = set(GROUPS.values())
            for dist in importlib.metadata.distributions():
                for declared in dist.entry_points:
                    if declared.group in groups:
                        key = (declared.group, declared.name, declared.value)
                        self._dist_by_entry_point.setdefault(
                            key, (dist.metadata["Name"], dist.version)
                        )
        found = self._dist_by_entry_point.get((ep.group, ep.name, ep.value))
        if found is not None:
            return found
        return self._module_distribution(ep.module)

    def _module_distribution(self, module: str) -> tuple[str | None, str | None]:
        """The distribution that installed ``module``'s top-level package."""
        if self._dists_by_package is None:
            self._dists_by_package = importlib.metadata.packages_distributions()
        names = self._dists_by_package.get(module.partition(".")[0], [])
        if not names:
            return None, None
        try:
            return names[0], importlib.metadata.version(names[0])
        except importlib.metadata.PackageNotFoundError:
            return names[0], None

    def _describe_target(self, ep: importlib.metadata.EntryPoint) -> str:
        distribution, version = self._distribution(ep)
        if distribution is None:
            return ep.value
        return f"{ep.value} ({distribution} {version or '?'})"


def store_scheme(url: str) -> str:
    """The store plugin name of a store URL: its scheme, before any ``+``.

    :raises ConfigError: if the URL has no ``scheme://``.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(
            f"store URL {mask_url(url)!r} has no scheme; "
            f"write it like sqlite:///path/to/pinball.db"
        )
    return scheme.partition("+")[0].lower()


_PASSWORD_IN_URL: Final = re.compile(r"(://[^/:@]*:)[^/@]*@")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def _instantiate(kind: str, name: str, target: object) -> object:
    """The plugin for an entry point's object, checked against the hook specs.

    A class is instantiated with no arguments; a module is used as it is.
    """
    plugin = target() if inspect.isclass(target) else target

    # Register on a scratch manager: it validates every hook implementation
    # without making the plugin active in the application's manager.
    scratch = pluggy.PluginManager(PROJECT_NAME)
    scratch.add_hookspecs(hookspecs)
    scratch.register(plugin, name=f"{kind}.{name}")
    _check_hooks(scratch, plugin, required=_REQUIRED_HOOK.get(kind))
    return plugin


def _check_hooks(
    pm: pluggy.PluginManager, plugin: object, required: str | None
) -> None:
    """Refuse a registered plugin with unknown hooks or without its main hook."""
    callers = pm.get_hookcallers(plugin) or []
    unknown = sorted(
        caller.name
        for caller in callers
        if not caller.has_spec()
        and any(
            impl.plugin is plugin and not impl.optionalhook
            for impl in caller.get_hookimpls()
        )
    )
    if unknown:
        raise _BadPlugin(f"it implements unknown hook(s) {', '.join(unknown)}")
    if required is not None and required not in {caller.name for caller in callers}:
        raise _BadPlugin(f"it does not implement {required}")


def _describe(exc: BaseException) -> str:
    """The cause of a failure on one line: the message, and the type if useful."""
    text = str(exc)
    if not isinstance(exc, ImportError | _BadPlugin) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return " ".join(text.split())


def _describe_plugin(kind: str, name: str) -> str:
    if kind == "plugin":
        return f"plugin {name!r}"
    return f"{kind.replace('_', ' ')} plugin {name!r}"


def _is_dotted_path(name: str) -> bool:
    return ":" in name or "." in name.strip(".")


def _target(plugin: object) -> str:
    if inspect.ismodule(plugin):
        return plugin.__name__
    cls = type(plugin)
    return f"{cls.__module__}:{cls.__qualname__}"
