"""``python -m pinball_core``: the same as the ``pinball`` command."""

import sys

from pinball_core.console import main

if __name__ == "__main__":
    sys.exit(main())
