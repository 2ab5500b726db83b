"""``python -m scaletrain.scaling``: runs scaletrain.driver.scaling's command line."""

import sys

from scaletrain.driver.scaling.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
