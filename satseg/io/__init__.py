"""Shared I/O: the scene reader, band scaling, GDAL settings, the fork pool, atomic writes,
hashing, progress reporting."""
