"""`python -m k2.feed`: see k2.feed.cli."""

from k2.feed.cli import main

raise SystemExit(main())
