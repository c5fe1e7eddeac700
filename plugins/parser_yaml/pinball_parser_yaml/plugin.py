"""Registers the YAML parser with Pinball as the ``yaml`` parser plugin."""

import logging
import pathlib
from collections.abc import Mapping
from typing import Any

from pinball_core import hookimpl
from pinball_core.components import Parser
from pinball_core.errors import ConfigError

from pinball_parser_yaml import parser

log = logging.getLogger(__name__)


class YamlParserPlugin:
    """Makes :class:`~pinball_parser_yaml.parser.YamlParser` for ``parser: yaml``."""

    def __init__(self) -> None:
        # Relative paths start at the config file's folder once it is known.
        self.base_dir: pathlib.Path | None = None

    @hookimpl
    def pinball_configure(self, config: Any) -> None:
        source = getattr(config, "source", None)
        if source is not None:
            self.base_dir = pathlib.Path(source).parent

    @hookimpl
    def pinball_make_parser(self, params: Mapping[str, Any]) -> Parser:
        try:
            made = parser.make(params, self.base_dir)
        except ValueError as exc:
            # One problem a line; config check prints each on its own.
            raise ConfigError(problems=str(exc).splitlines()) from exc
        log.debug("yaml parser reads %s", made.path)
        return made
