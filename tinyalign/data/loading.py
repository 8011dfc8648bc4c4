"""Any source -> the columns a trainer wants, mapped by templates, without preprocessing code.

    SFT   prompt + completion (chat messages; TRL puts the loss on the completion only), or messages
    GRPO  prompt (chat messages) + answer (the reference, passed to the rewards)
    DPO   prompt + chosen + rejected (conversational preference rows)

Sources: a hub dataset id (+ config, split), a local .jsonl/.json/.parquet/.csv file, a folder of
`{split}.jsonl` files, a vote store (.sqlite/.db) from the app, or a `tiny:` task.
"""

import json
import random
import string
from pathlib import Path

from tinyalign.config.recipe import VOTE_STORES, Data
from tinyalign.config.types import build, unknown_key
from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.data import tasks
from tinyalign.data.messages import as_message, message_text
from tinyalign.models.tiny import is_tiny

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def is_local(source: str) -> bool:
    return is_tiny(source) or Path(source).suffix in LOCAL_FORMATS or Path(source).suffix in VOTE_STORES \
        or source.startswith((".", "/", "~")) or Path(source).exists()


def load_split(spec: Data, split: str):
    """One split of the source as a datasets.Dataset."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    source = spec.source
    if is_tiny(source):
        source = str(tasks.task_path(source))
    path = Path(source).expanduser()
    if path.suffix in VOTE_STORES:
        from tinyalign.votes.pairs import load_pairs

        if not path.is_file():
            raise UserError(f"data.source: vote store not found: {source}")
        return datasets.Dataset.from_list(load_pairs(path, spec.dimension, spec.min_annotator_agreement))
    if is_local(source):
        if path.is_dir():
            found = sorted(path.glob(f"{split}.*"))
            if not found:
                have = sorted({p.stem for p in path.iterdir() if p.suffix in LOCAL_FORMATS})
                raise UserError(f"data: no split {split!r} in {source}; splits there: {', '.join(have) or 'none'}")
            path = found[0]
        elif split != spec.split:  # a single file is a single split
            raise UserError(f"data.test_split: {source} is one file with no splits; use data.test_size instead")
        if not path.is_file():
            raise UserError(f"data.source: file not found: {spec.source}")
        fmt = LOCAL_FORMATS.get(path.suffix)
        if fmt is None:
            raise UserError(f"data.source: unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_FORMATS)}")
        if fmt in ("json", "csv"):
            files.check_utf8(path)
        verbosity = datasets.logging.get_verbosity()
        datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # it logs the parse error too: one line, ours
        try:
            rows = datasets.load_dataset(fmt, data_files=str(path), split="train")
        except Exception as e:  # pyarrow/json parse errors have no common base class
            if path.stat().st_size == 0 or not path.read_bytes().strip():
                raise UserError(f"data.source: {path} is empty; it needs one row per example") from None
            # "An error occurred while generating the dataset" says nothing: the parser's own error does
            cause = e.__cause__ if isinstance(e, DatasetGenerationError) and e.__cause__ else e
            raise UserError(f"data.source: cannot read {path}: {str(cause).splitlines()[0]}") from None
        finally:
            datasets.logging.set_verbosity(verbosity)
        if len(rows) == 0:
            raise UserError(f"data.source: {path} has no rows; it needs one row per example")
        return rows
    try:
        return datasets.load_dataset(source, spec.config, split=split)
    except (FileNotFoundError, ValueError, ConnectionError) as e:
        raise UserError(f"data.source: cannot load {source} split {split}: {str(e).splitlines()[0]}") from None


def fill(template: str, row: dict, key: str) -> str:
    """`template` filled from `row`; a column with no value is refused (it would train on the text "None")."""
    for column in template_columns(template):
        if row.get(column) is None:
            raise UserError(f"data.{key}: a row has no value in column {column!r} ({short(row)}); "
                            "fill it or drop the row")
    try:
        return template.format_map(row)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:  # {answer!z}, {n:d} over a text
        raise UserError(f"data.{key}: template {template!r} cannot be filled: {e}") from None


def short(row: dict) -> str:
    text = json.dumps(row, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def template_columns(template: str | None) -> list[str]:
    if not template:
        return []
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError as e:
        raise UserError(f"data: bad template {template!r}: {e}") from None


def needed_columns(spec: Data, method: str) -> dict[str, list[str]]:
    """Recipe key -> the dataset columns it reads."""
    keys = {"sft": ("prompt", "completion"), "grpo": ("prompt", "answer", "reply_start"),
            "dpo": ("prompt", "chosen", "rejected"), "rm": ("prompt", "chosen", "rejected")}
    needed = {k: template_columns(getattr(spec, k)) for k in keys[method]}
    if spec.messages:
        needed["messages"] = [spec.messages]
    return needed


def check_columns(dataset, spec: Data, method: str) -> None:
    have = dataset.column_names
    for key, columns in needed_columns(spec, method).items():
        for column in columns:
            if column not in have:
                whole = method in ("dpo", "rm") and {"prompt", "chosen", "rejected"} <= set(have)
                raise UserError(f"data.{key} names column {column!r}, which {spec.source} lacks; "
                                f"its columns: {', '.join(have)}" + (
                                    "; its rows are whole preference pairs already (a vote store, exported "
                                    "pairs): set data.prompt, data.chosen and data.rejected to null" if whole else ""))
    if method in ("dpo", "rm") and not spec.prompt and "prompt" not in have:
        raise UserError(f"data: {spec.source} has no prompt column ({', '.join(have)}); "
                        "set data.prompt to a template such as \"{question}\"")
    if method in ("dpo", "rm") and not (spec.chosen or {"chosen", "rejected"} <= set(have)):
        raise UserError(f"data: {spec.source} has no chosen/rejected columns ({', '.join(have)}); "
                        "set data.chosen and data.rejected")
    if method in ("sft", "grpo") and not (spec.prompt or spec.messages):
        raise UserError("data: say how to build the prompt: data.prompt (a template like \"{question}\")"
                        + (" or data.messages (a column of chat messages)" if method == "sft" else ""))


def prompt_messages(spec: Data, row: dict) -> list[dict]:
    messages = [{"role": "system", "content": spec.system}] if spec.system else []
    return messages + [{"role": "user", "content": fill(spec.prompt, row, "prompt")}]


def grpo_prompt(spec: Data, row: dict) -> list[dict]:
    """A GRPO prompt: the chat, and the reply's opening (data.reply_start) as its last message, where set."""
    begun = [{"role": "assistant", "content": fill(spec.reply_start, row, "reply_start")}] if spec.reply_start else []
    return prompt_messages(spec, row) + begun


def text_of(content) -> str:
    """The text of an answer or prompt, whether plain or chat messages (all its messages, joined)."""
    return message_text(content, join="")


def to_rows(spec: Data, method: str):
    """A function mapping one raw row to the columns `method`'s trainer wants."""

    def sft(row):
        if spec.messages:
            messages = row[spec.messages]
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
                # a text column would be split into one "message" per character and trained on as such
                raise UserError(f"data.messages: column {spec.messages!r} should hold chat messages "
                                f"[{{role, content}}, ...], got {short({spec.messages: messages})}")
            messages = list(messages)
            if spec.system and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": spec.system})
            return {"messages": messages}
        return {"prompt": prompt_messages(spec, row),
                "completion": [{"role": "assistant", "content": fill(spec.completion, row, "completion")}]}

    def grpo(row):
        return {"prompt": grpo_prompt(spec, row), "answer": fill(spec.answer, row, "answer") if spec.answer else None}

    def dpo(row):
        prompt = prompt_messages(spec, row) if spec.prompt else as_message("user", column(row, "prompt"))
        chosen = fill(spec.chosen, row, "chosen") if spec.chosen else column(row, "chosen")
        rejected = fill(spec.rejected, row, "rejected") if spec.rejected else column(row, "rejected")
        return {"prompt": prompt, "chosen": as_message("assistant", chosen),
                "rejected": as_message("assistant", rejected)}

    return {"sft": sft, "grpo": grpo, "dpo": dpo, "rm": dpo}[method]  # a reward model reads DPO's pairs


def column(row: dict, name: str):
    if row.get(name) is None:
        raise UserError(f"data: a row has no value in column {name!r} ({short(row)}); fill it or drop the row")
    return row[name]


def splits(spec: Data, seed: int = 42):
    """(train, held-out or None) raw rows: the named test split, or a seeded test_size carve of `split`.

    Training, probe, sample and evaluate all go through here, so they agree on what is held out.
    """
    raw = load_split(spec, spec.split)
    if spec.test_split:
        return raw, load_split(spec, spec.test_split)
    if spec.test_size:
        held_out = spec.test_size if isinstance(spec.test_size, int) else round(spec.test_size * len(raw))
        if not 1 <= held_out < len(raw):
            raise UserError(f"data.test_size {spec.test_size} holds out {held_out} of {len(raw)} rows of "
                            f"{spec.source}; leave at least one row on each side")
        if "prompt" in raw.column_names and len(set(map(_key, raw["prompt"]))) < len(raw):
            return _split_by_prompt(raw, held_out, seed)
        parts = raw.train_test_split(test_size=spec.test_size, seed=seed)
        return parts["train"], parts["test"]
    return raw, None


def _key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def held_out_by_prompt(prompts: list, held_out: int, seed: int) -> set[int]:
    """Indices of a seeded carve of whole prompts, at least `held_out` rows (one prompt always left to train).

    A vote with an edit gives two pairs of one prompt, and a held-out pair whose prompt was trained on
    measures memory, not judgement: every row of a prompt goes to the same side.
    """
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(_key(prompt), []).append(i)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    test: set[int] = set()
    for rows in order[:-1]:
        if len(test) >= held_out:
            break
        test.update(rows)
    return test


def _split_by_prompt(raw, held_out: int, seed: int):
    test = held_out_by_prompt(raw["prompt"], held_out, seed)
    return raw.select([i for i in range(len(raw)) if i not in test]), raw.select(sorted(test))


def load(spec: Data, method: str, seed: int = 42):
    """(train, test or None), mapped to `method`'s columns. The test split is held out from training."""
    raw, test = splits(spec, seed)
    check_columns(raw, spec, method)
    if spec.limit:
        raw = raw.select(range(min(spec.limit, len(raw))))
    raw = curriculum_order(raw, spec)
    convert = to_rows(spec, method)
    train = raw.map(convert, remove_columns=raw.column_names, desc="mapping data")
    train = mix_in(train, spec, method, seed)
    if test is not None:
        test = test.map(convert, remove_columns=test.column_names, desc="mapping held-out data")
    return train, test


def eval_rows(spec: Data, limit: int | None = None, seed: int = 42) -> list[dict]:
    """Held-out rows as {prompt: messages, answer: str}, for probe, evaluate and the demo.

    Falls back to the training split when the recipe names no held-out split.
    """
    train, test = splits(spec, seed)
    raw = test if test is not None else train
    if limit:
        raw = raw.select(range(min(limit, len(raw))))
    template = spec.answer or spec.completion  # the reference: GRPO's answer, else SFT's target
    return [{**row, "prompt": grpo_prompt(spec, row), "answer": fill(template, row, "answer") if template else None}
            for row in raw]


# ---------------------------------------------------------------- mixing and curriculum

MIX_KEYS = ("source", "fraction", "config", "split", "prompt", "completion", "answer", "system", "messages")


def mix_spec(spec: Data, entry, i: int) -> tuple[Data, float]:
    """One `data.mix` entry as a Data spec of its own (templates default to the main ones), and its fraction."""
    where = f"data.mix[{i}]"
    if not isinstance(entry, dict) or not entry.get("source"):
        raise UserError(f"`{where}` should be a mapping like {{source: tiny:subtraction, fraction: 0.1}}, got {entry!r}")
    for key in entry:
        if key not in MIX_KEYS:
            raise unknown_key(str(key), MIX_KEYS, where + ".")
    fraction = entry.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise UserError(f"`{where}.fraction` should be a number between 0 and 1 (its share of the final "
                        f"training set), got {fraction!r}")
    inherited = {k: getattr(spec, k) for k in ("prompt", "completion", "answer", "system", "messages")}
    own = {k: v for k, v in entry.items() if k != "fraction"}
    return build(Data, {**inherited, **own}, where + "."), float(fraction)


def mix_in(train, spec: Data, method: str, seed: int):
    """Blend `data.mix` sources into the mapped training rows; each takes its fraction of the final set.

    Anchoring data (general prompts) keeps SFT and GRPO from forgetting what the base could do. Rows are
    shuffled together, or, under a curriculum, the mixed-in rows are spread evenly through the ordered ones.
    """
    if not spec.mix:
        return train
    if method not in ("sft", "grpo"):
        raise UserError(f"data.mix blends extra prompts into SFT or GRPO data, not {method}; remove it")
    import datasets

    parts = [mix_spec(spec, entry, i) for i, entry in enumerate(spec.mix)]
    total = sum(fraction for _, fraction in parts)
    if total >= 1:
        raise UserError(f"data.mix fractions add up to {total:g}; each is a share of the final set, so their sum "
                        "must stay below 1")
    final_size = round(len(train) / (1 - total))
    blocks = []
    for i, (mixed, fraction) in enumerate(parts):
        raw = load_split(mixed, mixed.split)
        try:
            check_columns(raw, mixed, method)
        except UserError as e:
            raise UserError(f"data.mix[{i}]: {e}") from None
        if len(raw) == 0:
            raise UserError(f"data.mix[{i}]: {mixed.source} split {mixed.split} has no rows")
        wanted = round(fraction * final_size)
        if wanted > len(raw):
            print(f"data.mix[{i}]: {mixed.source} has {len(raw)} rows, {wanted} wanted; repeating some")
        raw = raw.shuffle(seed=seed)
        raw = raw.select([j % len(raw) for j in range(wanted)])
        rows = raw.map(to_rows(mixed, method), remove_columns=raw.column_names, desc=f"mapping data.mix[{i}]")
        if set(rows.column_names) != set(train.column_names):
            raise UserError(f"data.mix[{i}] gives {'/'.join(rows.column_names)} rows but the main data gives "
                            f"{'/'.join(train.column_names)}; give it the same kind of template")
        blocks.append(rows.cast(train.features))  # e.g. a missing `answer` (null) becomes a string column
    mixed_rows = datasets.concatenate_datasets(blocks).shuffle(seed=seed)
    combined = datasets.concatenate_datasets([train, mixed_rows])
    if not spec.curriculum:
        return combined.shuffle(seed=seed)
    # Spread the mixed-in rows evenly over the curriculum: row j of m sits at (j + 0.5) / m of the way.
    n, m = len(train), len(mixed_rows)
    position = [(i + 0.5) / n for i in range(n)] + [(j + 0.5) / m for j in range(m)]
    return combined.select(sorted(range(n + m), key=position.__getitem__))


def curriculum_order(raw, spec: Data):
    """Raw training rows easiest first: by `curriculum_column` (higher = harder), or by a probe's pass rate.

    The order only survives training if the trainer keeps it: see `trainer_order`.
    """
    if not spec.curriculum:
        return raw
    if spec.curriculum_probe:
        rates = probe_pass_rates(spec.curriculum_probe)
        keys = [rates.get(fill(spec.prompt, row, "prompt")) for row in raw] if spec.prompt else []
        if not any(key is not None for key in keys):
            raise UserError(f"data.curriculum_probe: no training prompt of {spec.source} appears in "
                            f"{spec.curriculum_probe}; probe this recipe's data")
        unseen = sum(key is None for key in keys)
        if unseen:
            print(f"curriculum: {unseen} of {len(keys)} prompts were not probed; they go last")
        # Higher pass rate = easier = earlier; unprobed prompts after all probed ones.
        order = sorted(range(len(keys)), key=lambda i: (keys[i] is None, -(keys[i] or 0.0)))
        return raw.select(order)
    column = spec.curriculum_column
    if column not in raw.column_names:
        raise UserError(f"data.curriculum_column: {spec.source} has no column {column!r}; its columns: "
                        f"{', '.join(raw.column_names)} (or set data.curriculum_probe to a probe.json)")
    values = raw[column]
    bad = next((v for v in values if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))), None)
    if bad is not None:
        raise UserError(f"data.curriculum_column: {column!r} must hold numbers (higher = harder), found {bad!r}")
    return raw.select(sorted(range(len(values)), key=lambda i: (values[i] is None, values[i] or 0)))


def probe_pass_rates(path) -> dict[str, float]:
    """{prompt text: pass rate} from a probe.json's `per_prompt` list."""
    path = Path(path).expanduser()
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"data.curriculum_probe: cannot read {path}: {e}") from None
    per_prompt = report.get("per_prompt") if isinstance(report, dict) else None
    if not per_prompt:
        raise UserError(f"data.curriculum_probe: {path} has no per-prompt pass rates (`per_prompt`); "
                        "re-run python -m tinyalign.probe with --out")
    return {message_text(entry["prompt"]):
            float(entry["pass_rate"]) for entry in per_prompt}


def trainer_order(spec: Data, method: str) -> dict:
    """TRL settings that keep the data's order: trainers shuffle by default, which would undo a curriculum."""
    if not spec.curriculum:
        return {}
    return {"sft": {"train_sampling_strategy": "sequential"}, "grpo": {"shuffle_dataset": False}}.get(method, {})
