"""Pinball core: tokens, the token master, stores, config, CLI and hook specs.

Plugins import :data:`hookimpl` from here to mark their hook implementations.
"""

from importlib import metadata

import pluggy

#: The project name that ties hook specs and implementations together.
PROJECT_NAME = "pinball"

#: Marks a function in :mod:`pinball_core.hookspecs` as a hook specification.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a plugin function as the implementation of a ``pinball_*`` hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

try:
    __version__ = metadata.version("pinball-core")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
