"""``python -m hivemind_core`` — the command line."""

import sys

from hivemind_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
