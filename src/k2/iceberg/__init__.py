"""Iceberg: the trades table K2 writes and serves."""
