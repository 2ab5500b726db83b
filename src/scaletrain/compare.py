"""``python -m scaletrain.compare RUN_OR_SWEEP_DIR...``: the user's command; the code is scaletrain.driver.compare."""

import sys

from scaletrain.driver.compare import main

if __name__ == "__main__":
    sys.exit(main())
