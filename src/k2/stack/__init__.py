"""Tooling that makes the K2 docker stack exist: engine, compose v2, base and service images.

Everything here is written for a machine that may have no container registry: images are
built from package registries only, and a laptop that can pull keeps using pulled images.
"""
