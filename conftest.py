"""Repository-wide pytest setup: K2's additions to the e2e_stack plugin.

Registered here, at the root, so `--e2e-freshness-slo` works whichever path pytest is given.
The e2e_stack plugin itself loads through its entry point, configured in pyproject.toml.
"""

pytest_plugins = ["tests.e2e.k2_plugin"]
