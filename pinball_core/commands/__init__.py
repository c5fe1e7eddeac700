"""The built-in ``pinball`` sub-commands, one module each.

Each module has ``register(subparsers) -> None``, which adds its parsers and
sets ``handler=func`` on them, where ``func(args, app) -> int`` runs the
command with the :class:`~pinball_core.app.Application` and returns the exit
code. Plugins add commands the same way through the ``pinball_add_commands``
hook.
"""
