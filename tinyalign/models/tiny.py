"""Offline tiny models, built locally and deterministically.

Recipes name them like hub ids, with a `tiny:` prefix:

    model: {name: tiny:qwen2-1m}        # a ~0.8 M-parameter Qwen2 with a byte-level tokenizer

On first use each is written under `$TINYALIGN_HOME` (default `~/.cache/tinyalign`) as an ordinary
Hugging Face model folder, so everything downstream takes the same code path as a real model: 4-bit
loading, LoRA, chat templates, TRL. The tiny tasks it is trained on (`tiny:addition`, ...) are data:
tinyalign.data.tasks.
"""

import random
import sys
import time
from pathlib import Path

from tinyalign.core.files import build_atomically
from tinyalign.core.files import tinyalign_home as home

# ChatML, as Qwen uses, without Qwen's default system prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# ~1-3 min once on CPU; afterwards the base answers 99.5 % of held-out sums with the right digits.
PRETRAIN_STEPS = 1500

BUILD_VERSION = 1  # bump whenever the build changes, so cached copies of the old one are not reused

MODELS = {
    # hidden 128, 4 layers: big enough to learn 2-digit arithmetic in a minute of CPU training.
    "tiny:qwen2-1m": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=2),
}


def is_tiny(name) -> bool:
    """Whether a model or data source names a tiny one (`tiny:...`)."""
    return isinstance(name, str) and name.startswith("tiny:")




def addition_sums(seed: int = 0) -> dict[str, list[tuple[int, int]]]:
    """Every (a, b) with 0 <= a, b < 100, shuffled; the first 500 are held out (`test`): the tiny model is
    pretrained on the rest only, and the `tiny:addition` task (tinyalign.data.tasks) splits the same way."""
    pairs = [(a, b) for a in range(100) for b in range(100)]
    random.Random(seed).shuffle(pairs)
    return {"test": pairs[:500], "train": pairs[500:]}


# ---------------------------------------------------------------- models


def build_tokenizer():
    """Byte-level tokenizer with no merges (every UTF-8 byte is a token) plus ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=512,
    )
    # Role names are single tokens, as in real chat tokenizers: shorter sequences, faster tiny runs.
    tokenizer.add_tokens(["system", "user", "assistant"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(name: str, out: Path, pretrain_steps: int = PRETRAIN_STEPS) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    config = Qwen2Config(
        vocab_size=(vocab + 7) // 8 * 8,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODELS[name],
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls gain nothing from threads; one thread also keeps the build reproducible
    try:
        pretrain(model, tokenizer, steps=pretrain_steps)
    finally:
        torch.set_num_threads(threads)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def pretrain(model, tokenizer, steps: int, batch_size: int = 32, lr: float = 2e-3) -> None:
    """Make the base like a real pretrained model: it has the skill, not the house style.

    It is trained on chat transcripts of addition answered as "46 (12+34)", so it can add, but
    never answers with just the number. Exact-match accuracy of the base is ~0; SFT must teach
    the concise style, and GRPO/DPO can sharpen it. Held-out questions are never shown, so
    held-out accuracy measures the skill, not memory. The loss is on the answers only.
    """
    import torch

    rows = [{"question": f"{a}+{b}", "answer": str(a + b)} for a, b in addition_sums()["train"]]
    random.Random(0).shuffle(rows)
    encode = lambda text: tokenizer(text, add_special_tokens=False).input_ids
    pairs = [(encode(tokenizer.apply_chat_template([{"role": "user", "content": r["question"]}],
                                                   tokenize=False, add_generation_prompt=True)),
              encode(f"{r['answer']} ({r['question']}){tokenizer.eos_token}")) for r in rows]
    width = max(len(p) + len(t) for p, t in pairs)
    ids = torch.full((len(pairs), width), tokenizer.pad_token_id)
    labels = torch.full((len(pairs), width), -100)
    for i, (p, t) in enumerate(pairs):
        ids[i, : len(p) + len(t)] = torch.tensor(p + t)
        labels[i, len(p): len(p) + len(t)] = torch.tensor(t)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05)
    model.train()
    for step in range(steps):
        start = step * batch_size % len(ids)
        loss = model(input_ids=ids[start:start + batch_size], labels=labels[start:start + batch_size]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    model.eval()


def model_path(name: str) -> Path:
    """Local folder of tiny model `name`, built on first use."""
    if name not in MODELS:
        from tinyalign.core.errors import UserError
        raise UserError(f"unknown tiny model {name!r}; tiny models: {', '.join(MODELS)}")
    target = home() / "models" / f"{name.split(':', 1)[1]}-v{BUILD_VERSION}"
    if target.exists():
        return target
    # Once per machine, and long enough to look like a hang inside whatever command asked for it: say so.
    print(f"building {name} once (~1-3 min on CPU) into {target}; later runs reuse it", file=sys.stderr, flush=True)
    began = time.time()
    build_atomically(target, lambda d: build_model(name, d))
    print(f"built {name} in {time.time() - began:.0f} s", file=sys.stderr, flush=True)
    return target
