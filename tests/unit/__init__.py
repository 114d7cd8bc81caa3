"""Unit tests: no Docker."""
