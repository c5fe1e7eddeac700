"""The ``mysql`` and ``mariadb`` store plugin: opens a :class:`MysqlStore`."""

import logging
from collections.abc import Mapping
from typing import Any

from pinball_core import hookimpl
from pinball_core.store import Store

from pinball_store_mysql.options import MysqlOptions
from pinball_store_mysql.store import MysqlStore

log = logging.getLogger(__name__)


class MysqlStorePlugin:
    """Provides the MySQL store to the plugin manager.

    It reads ``master_name`` from the config, which names the tables; the
    store's own options come with the URL, from ``plugins: {mysql: ...}``.
    """

    def __init__(self) -> None:
        self._master_name: str | None = None

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        self._master_name = getattr(config, "master_name", None)

    @hookimpl
    def pinball_make_store(self, url: str, options: Mapping[str, Any]) -> Store:
        scheme = url.partition("://")[0].partition("+")[0].lower()
        store = MysqlStore(
            url,
            master_name=self._master_name,
            options=MysqlOptions.parse(options, scheme),
        )
        log.debug("opened MySQL store %s", store.display_url)
        return store
