"""satseg.monitoring."""
