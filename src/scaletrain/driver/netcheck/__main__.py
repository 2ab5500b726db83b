"""``python -m scaletrain.netcheck``: see the package's docstring, and ``--help``."""

import sys

from scaletrain.driver.netcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
