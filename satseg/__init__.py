"""satseg: satellite image segmentation ETL, retraining and inference."""

from satseg import logs as _logs

__version__ = "0.1.0"

_logs.install()  # every satseg log message on one line, whatever names it quotes
