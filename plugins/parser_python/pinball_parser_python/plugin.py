"""Registers the Python parser with Pinball as the ``python`` parser plugin."""

import logging
import pathlib
from collections.abc import Mapping
from typing import Any

from pinball_core import hookimpl
from pinball_core.components import Parser
from pinball_core.errors import ConfigError

from pinball_parser_python import parser

log = logging.getLogger(__name__)


class PythonParserPlugin:
    """Makes :class:`~pinball_parser_python.parser.PythonParser` for
    ``parser: python`` and the original's dotted parser names."""

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
        log.debug("python parser reads %s", made.source)
        return made
