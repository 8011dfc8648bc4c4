"""Each study reproduces one section of bench/RESULTS.md with one command."""
