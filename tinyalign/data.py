"""Any source -> the columns a trainer wants, mapped by templates, without preprocessing code.

    SFT   prompt + completion (chat messages; TRL puts the loss on the completion only), or messages
    GRPO  prompt (chat messages) + answer (the reference, passed to the rewards)
    DPO   prompt + chosen + rejected (conversational preference rows)

Sources: a hub dataset id (+ config, split), a local .jsonl/.json/.parquet/.csv file, a folder of
`{split}.jsonl` files, a vote store (.sqlite/.db) from the app, or a `tiny:` task.
"""

import string
from pathlib import Path

from . import tiny
from .errors import UserError
from .recipe import Data

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
VOTE_STORES = (".sqlite", ".db", ".sqlite3")


def is_local(source: str) -> bool:
    return tiny.is_tiny(source) or Path(source).suffix in LOCAL_FORMATS or Path(source).suffix in VOTE_STORES \
        or source.startswith((".", "/", "~")) or Path(source).exists()


def load_split(spec: Data, split: str):
    """One split of the source as a datasets.Dataset."""
    import datasets

    source = spec.source
    if tiny.is_tiny(source):
        source = str(tiny.task_path(source))
    path = Path(source).expanduser()
    if path.suffix in VOTE_STORES:
        from .prefs import load_pairs

        if not path.is_file():
            raise UserError(f"data.source: vote store not found: {source}")
        return datasets.Dataset.from_list(load_pairs(path))
    if is_local(source):
        if path.is_dir():
            files = sorted(path.glob(f"{split}.*"))
            if not files:
                have = sorted({p.stem for p in path.iterdir() if p.suffix in LOCAL_FORMATS})
                raise UserError(f"data: no split {split!r} in {source}; splits there: {', '.join(have) or 'none'}")
            path = files[0]
        elif split != spec.split:  # a single file is a single split
            raise UserError(f"data.test_split: {source} is one file with no splits; use data.test_size instead")
        if not path.is_file():
            raise UserError(f"data.source: file not found: {spec.source}")
        fmt = LOCAL_FORMATS.get(path.suffix)
        if fmt is None:
            raise UserError(f"data.source: unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_FORMATS)}")
        try:
            return datasets.load_dataset(fmt, data_files=str(path), split="train")
        except Exception as e:  # pyarrow/json parse errors have no common base class
            raise UserError(f"data.source: cannot read {path}: {str(e).splitlines()[0]}") from None
    try:
        return datasets.load_dataset(source, spec.config, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as e:
        raise UserError(f"data.source: cannot load {source} split {split}: {str(e).splitlines()[0]}") from None


def template_columns(template: str | None) -> list[str]:
    if not template:
        return []
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError as e:
        raise UserError(f"data: bad template {template!r}: {e}") from None


def needed_columns(spec: Data, method: str) -> dict[str, list[str]]:
    """Recipe key -> the dataset columns it reads."""
    keys = {"sft": ("prompt", "completion"), "grpo": ("prompt", "answer"), "dpo": ("prompt", "chosen", "rejected")}
    needed = {k: template_columns(getattr(spec, k)) for k in keys[method]}
    if spec.messages:
        needed["messages"] = [spec.messages]
    return needed


def check_columns(dataset, spec: Data, method: str) -> None:
    have = dataset.column_names
    for key, columns in needed_columns(spec, method).items():
        for column in columns:
            if column not in have:
                raise UserError(f"data.{key} names column {column!r}, which {spec.source} lacks; "
                                f"its columns: {', '.join(have)}")
    if method == "dpo" and not (spec.chosen or {"chosen", "rejected"} <= set(have)):
        raise UserError(f"data: {spec.source} has no chosen/rejected columns ({', '.join(have)}); "
                        "set data.chosen and data.rejected")
    if method in ("sft", "grpo") and not (spec.prompt or spec.messages):
        raise UserError("data: say how to build the prompt: data.prompt (a template like \"{question}\")"
                        + (" or data.messages (a column of chat messages)" if method == "sft" else ""))


def prompt_messages(spec: Data, row: dict) -> list[dict]:
    messages = [{"role": "system", "content": spec.system}] if spec.system else []
    return messages + [{"role": "user", "content": spec.prompt.format_map(row)}]


def as_message(role: str, content) -> list[dict]:
    return content if isinstance(content, list) else [{"role": role, "content": str(content)}]


def to_rows(spec: Data, method: str):
    """A function mapping one raw row to the columns `method`'s trainer wants."""

    def sft(row):
        if spec.messages:
            messages = list(row[spec.messages])
            if spec.system and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": spec.system})
            return {"messages": messages}
        return {"prompt": prompt_messages(spec, row),
                "completion": [{"role": "assistant", "content": spec.completion.format_map(row)}]}

    def grpo(row):
        return {"prompt": prompt_messages(spec, row),
                "answer": spec.answer.format_map(row) if spec.answer else None}

    def dpo(row):
        prompt = prompt_messages(spec, row) if spec.prompt else as_message("user", row["prompt"])
        chosen = spec.chosen.format_map(row) if spec.chosen else row["chosen"]
        rejected = spec.rejected.format_map(row) if spec.rejected else row["rejected"]
        return {"prompt": prompt, "chosen": as_message("assistant", chosen),
                "rejected": as_message("assistant", rejected)}

    return {"sft": sft, "grpo": grpo, "dpo": dpo}[method]


def load(spec: Data, method: str, seed: int = 42):
    """(train, test or None), mapped to `method`'s columns. The test split is held out from training."""
    raw = load_split(spec, spec.split)
    check_columns(raw, spec, method)
    test = None
    if spec.test_split:
        test = load_split(spec, spec.test_split)
    elif spec.test_size:
        parts = raw.train_test_split(test_size=spec.test_size, seed=seed)
        raw, test = parts["train"], parts["test"]
    if spec.limit:
        raw = raw.select(range(min(spec.limit, len(raw))))
    convert = to_rows(spec, method)
    train = raw.map(convert, remove_columns=raw.column_names, desc="mapping data")
    if test is not None:
        test = test.map(convert, remove_columns=test.column_names, desc="mapping held-out data")
    return train, test


def eval_rows(spec: Data, limit: int | None = None, seed: int = 42) -> list[dict]:
    """Held-out rows as {prompt: messages, answer: str}, for probe, evaluate and the demo.

    Falls back to the training split when the recipe names no held-out split.
    """
    raw = load_split(spec, spec.test_split or spec.split)
    if spec.test_size and not spec.test_split:
        raw = raw.train_test_split(test_size=spec.test_size, seed=seed)["test"]
    if limit:
        raw = raw.select(range(min(limit, len(raw))))
    template = spec.answer or spec.completion  # the reference: GRPO's answer, else SFT's target
    return [{"prompt": prompt_messages(spec, row), "answer": template.format_map(row) if template else None,
             **row} for row in raw]
