"""Python job classes, as the original's job runner ran them."""

import datetime

from pinball_parser_python.jobs import CommandLineJob, PythonJob


class ExamplePythonJob(PythonJob):
    """Checks its parameters and passes a value downstream."""

    def _setup(self) -> None:
        # Every JobTemplate job gets end_date: parser_params' or yesterday's.
        datetime.date.fromisoformat(self.params["end_date"])

    def _execute(self) -> None:
        print(f"running for {self.params['end_date']}")
        print("PINBALL:EVENT_ATTR:answer=42", flush=True)


class ExampleCommandJob(CommandLineJob):
    """Runs a command with the job's parameters as --key=value arguments."""

    def _get_command(self) -> str:
        return "echo date is; date -u; echo arguments:"
