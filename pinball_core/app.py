"""The application object: one config, one plugin manager, made on demand.

Every ``pinball`` command receives an :class:`Application`. Nothing is read
or loaded until a command asks for it, so commands that need no config file
(``pinball plugins``) work without one, and a bad config is reported by the
command that needs it.
"""

import logging
import os

from pinball_core.client import HttpClient, MasterClient
from pinball_core.config import Config, load_config
from pinball_core.errors import StoreMissingError
from pinball_core.plugins import PluginManager, store_scheme
from pinball_core.store import Store

log = logging.getLogger(__name__)

# Attempts a one-shot command makes to reach the master, whatever
# client_connect_attempts says: with the backoff between them, well under a
# second, so the operator hears at once that the master is down. That count
# is for services, which ride out a master's restart.
_INTERACTIVE_ATTEMPTS = 3


class Application:
    """What a Pinball process is built from: its config and its plugins.

    :param config_path:
        The YAML config file; None means the default,
        ``$PINBALL_HOME/pinball.yaml``, and all defaults when that file does
        not exist.
    :param debug:
        Debug mode as asked on the command line; the config's ``debug`` key
        turns it on too.
    """

    def __init__(
        self, config_path: str | os.PathLike[str] | None, debug: bool = False
    ) -> None:
        self.config_path = config_path
        self._debug = debug
        self._config: Config | None = None
        self._plugins: PluginManager | None = None
        #: Every command the command line knows, plugins' included; set by
        #: the command line before a command runs.
        self.commands: frozenset[str] = frozenset()

    @property
    def debug(self) -> bool:
        """True if ``--debug`` was given or the loaded config sets ``debug``."""
        return self._debug or (self._config is not None and self._config.debug)

    @property
    def config(self) -> Config:
        """The config, loaded on first access.

        :raises ConfigError: if the file is missing, unreadable or invalid.
        """
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def plugins(self) -> PluginManager:
        """The plugin manager, built on first access.

        Plugins named in the config's ``disabled_plugins`` are blocked; every
        installed notifier and general plugin is loaded and configured.

        :raises ConfigError: if the config is invalid, or a plugin refuses it.
        """
        if self._plugins is None:
            config = self.config
            plugins = PluginManager(blocked=config.disabled_plugins)
            plugins.load_optional()
            plugins.configure(config)
            self._plugins = plugins
        return self._plugins

    def open_store(self, *, read_only: bool = False) -> Store:
        """Open the configured store, not yet initialized.

        The store plugin is chosen by the URL's scheme and receives the
        ``plugins:`` options under that name (``plugins: {sqlite: ...}``).

        ``read_only`` is for commands that only read: they refuse a store
        no master has created rather than create an empty one where a
        misspelt ``store`` points. Only the master creates the store.

        :raises PluginLoadError: if the store plugin is missing or broken.
        :raises StoreMissingError: with ``read_only``, if there is no store.
        :raises StoreError: if the store cannot be opened.
        """
        url = self.config.store_url
        options = self.config.plugin_options(store_scheme(url))
        log.debug("opening store %s", self.config.store_display_url)
        store = self.plugins.make_store(url, options)
        if not read_only:
            return store
        try:
            store.require_existing()
        except StoreMissingError as exc:
            store.close()
            raise StoreMissingError(
                exc.location,
                f"(store in {self.config.label}); has a master ever run on it? "
                "start one with `pinball master`",
            ) from None
        except BaseException:
            store.close()
            raise
        return store

    def master_client(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        interactive: bool = False,
    ) -> MasterClient:
        """A client of the master at ``master_host:master_port`` or the given one.

        ``interactive`` is for a person at a prompt: a few quick attempts
        rather than the minutes of retries a worker rides out a restart with,
        and no log line for each, since the one error says how many it made.
        """
        config = self.config
        attempts = config.client_connect_attempts
        retry_log_level = logging.WARNING
        if interactive:
            attempts = min(attempts, _INTERACTIVE_ATTEMPTS)
            retry_log_level = logging.DEBUG
        return HttpClient(
            config.master_host if host is None else host,
            config.master_port if port is None else port,
            secret=config.master_secret,
            timeout_sec=config.client_timeout_sec,
            connect_attempts=attempts,
            max_backoff_sec=config.max_backoff_client_reconnect_sec,
            retry_log_level=retry_log_level,
        )
