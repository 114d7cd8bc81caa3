"""Allow `python -m k2.stack`."""

import sys

from k2.stack.cli import main

sys.exit(main())
