"""What a run is, as typed data: the config schema, the checkpoint manifest and the eval results."""
