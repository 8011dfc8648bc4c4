"""Models and tokenizers: base + LoRA loading, dtype by hardware, GGUF, tiny models, chat templates, generation."""
