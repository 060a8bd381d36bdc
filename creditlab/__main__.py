"""``python -m creditlab``: the command line (:mod:`creditlab.cli`)."""

import sys

from creditlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
