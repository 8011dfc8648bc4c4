"""The ground every room stands on: one-line errors, safe writes, the console, CPU threads, a run's logs read back."""
