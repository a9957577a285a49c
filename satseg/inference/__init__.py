"""satseg.inference."""
