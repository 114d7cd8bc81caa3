"""`python -m k2.consumer`: see k2.consumer.cli."""

from k2.consumer.cli import main

raise SystemExit(main())
