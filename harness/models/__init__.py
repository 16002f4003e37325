"""Models: resolving and loading base models (the embedded one included) and the run's checkpoints."""
