"""Data: any source -> the columns a trainer wants; the synthetic tasks."""
