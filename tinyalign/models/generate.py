"""Batched generation from chat prompts, shared by the demo, probe, evaluate, sample and the app."""

from tqdm.auto import tqdm

from tinyalign.models.chat_template import stop_token_ids
from tinyalign.models.precision import autocast


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
             ) -> list[list[str]]:
    """k completions per chat prompt (greedy when temperature is 0), as plain text, each ending at
    the chat template's end of turn (or at max_new_tokens)."""
    return continue_texts(model, tokenizer, [render(tokenizer, p) for p in prompts], k=k, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, batch_size=batch_size, desc=desc)


def continue_texts(model, tokenizer, texts: list[str], *, k: int = 1, max_new_tokens: int = 64,
                   temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64, desc: str | None = None,
                   ) -> list[list[str]]:
    """generate() from texts already rendered, e.g. a chat prompt with the start of its reply written."""
    import torch

    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    sampling = temperature > 0
    results: list[list[str]] = []
    per_batch = max(1, batch_size // k)
    device = next(model.parameters()).device
    stop = stop_token_ids(model, tokenizer)
    with torch.inference_mode(), autocast(model):
        for start in tqdm(range(0, len(texts), per_batch), desc=desc, disable=desc is None, leave=False):
            batch = tokenizer(texts[start:start + per_batch], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=sampling, num_return_sequences=k,
                temperature=temperature if sampling else None, top_p=top_p if sampling else None, top_k=None,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=stop,
            )
            decoded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            results.extend(decoded[i:i + k] for i in range(0, len(decoded), k))
    return results
