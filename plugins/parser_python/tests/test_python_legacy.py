"""The original Pinball's config model: existing workflows modules load.

Modules here are written as the original's were, with only the imports of
``pinball_ext`` changed, and read through ``parser_params.workflows_config``
as the original's ``PyWorkflowParser`` read them (inventory 6.2).
"""

import datetime
import json
import pathlib
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from pinball_core.token import Token
from pinball_core.workflow import names
from pinball_core.workflow.model import Job

from pinball_parser_python import PythonParser
from pinball_parser_python.job_runner import parse_pairs

IMPORTS = """\
from datetime import datetime, timedelta
from pinball_parser_python.config import (
    JobConfig, OverrunPolicy, ScheduleConfig, WorkflowConfig,
)
from pinball_parser_python.job_templates import (
    CommandConditionTemplate, CommandJobTemplate, JobTemplate,
)
"""

#: The original's example, with job classes of its own.
EXAMPLE = (
    IMPORTS
    + """
FINAL_JOB = CommandJobTemplate('final', 'echo success')

WORKFLOWS = {
    'example_workflow': WorkflowConfig(
        jobs={
            'parent_job': JobConfig(JobTemplate('ExamplePythonJob'), []),
            'child_job': JobConfig(JobTemplate('ExampleCommandJob'), ['parent_job']),
        },
        final_job_config=JobConfig(FINAL_JOB),
        schedule=ScheduleConfig(recurrence=timedelta(days=1),
                                reference_timestamp=datetime(
                                year=2015, month=2, day=1, second=1)),
        notify_emails='owner@example.com,second@example.com')
}
"""
)

JOBS = """\
import os
from pinball_parser_python.jobs import CommandLineJob, PythonJob

JOB_IMPORT_DIRS = [os.path.dirname(os.path.realpath(__file__))]


class ExamplePythonJob(PythonJob):
    def _execute(self):
        print('PINBALL:EVENT_ATTR:end=' + self.params['end_date'])
        print('flag' if self.params.get('flag') is True else 'no flag')


class ExampleCommandJob(CommandLineJob):
    def _get_command(self):
        return 'echo'


class FailingJob(PythonJob):
    def _execute(self):
        raise RuntimeError('the job failed on purpose')
"""


@pytest.fixture
def repo(importable: pathlib.Path) -> pathlib.Path:
    """A job repository on sys.path: a workflows module and a jobs package."""
    (importable / "repo_jobs").mkdir()
    (importable / "repo_jobs" / "__init__.py").write_text(JOBS)
    return importable


def legacy_parser(
    repo: pathlib.Path, source: str, module: str = "old_workflows", **params: Any
) -> PythonParser:
    (repo / f"{module}.py").write_text(textwrap.dedent(source))
    return PythonParser(
        {
            "workflows_config": f"{module}.WORKFLOWS",
            "job_repo_dir": str(repo),
            "job_import_dirs_config": "repo_jobs.JOB_IMPORT_DIRS",
            **params,
        }
    )


def jobs_by_name(tokens: list[Token]) -> dict[str, tuple[Token, Job]]:
    return {t.name.rsplit("/", 1)[1]: (t, Job.from_json(t.data)) for t in tokens}


def test_original_example_loads(repo: pathlib.Path) -> None:
    parser = legacy_parser(repo, EXAMPLE)

    assert parser.validate() == []
    tokens = jobs_by_name(parser.instance_tokens("example_workflow", "1"))
    assert set(tokens) == {"parent_job", "child_job", "final"}
    parent = tokens["parent_job"][1]
    assert parent.inputs == [names.WORKFLOW_START]
    assert tokens["final"][1].inputs == ["child_job"]
    assert tokens["final"][1].command == "echo success"
    assert parent.emails == ["owner@example.com", "second@example.com"]
    assert "pinball_parser_python.job_runner" in parent.command
    assert "--job_class_name=ExamplePythonJob" in parent.command
    assert "--job_import_dirs_config=repo_jobs.JOB_IMPORT_DIRS" in parent.command


def test_priority_sums_the_job_and_everything_downstream(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo,
        IMPORTS
        + """
WORKFLOWS = {'w': WorkflowConfig(
    jobs={
        'a': JobConfig(CommandJobTemplate('a', 'true'), []),
        'b': JobConfig(CommandJobTemplate('b', 'true', priority=10), ['a']),
        'c': JobConfig(CommandJobTemplate('c', 'true'), ['a']),
        'wait': JobConfig(CommandConditionTemplate('wait', command='true')),
    },
    final_job_config=JobConfig(CommandJobTemplate('final', 'true')),
    schedule=None)}
""",
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    # final 1; b 10 + final; c 1 + final; a 1 + b + c + final; conditions 0.
    assert {n: t.priority for n, (t, _) in tokens.items()} == {
        "final": 1.0,
        "b": 11.0,
        "c": 2.0,
        "a": 13.0,
        "wait": 0.0,
    }
    wait = tokens["wait"][1]
    assert (wait.condition, wait.max_attempts, wait.retry_delay_sec) == (
        True,
        72,
        1200.0,
    )
    assert tokens["final"][1].inputs == ["b", "c", "wait"]


def test_command_templates_take_parser_params(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo,
        IMPORTS
        + """
WORKFLOWS = {'w': WorkflowConfig(
    jobs={'a': JobConfig(CommandJobTemplate(
        'a', 'echo %(greeting)s %%(from_upstream)s 100%%', max_attempts=3,
        warn_timeout_sec=5, abort_timeout_sec=9, emails=['me@example.com']))},
    final_job_config=JobConfig(CommandJobTemplate('final', 'echo 50%% done')),
    schedule=None, notify_emails='team@example.com')}
""",
        greeting="hello",
    )
    tokens = jobs_by_name(parser.instance_tokens("w", "1"))

    a = tokens["a"][1]
    assert a.command == "echo hello %(from_upstream)s 100%"
    assert (a.max_attempts, a.warn_timeout_sec, a.abort_timeout_sec) == (3, 5.0, 9.0)
    assert a.emails == ["team@example.com", "me@example.com"]
    # The final job gets no parameters, but its %% is still a template's.
    assert tokens["final"][1].command == "echo 50% done"


def test_schedule_token(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo,
        IMPORTS
        + """
WORKFLOWS = {'w': WorkflowConfig(
    jobs={'a': JobConfig(CommandJobTemplate('a', 'true'))},
    final_job_config=JobConfig(CommandJobTemplate('final', 'true')),
    schedule=ScheduleConfig(timedelta(hours=6), datetime(2015, 2, 1, 0, 0, 1),
                            overrun_policy=OverrunPolicy.DELAY_UNTIL_SUCCESS,
                            max_running_instances=2),
    notify_emails='a@example.com,b@example.com')}
""",
    )
    token = parser.schedule_token("w")

    assert token is not None
    assert json.loads(token.data) == {
        "workflow": "w",
        "recurrence_sec": 6 * 3600,
        "start": "2015-02-01T00:00:01",
        "timezone": "UTC",
        "overrun_policy": "DELAY_UNTIL_SUCCESS",
        "max_running_instances": 2,
        "emails": ["a@example.com", "b@example.com"],
    }


def test_job_params_and_end_date_reach_the_runner(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo,
        EXAMPLE,
        job_params={"region": "eu"},
        end_date="2026-03-04",
    )
    tokens = jobs_by_name(parser.instance_tokens("example_workflow", "1"))

    assert (
        "--job_params=region=eu,end_date=2026-03-04" in tokens["parent_job"][1].command
    )


def test_end_date_defaults_to_yesterday(repo: pathlib.Path) -> None:
    tokens = jobs_by_name(
        legacy_parser(repo, EXAMPLE).instance_tokens("example_workflow", "1")
    )
    yesterday = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)

    assert f"end_date={yesterday}" in tokens["parent_job"][1].command


@pytest.mark.parametrize(
    ("jobs", "final", "expected"),
    [
        (
            "{'final': JobConfig(CommandJobTemplate('final', 'true'))}",
            "JobConfig(CommandJobTemplate('final', 'true'))",
            "job final: a job may not be named 'final'",
        ),
        (
            "{'a': JobConfig(CommandJobTemplate('a', 'true'))}",
            "JobConfig(JobTemplate('Cleanup'))",
            "job final: the final job gets no parser params",
        ),
        (
            "{'a': JobConfig(CommandJobTemplate('a', 'echo %(nope)s'))}",
            "None",
            "job a: command uses %(nope)s, which parser_params does not set",
        ),
        (
            "{'a': JobConfig(CommandJobTemplate('a', 'echo 5%'))}",
            "None",
            "job a: command is not a valid %-template",
        ),
        (
            "{'a': JobConfig(CommandJobTemplate('a', 'true'), ['b'])}",
            "None",
            "job a: depends on 'b', which is not a job",
        ),
        (
            "{'a': JobConfig(CommandConditionTemplate('a'))}",
            "None",
            "job a: condition template CommandConditionTemplate('a') needs a command",
        ),
        (
            "{'a': JobConfig('echo hi')}",
            "None",
            "job a: template must be a JobTemplate",
        ),
        (
            "{'a': 'echo hi'}",
            "None",
            "job a: must be a JobConfig, not str",
        ),
    ],
)
def test_refusals(repo: pathlib.Path, jobs: str, final: str, expected: str) -> None:
    parser = legacy_parser(
        repo,
        IMPORTS
        + f"""
WORKFLOWS = {{'w': WorkflowConfig(jobs={jobs}, final_job_config={final},
                                 schedule=None)}}
""",
    )

    found = parser.validate()
    assert any(expected in p for p in found), found
    assert all("old_workflows.py:" in p for p in found), found


def test_bad_schedule_config(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo,
        IMPORTS
        + """
WORKFLOWS = {'w': WorkflowConfig(
    jobs={'a': JobConfig(CommandJobTemplate('a', 'true'))},
    final_job_config=None,
    schedule=ScheduleConfig('1d', datetime(2015, 1, 1)))}
""",
    )

    (problem,) = parser.validate()
    assert "old_workflows.py:12: workflow w: schedule recurrence must be a" in problem


def test_job_template_needs_the_repo_params(importable: pathlib.Path) -> None:
    (importable / "no_repo.py").write_text(EXAMPLE)
    parser = PythonParser({"workflows_config": "no_repo.WORKFLOWS"})

    found = parser.validate()
    assert any(
        "JobTemplate('ExamplePythonJob') needs parser_params job_repo_dir and "
        "job_import_dirs_config" in p
        for p in found
    )


def test_missing_job_class_is_named_with_a_suggestion(repo: pathlib.Path) -> None:
    source = EXAMPLE.replace("'ExampleCommandJob'", "'ExampleComandJob'")
    (problem,) = legacy_parser(repo, source).validate()

    assert "workflow example_workflow, job child_job:" in problem
    assert "job class 'ExampleComandJob'" in problem
    assert "did you mean 'ExampleCommandJob'?" in problem


def test_job_module_that_fails_to_import_is_named(repo: pathlib.Path) -> None:
    (repo / "repo_jobs" / "broken.py").write_text(
        "import os\nimport no_such_dependency\n"
    )

    found = legacy_parser(repo, EXAMPLE).validate()

    assert any(
        "broken.py:2: job module repo_jobs.broken failed to import" in p
        and "no_such_dependency" in p
        for p in found
    ), found


def test_import_dirs_config_that_is_not_a_list(repo: pathlib.Path) -> None:
    (repo / "odd_dirs.py").write_text("DIRS = 'jobs'\n")
    parser = legacy_parser(repo, EXAMPLE, job_import_dirs_config="odd_dirs.DIRS")

    (problem,) = parser.validate()
    assert "must name a list of folders, not str" in problem


def test_relative_job_repo_dir_starts_at_the_config(repo: pathlib.Path) -> None:
    (repo / "old_workflows.py").write_text(EXAMPLE)
    parser = PythonParser(
        {
            "workflows_config": "old_workflows.WORKFLOWS",
            "job_repo_dir": ".",
            "job_import_dirs_config": "repo_jobs.JOB_IMPORT_DIRS",
        },
        base_dir=repo,
    )

    assert parser.validate() == []
    tokens = jobs_by_name(parser.instance_tokens("example_workflow", "1"))
    assert tokens["parent_job"][1].command.startswith(f"cd {repo} && ")


def run_job(
    repo: pathlib.Path, parser: PythonParser, job: str
) -> subprocess.CompletedProcess[str]:
    tokens = jobs_by_name(parser.instance_tokens("example_workflow", "1"))
    return subprocess.run(
        ["/bin/sh", "-c", tokens[job][1].command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_job_runner_runs_the_class(repo: pathlib.Path) -> None:
    parser = legacy_parser(
        repo, EXAMPLE, end_date="2026-03-04", job_params={"flag": ""}
    )
    # A bare key (here made by an empty value's 'flag=') stays text; see below.
    done = run_job(repo, parser, "parent_job")

    assert done.returncode == 0, done.stderr
    assert "PINBALL:EVENT_ATTR:end=2026-03-04" in done.stdout

    child = run_job(repo, parser, "child_job")
    assert child.returncode == 0, child.stderr
    assert "--end_date=2026-03-04" in child.stdout


def test_job_runner_fails_with_the_job(repo: pathlib.Path) -> None:
    source = EXAMPLE.replace("'ExamplePythonJob'", "'FailingJob'")
    done = run_job(repo, legacy_parser(repo, source), "parent_job")

    assert done.returncode == 1
    assert "RuntimeError: the job failed on purpose" in done.stderr


def test_job_runner_names_a_missing_class(repo: pathlib.Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pinball_parser_python.job_runner",
            "--job_import_dirs_config=repo_jobs.JOB_IMPORT_DIRS",
            "--job_class_name=Nope",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert "no job class 'Nope'" in done.stderr


def test_job_params_text() -> None:
    assert parse_pairs("a=1,flag,b=x=y,") == {"a": "1", "flag": True, "b": "x=y"}


def test_job_classes_come_from_this_repo_not_an_earlier_one(
    repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    assert legacy_parser(repo, EXAMPLE).validate() == []

    # Another repository with a job package of the same name, other classes.
    other = tmp_path / "other_repo"
    (other / "repo_jobs").mkdir(parents=True)
    (other / "repo_jobs" / "__init__.py").write_text(
        JOBS.replace("ExamplePythonJob", "RenamedJob")
    )
    (other / "old_workflows.py").write_text(EXAMPLE)
    parser = PythonParser(
        {
            "workflows_config": "old_workflows.WORKFLOWS",
            "job_repo_dir": str(other),
            "job_import_dirs_config": "repo_jobs.JOB_IMPORT_DIRS",
        }
    )

    (problem,) = parser.validate()
    assert "job class 'ExamplePythonJob', which no module under" in problem
    assert f"{other / 'repo_jobs'} defines" in problem
