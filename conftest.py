"""Repository-wide pytest setup: register the E2E layer's plugin (options, hooks, summary).

Registered here, at the root, so `--e2e-*` options work whichever path pytest is given.
"""

pytest_plugins = ["tests.e2e.plugin"]
