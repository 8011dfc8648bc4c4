"""tinyalign: 4-bit QLoRA SFT, DPO and GRPO on one GPU, driven by YAML recipes."""

import logging

__version__ = "0.1.0"

# bitsandbytes warns at import, on every CPU box without the optional `kernels` package, that it
# falls back to its own 4-bit matmul: harmless, and it would stand before every one-line error.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
