"""Measurement: held-out solve rates and paired intervals, reward models on held-out pairs, pair splits."""
