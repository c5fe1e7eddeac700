"""Pinball's Python workflow parser: workflows written as Python code.

The config selects it with ``parser: python`` (the default) and points it
at the definitions with ``parser_params``: ``module`` (a dotted module
name), ``path`` (a ``.py`` file or folder) or, for modules written for the
original Pinball, ``workflows_config``. See the README.
"""

from pinball_parser_python.api import DefinedJob, Workflow
from pinball_parser_python.parser import PythonParser
from pinball_parser_python.problems import Problem
from pinball_parser_python.schedule import OVERRUN_POLICIES, Schedule

__all__ = [
    "OVERRUN_POLICIES",
    "DefinedJob",
    "Problem",
    "PythonParser",
    "Schedule",
    "Workflow",
]
