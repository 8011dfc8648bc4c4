"""Research harnesses the loop and the demos drive: the simulated annotators, the loop's tasks."""
