"""What tinyalign changes inside TRL, in one place."""
