"""satseg.ingest."""
