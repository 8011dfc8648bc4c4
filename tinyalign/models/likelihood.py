"""How likely a language model finds an answer: the summed log-probability of its tokens after the prompt.

Used by DPO's implicit reward (rewards/implicit.py) and its benchmark: a reward read from the model's own
next-token predictions, where a small model's arithmetic lives, rather than from a scalar head.
"""

from tinyalign.models.precision import autocast


def encode(tokenizer, prompts: list, answers: list[str]) -> list[tuple[list[int], int]]:
    """Each chat rendered with its answer (and end of turn): (token ids, where the answer starts)."""
    rows = []
    for prompt, answer in zip(prompts, answers):
        head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=False)
        head_ids = tokenizer(head, add_special_tokens=False).input_ids
        full_ids = tokenizer(full, add_special_tokens=False).input_ids
        if full_ids[:len(head_ids)] != head_ids:  # a template that rewrites the prompt once an answer follows
            raise ValueError("the chat template's prompt is not a prefix of the prompt with its answer")
        rows.append((full_ids, len(head_ids)))
    return rows


def answer_logps(model, tokenizer, rows: list[tuple[list[int], int]], desc: str | None = None,
                 batch_size: int = 16) -> list[float]:
    """Summed log-probability of each encoded answer under `model` as it is (its active adapter)."""
    import torch
    from tqdm.auto import tqdm

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked out: any id will do
    device = next(model.parameters()).device
    totals = []
    for i in tqdm(range(0, len(rows), batch_size), desc=desc, leave=False, disable=desc is None):
        chunk = rows[i:i + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk], device=device)
        with torch.inference_mode(), autocast(model):
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        logps = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None])[..., 0]
        totals += [float(logps[row, start - 1:len(ids) - 1].sum()) for row, (ids, start) in enumerate(chunk)]
    return totals
