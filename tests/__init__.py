"""K2 tests."""
