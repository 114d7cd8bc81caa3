"""Utilities of the E2E harness."""
