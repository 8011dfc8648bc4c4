"""The run directory: checks before a run, its start, TRL configs, callbacks, the atomic save."""
