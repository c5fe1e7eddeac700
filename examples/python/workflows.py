"""The example workflows of ``examples/yaml``, written with the Python API.

They make the same tokens as the YAML files (a test checks it), so either
config runs the same workflows::

    pinball -c examples/pinball-python.yaml workflow validate
"""

from datetime import datetime, timedelta

from pinball_parser_python import Schedule, Workflow

# Where the condition example's files go; see examples/README.md.
_OUT = "${PINBALL_EXAMPLES_OUT:-/tmp/pinball-examples}"
_RUN_DIR = f"{_OUT}/$PINBALL_WORKFLOW/$PINBALL_INSTANCE"

# -- Passing values between jobs ------------------------------------------------

pass_params = Workflow("pass_params_between_jobs")
cmd_parent = pass_params.shell(
    "cmd_parent", "echo PINBALL:EVENT_ATTR:a_cmd_key=a_cmd_value"
)
python_parent = pass_params.python("python_parent", "pinball_examples.params:emit")
pass_params.shell(
    "child",
    'echo "got %(a_cmd_key)s and %(a_python_key)s" && '
    'test "%(a_cmd_key)s %(a_python_key)s" = "a_cmd_value a_python_value"',
    depends_on=[cmd_parent, python_parent],
)

# -- A data pipeline over data/sales.csv ------------------------------------------

pipeline = Workflow("sales_pipeline")
extract = pipeline.python("extract", "pinball_examples.pipeline:extract")
transform = pipeline.python(
    "transform", "pinball_examples.pipeline:transform", depends_on=[extract]
)
pipeline.python("check", "pinball_examples.pipeline:check", depends_on=[transform])
pipeline.shell(
    "summary", "echo kept %(rows)s rows, dropped %(dropped)s", depends_on=[extract]
)

# -- A condition job -------------------------------------------------------------

condition = Workflow("wait_for_file")
condition.shell(
    "produce",
    f'd="{_RUN_DIR}"; mkdir -p "$d" && sleep 2 && '
    'echo "data is ready" > "$d/ready.flag"',
)
file_is_there = condition.condition(
    "file_is_there",
    f'test -f "{_RUN_DIR}/ready.flag"',
    max_attempts=60,
    retry_delay_sec=1,
)
condition.shell("consume", f'cat "{_RUN_DIR}/ready.flag"', depends_on=[file_is_there])

# -- Retries -----------------------------------------------------------------------

flaky = Workflow("flaky_service")
call_service = flaky.python(
    "call_service",
    "pinball_examples.flaky:fails_twice",
    max_attempts=3,
    retry_delay_sec=1,
)
flaky.shell("report", "echo the service call succeeded", depends_on=[call_service])

# -- Scheduled workflows --------------------------------------------------------------

nightly = Workflow(
    "nightly_report",
    schedule=Schedule(
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        overrun_policy="SKIP",
        max_running_instances=1,
    ),
    emails=["data-team@example.com"],
)
snapshot = nightly.shell("snapshot", "date -u +%Y-%m-%dT%H:%M:%SZ")
nightly.shell("publish", "echo report published", depends_on=[snapshot])

heartbeat = Workflow(
    "hourly_heartbeat",
    schedule=Schedule(
        every=timedelta(hours=1),
        start=datetime(2026, 1, 1),
        overrun_policy="DELAY",
    ),
)
heartbeat.shell("beat", "echo alive", warn_timeout_sec=60, abort_timeout_sec=300)

WORKFLOWS = [pass_params, pipeline, condition, flaky, nightly, heartbeat]
