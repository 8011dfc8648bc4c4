"""What a tokenizer's chat template says about turns: where an assistant's answer ends.

Loading a model, converting a GGUF file, generating and the app's streaming all stop at the same
token, found here once from the template itself rather than trusted from the tokenizer's eos.
"""

from tinyalign.core.errors import UserError

_PROBE = "tinyalign-end-of-turn-probe"


def end_of_turn(tokenizer, name: str = "the model") -> str:
    """The token the chat template writes right after an assistant's answer: where generation must stop.

    A tokenizer's eos often is not it: GGUF SmolLM2 says eos = <|im_start|>, Qwen2.5 base says
    <|endoftext|>, while both end a chat turn with <|im_end|>.
    """
    from jinja2 import TemplateError

    cached = getattr(tokenizer, "_tinyalign_end_of_turn", None)
    if cached and cached[0] == tokenizer.chat_template:
        return cached[1]
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}]
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False)
    except TemplateError as e:
        raise UserError(f"{name}: its chat template fails on a user/assistant exchange: {e}") from None
    after = text.split(_PROBE, 1)[1] if _PROBE in text else ""
    ids = tokenizer(after, add_special_tokens=False).input_ids
    token = tokenizer.convert_ids_to_tokens(ids[0]) if ids else None
    special = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()}
    if token not in special:
        raise UserError(f"{name}: cannot find the end of turn in its chat template: after an answer it writes "
                        f"{after[:20]!r}, not a special token, and the tokenizer's eos is {tokenizer.eos_token!r}; "
                        f"set model.chat_template to one that ends each turn with a special token such as "
                        f"{tokenizer.eos_token}")
    tokenizer._tinyalign_end_of_turn = (tokenizer.chat_template, token)
    return token


def fix_special_tokens(tokenizer, name: str = "the model") -> None:
    """eos := the end of turn (so TRL and generate() stop there); pad := any other special token.

    A pad equal to the end of turn would make padding and the real end of an answer the same id.
    """
    eot = end_of_turn(tokenizer, name)
    if tokenizer.pad_token in (None, eot):
        vocab = tokenizer.get_vocab()
        spare = [tokenizer.pad_token, "<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", tokenizer.unk_token,
                 tokenizer.eos_token, tokenizer.bos_token]
        # nothing else in the vocabulary: pad stays the end of turn (TRL masks labels by attention, not by id)
        tokenizer.pad_token = next((t for t in spare if t in vocab and t != eot), eot)
    tokenizer.eos_token = eot


def stop_token_ids(model, tokenizer) -> list[int]:
    """Ids generation stops at: the template's end of turn first, then the model's own eos ids."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = eos if isinstance(eos, list) else [eos]
    ids = [tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer)), *eos]
    return list(dict.fromkeys(i for i in ids if i is not None))


def align_generation(model, tokenizer) -> None:
    """The model's configs agree with the tokenizer: every generate() (TRL's too) stops at the end of turn."""
    model.generation_config.eos_token_id = stop_token_ids(model, tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def as_message(role: str, content) -> list[dict]:
    """`content` as chat messages: a list of messages as it is, a text as one message of `role`."""
    return content if isinstance(content, list) else [{"role": role, "content": str(content)}]
