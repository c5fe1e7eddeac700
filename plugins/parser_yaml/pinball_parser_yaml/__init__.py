"""Pinball's YAML workflow parser: workflows, jobs and schedules in YAML files.

The config selects it with ``parser: yaml`` and points it at a file or a
folder with ``parser_params: {path: ...}``. The schema is in the README.
"""

from pinball_parser_yaml.parser import YamlParser
from pinball_parser_yaml.problems import Problem

__all__ = ["Problem", "YamlParser"]
