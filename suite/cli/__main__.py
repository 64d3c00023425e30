"""``python -m accessbench ...``: the same as ``python -m accessbench``."""

import sys

from .entry import main

if __name__ == "__main__":
    sys.exit(main())
