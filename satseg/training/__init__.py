"""satseg.training."""
