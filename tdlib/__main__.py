"""``python -m tdlib``."""

import sys

from tdlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
