"""Speed and memory of tinyalign against plain TRL, side by side in one run."""
