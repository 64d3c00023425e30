"""``python -m accessbench ...`` (and ``torchrun -m accessbench ...``): the ``accessbench`` command line."""

import sys

from accessbench.suite.cli import main

if __name__ == "__main__":
    sys.exit(main())
