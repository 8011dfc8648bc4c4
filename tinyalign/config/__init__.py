"""Recipes: YAML + overrides -> a validated Recipe, and the type checks behind it."""
