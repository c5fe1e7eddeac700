"""Python jobs of the example workflows in ``examples/``.

Workers import them by ``module:function``, so the folder ``examples`` must
be on the workers' ``PYTHONPATH``. Each job writes under
``$PINBALL_EXAMPLES_OUT/<workflow>/<instance>/`` (default
``/tmp/pinball-examples``), so instances never share files.
"""

import os
import pathlib

#: The data files shipped with the examples.
DATA_DIR = pathlib.Path(__file__).resolve().parent.parent / "data"


def run_dir() -> pathlib.Path:
    """This instance's own folder for the files its jobs pass on, made if new."""
    root = pathlib.Path(os.environ.get("PINBALL_EXAMPLES_OUT", "/tmp/pinball-examples"))
    folder = (
        root
        / os.environ.get("PINBALL_WORKFLOW", "no_workflow")
        / os.environ.get("PINBALL_INSTANCE", "no_instance")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
