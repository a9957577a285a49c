"""Shared I/O helpers: atomic writes, hashing, progress reporting."""
