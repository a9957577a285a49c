"""satseg: satellite image segmentation ETL, retraining and inference."""

__version__ = "0.1.0"
