"""A mapping read from YAML, checked against a dataclass: every key known (else a did-you-mean and the
valid keys of that section) and every value of its annotated type, nested sections built as they go.
The recipe's sections are such dataclasses (tinyalign.config.recipe); so are a data mix's entries."""

import dataclasses
import types
import typing
from collections import Counter
from typing import Literal, Union

from tinyalign.core.errors import UserError
from tinyalign.core.names import closest, did_you_mean

# The short names people type from other trainers' configs, for the TRL field each means
ALIASES = {"lr": "learning_rate", "epochs": "num_train_epochs", "num_epochs": "num_train_epochs",
           "batch_size": "per_device_train_batch_size", "bs": "per_device_train_batch_size",
           "grad_accum": "gradient_accumulation_steps", "gradient_accumulation": "gradient_accumulation_steps",
           "steps": "max_steps", "warmup": "warmup_steps", "wd": "weight_decay", "max_len": "max_length"}
LISTED = 40  # a section with more keys than this (a TRL config's 130-190) is named, not listed


def unknown_key(key: str, valid, where: str, listing: str | None = None) -> UserError:
    """The one-line error for `key`, unknown in section `where`: the likeliest meant key, then the valid
    keys; a long section (`listing` names it) shows only its keys that share a word with the typed one."""
    valid = sorted(valid)
    guess, hint = closest(key, valid, ALIASES), did_you_mean(key, valid, aliases=ALIASES)
    section = where.rstrip(".")
    if len(valid) <= LISTED:
        return UserError(f"unknown key `{where}{key}`: {hint}valid keys{' of ' + section if section else ''}: "
                         f"{', '.join(valid)}")
    common = Counter(word for name in valid for word in name.split("_"))  # "max", "eval": in too many to help
    words = {word for word in key.lower().split("_") if common[word] <= 6}
    related = [name for name in valid if words & set(name.split("_")) and name != guess][:8]
    return UserError(f"unknown key `{where}{key}`: {hint}{section} takes {listing or f'{len(valid)} keys'}"
                     + (f"; with a word of `{key}`: {', '.join(related)}" if related else ""))


def build(cls, raw, where: str):
    """Dataclass `cls` from mapping `raw`, checking keys and types; `where` prefixes key names in errors."""
    if not isinstance(raw, dict):
        raise UserError(f"`{where.rstrip('.') or 'recipe'}` must be a mapping, got {type(raw).__name__}: {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise unknown_key(str(key), names, where)
        kwargs[key] = coerce(value, hints[key], f"{where}{key}")
    return cls(**kwargs)


def coerce(value, tp, key: str):
    """Check `value` against annotation `tp`; build nested dataclasses. Ints are accepted as floats."""
    if dataclasses.is_dataclass(tp):
        return build(tp, value if value is not None else {}, key + ".")
    if tp in (list, dict) and value is None:  # `train:` with nothing under it: an empty section
        return tp()
    # a bare `dict` or `list` (train, generation) is checked as one too, not passed through
    origin, args = typing.get_origin(tp) or (tp if tp in (list, dict) else None), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except UserError as e:
                errors.append(e)
        raise UserError(f"`{key}` should be {type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise UserError(f"`{key}` should be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin in (list, dict):
        if not isinstance(value, origin):
            raise UserError(f"`{key}` should be a {'mapping' if origin is dict else 'list'}, got {value!r}")
        if origin is list and args:
            return [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise UserError(f"`{key}` should be {type_name(tp)}, got {value!r}")
    return value


def type_name(tp, null: bool = False) -> str:
    """`tp` in words: "an integer", "a list of strings"; `null` names a union's None too ("... or null")."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        return " | ".join(map(str, args))
    if typing.get_origin(tp) is list and args:  # list[str]: "a list of strings", not "a string"
        return f"a list of {type_name(args[0]).split(' ', 1)[-1]}s"
    if args:
        return " or ".join(type_name(a) for a in args if a is not type(None)) + (" or null" if null and type(None) in args else "")
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))
