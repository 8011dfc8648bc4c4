"""tinyalign: 4-bit QLoRA SFT, DPO and GRPO on one GPU, driven by YAML recipes."""

__version__ = "0.1.0"
