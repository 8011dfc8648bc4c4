"""YAML recipe + `dotted.key=value` overrides -> a validated Recipe.

Every mistake a user can make in a recipe ends in a UserError naming the key (with a
did-you-mean and the valid keys of that section) before anything is downloaded or written.
"""

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml

from tinyalign.config.types import build, coerce, unknown_key
from tinyalign.core.errors import UserError
from tinyalign.core.names import did_you_mean

METHODS = ("sft", "dpo", "grpo", "rm")

# The built-in recipes ship inside the package, so an installed tinyalign has them too. In a checkout,
# the top-level `recipes` is a link to this folder.
BUILTIN = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class Lora:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Union[str, list[str]] = "all-linear"  # "all-linear": every linear layer but the head


@dataclass
class Model:
    name: str = ""  # hub id, local folder, or tiny:qwen2-1m
    quantization: Literal["4bit", "8bit", "none"] = "4bit"  # 4bit = NF4 with double quantisation
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"  # auto: models/precision.py
    backend: Literal["auto", "transformers", "unsloth"] = "auto"  # auto: unsloth when CUDA + unsloth
    lora: Lora = field(default_factory=Lora)
    adapter: Optional[str] = None  # start from this adapter (a run directory) instead of a fresh LoRA
    policy: Optional[str] = None  # reward models: start from this policy run (its LoRA merged into the base)
    chat_template: Optional[str] = None  # Jinja; default: the tokenizer's own
    max_seq_length: int = 2048


VOTE_STORES = (".sqlite", ".db", ".sqlite3")  # data.source suffixes read as the arena's vote store


@dataclass
class Data:
    source: str = ""  # hub id, local .jsonl/.json/.parquet/.csv, a vote store .sqlite, or tiny:addition
    config: Optional[str] = None
    split: str = "train"
    prompt: Optional[str] = None  # template over columns, e.g. "{question}"
    completion: Optional[str] = None  # SFT target template
    answer: Optional[str] = None  # GRPO reference template, passed to rewards as `answer`
    reply_start: Optional[str] = None  # GRPO: the reply's opening (a template); the model writes and learns the rest
    chosen: Optional[str] = None  # DPO columns (templates); default: the dataset's own
    rejected: Optional[str] = None
    messages: Optional[str] = None  # column already holding chat messages (SFT)
    system: Optional[str] = None  # system prompt put before every prompt
    dimension: Optional[str] = None  # a vote store's verdicts on one dimension (e.g. correctness), not the overall vote
    min_annotator_agreement: Optional[float] = None  # a vote store's annotators below this agreement (0..1) left out
    mismatched_pairs: bool = False  # reward models: also each prompt's chosen answer over another prompt's
    test_split: Optional[str] = None  # held-out split by name ...
    test_size: Optional[Union[int, float]] = None  # ... or carved from `split` (count or fraction)
    limit: Optional[int] = None  # use only the first N training rows
    mix: list[dict] = field(default_factory=list)  # blend in other data: [{source: ..., fraction: 0.1}] (share of the final set)
    curriculum: Optional[Literal["easy_to_hard"]] = None  # order training rows; choices: easy_to_hard
    curriculum_column: str = "difficulty"  # numeric column, higher = harder ...
    curriculum_probe: Optional[str] = None  # ... or a probe.json: its per-prompt pass rates rank the prompts


@dataclass
class Generation:  # sampling for probe, evaluate, sample and the app; unset: GRPO's train settings, else defaults
    max_new_tokens: Optional[int] = None
    temperature: Optional[float] = None  # 0 = greedy
    top_p: Optional[float] = None


@dataclass
class Recipe:
    method: Literal["sft", "dpo", "grpo", "rm"] = "sft"
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    rewards: list[dict] = field(default_factory=list)  # GRPO: [{name: math_accuracy, weight: 1.0}, ...]
    train: dict = field(default_factory=dict)  # passed to TRL's SFTConfig / DPOConfig / GRPOConfig
    generation: dict = field(default_factory=dict)  # keys and types of `Generation`, checked on load
    probe: bool = False  # GRPO: run the viability probe first and refuse to train on "no signal"
    force: bool = False  # GRPO: train even when the probe says "no signal"
    flat_groups: Optional[Literal["drop", "keep"]] = None  # GRPO: groups whose answers all score alike; unset: drop
    doctor: bool = True  # print the doctor's warnings while training
    seed: int = 42
    output_dir: str = ""
    overwrite: bool = False  # replace a finished run in output_dir
    resume: Union[bool, str] = False  # true: from the last checkpoint in output_dir; or a checkpoint path

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


REQUIRED = ("model.name", "data.source", "output_dir")


class RecipeLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads yes/no/on/off as booleans, which
    turns `save_strategy: no` into False."""


RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def _mapping_without_duplicates(loader, node, deep=False):
    """PyYAML keeps the last of two equal keys silently (two `train:` sections: the first is lost)."""
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen and key != "<<":
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (also on line {seen[key] + 1}); keep one", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


RecipeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


# ---------------------------------------------------------------- loading


def load(path, overrides=(), method: Optional[str] = None) -> Recipe:
    """Read a recipe file, apply overrides, check every key and type. `overrides`: the command line's
    `a.b=value` strings (each value read as YAML), or a mapping of the same dotted keys to values as they
    are (`{"train.max_steps": 30, "rewards": [{"name": "reward_model", "model": run_dir}]}`, a Path as its
    text): either way the result is checked as the YAML is."""
    raw = read_yaml(path)
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            set_key(raw, key, plain(value))
    else:
        for item in overrides:
            apply_override(raw, item)
    if method:
        if raw.setdefault("method", method) != method:
            raise UserError(f"{path} is a {raw['method']} recipe; run: python -m tinyalign.{raw['method']} {path}")
    elif "method" not in raw:
        raw["method"] = "grpo" if raw.get("rewards") else None
        if raw["method"] is None:
            raise UserError(f"{path}: say which method it is for: add `method: sft` (choices: {', '.join(METHODS)})")
    recipe = build(Recipe, raw, "")
    for key in REQUIRED:
        section, _, name = key.rpartition(".")
        if not getattr(getattr(recipe, section) if section else recipe, name):
            raise UserError(f"recipe is missing `{key}`")
    if recipe.rewards and recipe.method != "grpo":
        raise UserError(f"`rewards` apply to GRPO only; remove them from this {recipe.method} recipe")
    if recipe.model.policy and recipe.method != "rm":
        raise UserError(f"model.policy is the policy a reward model starts from; a {recipe.method} recipe starts "
                        "from model.adapter")
    if recipe.data.mismatched_pairs and recipe.method != "rm":
        raise UserError(f"data.mismatched_pairs adds pairs a reward model trains on; remove it from this {recipe.method} "
                        "recipe")
    if recipe.data.reply_start and recipe.method != "grpo":
        raise UserError(f"data.reply_start opens the reply GRPO's policy writes the rest of; remove it from this "
                        f"{recipe.method} recipe (SFT: put the opening in data.completion)")
    if recipe.flat_groups and recipe.method != "grpo":
        raise UserError(f"`flat_groups` applies to GRPO only; remove it from this {recipe.method} recipe")
    if recipe.data.dimension and Path(recipe.data.source).suffix not in VOTE_STORES:
        raise UserError(f"data.dimension picks a dimension of a vote store's verdicts; {recipe.data.source} is not a "
                        "vote store (.sqlite): remove data.dimension, or export the dimension with "
                        "python -m tinyalign.prefs export STORE --dimension NAME")
    if recipe.data.curriculum_probe and not recipe.data.curriculum:  # else it would train in the usual order, unsaid
        raise UserError("data.curriculum_probe ranks prompts for a curriculum; add data.curriculum: easy_to_hard, "
                        "or remove data.curriculum_probe")
    agreement = recipe.data.min_annotator_agreement
    if agreement is not None and Path(recipe.data.source).suffix not in VOTE_STORES:
        raise UserError(f"data.min_annotator_agreement leaves out annotators of a vote store; {recipe.data.source} is "
                        "not a vote store (.sqlite): remove it, or export with python -m tinyalign.prefs export STORE "
                        "--min-agreement SHARE")
    if agreement is not None and not 0 <= agreement <= 1:
        raise UserError(f"data.min_annotator_agreement is a share between 0 and 1 (0.7 = 70 % of an annotator's votes "
                        f"agree with gold or with the others), got {agreement}")
    if recipe.method == "grpo" and not recipe.rewards:
        raise UserError("a GRPO recipe needs `rewards`, e.g. [{name: exact_match, weight: 1.0}]")
    for i, spec in enumerate(recipe.rewards):  # TRL's reward_weights: each a number, or GRPO fails as it starts
        if "weight" in spec:
            spec["weight"] = coerce(spec["weight"], float, f"rewards[{i}].weight")
    check_train_keys(recipe)
    recipe.generation = {k: v for k, v in dataclasses.asdict(build(Generation, recipe.generation, "generation.")).items()
                         if v is not None}
    check_ranges(recipe)
    return recipe


def builtin(name: str) -> Path:
    """A built-in recipe (or accelerate config) by its name in the package, e.g. "tiny_sft.yaml"."""
    path = BUILTIN / name
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in BUILTIN.glob("*.yaml")))
        raise UserError(f"no built-in recipe {name!r}; the built-in recipes are {shipped}")
    return path


def locate(path) -> Path:
    """A recipe file as given; if there is none, the built-in recipe it names. `recipes/tiny_sft.yaml`
    (or `tiny_sft.yaml`) then means the shipped one from any folder, as it does in a checkout. Only
    those two spellings fall back: a user's own path that does not exist stays an error."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    parts = path.parts
    if len(parts) >= 2 and parts[0] == "recipes":
        parts = parts[1:]
    elif len(parts) != 1:
        return path
    shipped = BUILTIN.joinpath(*parts)
    return shipped if shipped.is_file() else path


def add_arguments(parser, run_dir: bool = False) -> None:
    """The positional arguments every recipe command takes: RECIPE (or RECIPE_OR_RUN) and overrides."""
    if run_dir:
        parser.add_argument("recipe", metavar="RECIPE_OR_RUN",
                            help="a recipe YAML, or a run directory (its recipe.yaml and final adapter)")
    else:
        parser.add_argument("recipe", metavar="RECIPE", help="recipe YAML, e.g. recipes/tiny_sft.yaml")
    parser.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted.key=value, e.g. train.max_steps=10 output_dir=/tmp/x")


def read_yaml(path) -> dict:
    path = locate(path)
    if path.is_dir():  # a run directory, say: its recipe is the file inside
        inside = f"; its recipe is {path / 'recipe.yaml'}" if (path / "recipe.yaml").is_file() else ""
        raise UserError(f"{path} is a folder, not a recipe file{inside}")
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=RecipeLoader)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise UserError(f"{path}{where}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a recipe is a mapping of sections (model, data, train, ...), got {type(raw).__name__}")
    return raw


def apply_override(raw: dict, item: str) -> None:
    """`train.max_steps=10` -> raw["train"]["max_steps"] = 10 (the value is read as YAML)."""
    key, eq, text = item.partition("=")
    if not eq or not key:
        raise UserError(f"override {item!r} is not key=value (e.g. train.max_steps=10)")
    if not all(part.strip() for part in key.split(".")):
        raise UserError(f"override {item!r}: {key!r} has an empty part; keys look like train.max_steps")
    try:
        value = yaml.load(text, Loader=RecipeLoader) if text else ""
    except yaml.YAMLError:
        value = text
    if isinstance(value, dict) and ":" not in text:  # a template like {question}, not a YAML mapping
        value = text
    set_key(raw, key, value)


def plain(value):
    """A value as YAML would hold it (a Path as its text), copied: the checks may rewrite it in place."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def set_key(raw: dict, key: str, value) -> None:
    """raw["train"]["max_steps"] = value for key `train.max_steps` (`rewards.0.model`: into a list)."""
    if not all(part.strip() for part in key.split(".")):
        raise UserError(f"override {key!r} has an empty part; keys look like train.max_steps")
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise UserError(f"override {key}: {part!r} is not a section")
        node = node.setdefault(part, {})
        if node is None:
            node = {}
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(f"override {key}: cannot set {last!r} here")


# ---------------------------------------------------------------- checking


def trl_config_class(method: str):
    import trl

    return {"sft": trl.SFTConfig, "dpo": trl.DPOConfig, "grpo": trl.GRPOConfig, "rm": trl.RewardConfig}[method]


def check_train_keys(recipe: Recipe) -> None:
    """Every `train:` key must be a field of the method's TRL config class, with a plausible type. A null
    for a field that cannot be None (`train.max_steps=null` over a recipe's `max_steps: 15`) means "not
    set": the key is dropped and the default applies, rather than TRL failing on None mid-start."""
    config_cls = trl_config_class(recipe.method)
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    for key, value in list(recipe.train.items()):
        if key not in fields:
            raise unknown_key(key, fields, "train.", f"the {len(fields)} fields of trl.{config_cls.__name__}")
        tp = fields[key].type
        held = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if value is not None and len(held) == 1 and type(None) in typing.get_args(tp):
            tp = held[0]  # `int | None` (num_generations, max_length): a value is checked as the type it holds
        if value is None and isinstance(tp, type):  # a plain type: Optional[...] fields keep their None
            del recipe.train[key]
        elif isinstance(tp, type) and tp in (int, float, bool) and value is not None:
            checked = coerce(value, tp, f"train.{key}")
            # an integer stays one (TRL's float fields take them: warmup_steps: 10 counts steps), so the
            # printed and saved recipe shows `10`, not `10.0`
            recipe.train[key] = value if tp is float and type(value) is int else checked
    if recipe.train.get("loss_type") is not None:
        check_loss_type(recipe.train["loss_type"], fields["loss_type"], config_cls.__name__)


def check_loss_type(value, field, config_name: str) -> None:
    """DPO and GRPO read `loss_type` only in their first training step, after run.start has cleared a run
    being overwritten, so a misspelt one is refused here: by the values its TRL config's help lists."""
    known = sorted(set(re.findall(r"(?<![=\w])'(\w+)'", field.metadata.get("help", ""))))  # not `level='sequence'`
    for name in value if isinstance(value, list) else [value]:
        if len(known) > 1 and name not in known:
            raise UserError(f"`train.loss_type`: unknown loss {name!r}; {did_you_mean(str(name), known)}trl.{config_name} takes {', '.join(known)}")


# Numbers with a range, wherever they sit in the recipe: (low, high, low included); checked when set.
AT_LEAST_1 = (1, None, True)
POSITIVE = (0, None, False)
NON_NEGATIVE = (0, None, True)
RANGES = {
    "model.max_seq_length": AT_LEAST_1, "model.lora.r": AT_LEAST_1, "model.lora.alpha": POSITIVE,
    "model.lora.dropout": (0, 1, True),
    "data.limit": AT_LEAST_1, "seed": NON_NEGATIVE,
    "generation.max_new_tokens": AT_LEAST_1, "generation.temperature": NON_NEGATIVE, "generation.top_p": (0, 1, False),
    "train.max_steps": AT_LEAST_1, "train.num_train_epochs": POSITIVE, "train.learning_rate": POSITIVE,
    "train.per_device_train_batch_size": AT_LEAST_1, "train.per_device_eval_batch_size": AT_LEAST_1,
    "train.gradient_accumulation_steps": AT_LEAST_1, "train.logging_steps": POSITIVE, "train.save_steps": POSITIVE,
    "train.eval_steps": POSITIVE, "train.save_total_limit": AT_LEAST_1, "train.warmup_steps": NON_NEGATIVE,
    "train.weight_decay": NON_NEGATIVE, "train.max_grad_norm": NON_NEGATIVE, "train.beta": NON_NEGATIVE,
    "train.num_generations": (2, None, True), "train.max_completion_length": AT_LEAST_1,
    "train.max_length": AT_LEAST_1, "train.temperature": NON_NEGATIVE, "train.top_p": (0, 1, False),
    "train.epsilon": NON_NEGATIVE, "train.epsilon_high": NON_NEGATIVE, "train.num_iterations": AT_LEAST_1,
    "train.generation_batch_size": AT_LEAST_1, "train.steps_per_generation": AT_LEAST_1,
}
HINTS = {"train.max_steps": " (leave it out to train for num_train_epochs)",
         "train.num_generations": " (GRPO compares answers within a group of at least 2)"}


def check_ranges(recipe: Recipe) -> None:
    """Counts and rates must make sense: `max_steps: -1`, a batch of 0 or `limit: 0` would train
    something other than what the user meant, or nothing, without a word."""
    tree = recipe.to_dict()
    for key, (low, high, low_included) in RANGES.items():
        node = tree
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or isinstance(node, bool) or not isinstance(node, (int, float)):
            continue
        if node < low or (node == low and not low_included) or (high is not None and node > high):
            bound = f"at least {low}" if low_included else f"above {low}"
            bound += f" and at most {high}" if high is not None else ""
            raise UserError(f"`{key}` should be {bound}, got {node!r}{HINTS.get(key, '')}")
    size = recipe.data.test_size
    if size is not None and (isinstance(size, bool) or size <= 0 or (isinstance(size, float) and size >= 1)):
        raise UserError(f"`data.test_size` should be a count (at least 1) or a fraction between 0 and 1, got {size!r}")


def write(recipe: Recipe, path) -> None:
    """Write the resolved recipe (what actually ran) next to the run's outputs."""
    from tinyalign.core.files import write_atomically

    write_atomically(path, yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True))
