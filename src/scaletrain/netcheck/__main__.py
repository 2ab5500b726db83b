"""``python -m scaletrain.netcheck``: runs scaletrain.driver.netcheck's command line."""

import sys

from scaletrain.driver.netcheck.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
