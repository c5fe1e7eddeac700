"""Job classes of the original-style example; JOB_IMPORT_DIRS lists where."""

import os

#: The folders the job runner imports job classes from.
JOB_IMPORT_DIRS = [os.path.dirname(os.path.realpath(__file__))]
