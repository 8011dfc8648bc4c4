"""Batched generation from chat prompts, shared by the demo, probe, evaluate, sample and the app."""

from tqdm.auto import tqdm

from tinyalign.models.chat_template import stop_token_ids
from tinyalign.models.precision import autocast

# A batch's prompts that open with this many tokens alike are prefilled once where asked (`prefilled`): on a CPU the
# prefill of a judge's instructions for every pair costs about what decoding its judgements does.
SHARED_PREFIX = 16


def render(tokenizer, messages: list[dict]) -> str:
    """The chat as the model's input, up to where its reply goes; a last assistant message is a reply already
    begun (data.reply_start), which the model continues."""
    *chat, last = messages
    if last["role"] == "assistant":
        return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + last["content"]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def begun_as_text(rows, tokenizer):
    """GRPO rows whose chat prompt ends in a reply already begun, as plain-text prompts that end with its
    opening: TRL renders a chat prompt only up to a new assistant turn."""
    return rows.map(lambda row: {"prompt": render(tokenizer, row["prompt"])}, desc="opening each reply")


def generation_settings(recipe) -> dict:
    """Sampling settings shared by probe, evaluate and the app: the recipe's `generation:`, else its
    GRPO settings, else short defaults."""
    train = recipe.train
    return {
        "max_new_tokens": recipe.generation.get("max_new_tokens", train.get("max_completion_length", 256)),
        "temperature": recipe.generation.get("temperature", train.get("temperature", 1.0)),
        "top_p": recipe.generation.get("top_p", train.get("top_p", 1.0)),
    }


def generate(model, tokenizer, prompts: list[list[dict]], *, k: int = 1, max_new_tokens: int = 64,
             temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64, desc: str | None = None,
             share_prefix: bool = False) -> list[list[str]]:
    """k completions per chat prompt (greedy when temperature is 0), as plain text, each ending at
    the chat template's end of turn (or at max_new_tokens). `share_prefix`: see continue_texts."""
    return continue_texts(model, tokenizer, [render(tokenizer, p) for p in prompts], k=k, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, batch_size=batch_size, desc=desc,
                          share_prefix=share_prefix)


def continue_texts(model, tokenizer, texts: list[str], *, k: int = 1, max_new_tokens: int = 64,
                   temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64, desc: str | None = None,
                   share_prefix: bool = False) -> list[list[str]]:
    """generate() from texts already rendered, e.g. a chat prompt with the start of its reply written.

    `share_prefix`: on a CPU, the tokens a batch's texts open alike are prefilled once (`prefilled`). Off by
    default: in bf16 a batch computed another way rounds differently, and greedy answers then part from those
    of the arena, evaluate and sample, which must agree; a judge asking its fixed instructions turns it on."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    sampling = temperature > 0
    results: list[list[str]] = []
    per_batch = max(1, batch_size // k)
    device = next(model.parameters()).device
    stop = stop_token_ids(model, tokenizer)
    with torch.inference_mode(), autocast(model):
        for start in tqdm(range(0, len(texts), per_batch), desc=desc, disable=desc is None, leave=False):
            chunk = texts[start:start + per_batch]
            inputs = prefilled(model, tokenizer, chunk, k) if share_prefix and device.type == "cpu" else None
            if inputs is None:
                inputs = {**tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device),
                          "num_return_sequences": k}
            out = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=sampling,
                temperature=temperature if sampling else None, top_p=top_p if sampling else None, top_k=None,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=stop,
            )
            decoded = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            results.extend(decoded[i:i + k] for i in range(0, len(decoded), k))
    return results


def prefilled(model, tokenizer, texts: list[str], k: int) -> "dict | None":
    """generate()'s inputs for `texts`, each k times, with the tokens they all open with (a judge's
    instructions, a system prompt) run once and cached: rows of [shared][padding][own], which generate
    positions by the attention mask as if unpadded. None where they share fewer than SHARED_PREFIX tokens."""
    import torch
    from transformers import DynamicCache

    ids = tokenizer(texts, add_special_tokens=False).input_ids
    shared = min(common_prefix(ids), min(map(len, ids)) - 1)  # every row keeps a token of its own to start from
    if shared < SHARED_PREFIX or len(ids) * k < 2:
        return None
    own = [row[shared:] for row in ids]
    width = max(map(len, own))
    rows = [ids[0][:shared] + [tokenizer.pad_token_id] * (width - len(o)) + o for o in own]
    mask = [[1] * shared + [0] * (width - len(o)) + [1] * len(o) for o in own]
    device = next(model.parameters()).device
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([ids[0][:shared]], device=device), past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_repeat_interleave(len(rows) * k)
    return {"input_ids": torch.tensor(rows, device=device).repeat_interleave(k, 0),
            "attention_mask": torch.tensor(mask, device=device).repeat_interleave(k, 0), "past_key_values": cache}


def common_prefix(rows: list[list[int]]) -> int:
    """How many tokens every row opens with."""
    first = rows[0]
    for n, column in enumerate(zip(*rows)):
        if any(token != first[n] for token in column):
            return n
    return min(map(len, rows))
