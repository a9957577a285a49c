"""Scene -> training patches: masks, windowed patching, balancing, split, manifest."""
