"""Scalar reward models on disk: load one, score answers with it, measure it on held-out pairs.

A reward-model run directory (python -m tinyalign.rm) holds a LoRA adapter for a sequence-classification
head (`score`, one output) on the recipe's base, saved with the adapter, and `rm_metrics.json`:

    accuracy       held-out pairs where the chosen answer scored above the rejected one
    mean_margin    mean of chosen - rejected scores
    length_bias    how often the longer answer scored higher vs. how often people chose it
    score_mean, score_std   of every held-out answer's score: a GRPO reward normalises with these

Training (rm.py), the GRPO reward (rewards/reward_model.py), evaluate and the doctor read it from here.
"""

import json
from pathlib import Path
from statistics import mean, median, pstdev

from .errors import UserError
from .recipe import Model

METRICS = "rm_metrics.json"


# ---------------------------------------------------------------- loading


def load_base(spec: Model):
    """The recipe's base as a one-output sequence classifier (a fresh `score` head), quantised as it says."""
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from . import model

    with suppress_seqcls_warning():  # a causal LM has no `score` weights: the new head is expected
        return model.load_base(spec, auto_class=AutoModelForSequenceClassification, num_labels=1)


def tokenizer_for(spec: Model, base, source: str | None = None):
    """The chat tokenizer, and the model told its pad id: the head reads the last non-pad token."""
    from . import model

    tokenizer = model.load_tokenizer(spec, source)
    base.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def lora_config(spec: Model):
    from peft import LoraConfig

    # SEQ_CLS + modules_to_save: the new head is trained in full and saved with the adapter;
    # without it the head would stay at its random initial weights.
    return LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                      target_modules=spec.lora.target_modules, task_type="SEQ_CLS", modules_to_save=["score"])


def is_reward_model(folder) -> bool:
    config = Path(folder) / "adapter_config.json"
    return config.is_file() and json.loads(config.read_text()).get("task_type") == "SEQ_CLS"


def load_for_training(spec: Model, gradient_checkpointing: bool = False):
    """(classifier with a trainable LoRA adapter and head, tokenizer): fresh, or `model.adapter` (an RM) continued."""
    from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

    from . import model

    if spec.adapter:
        folder = model.adapter_dir(spec.adapter)
        if not is_reward_model(folder):
            raise UserError(f"model.adapter {spec.adapter} is not a reward model (its adapter is not a "
                            "sequence-classification one); continue an RM run, or drop model.adapter")
        model.check_adapter_base(folder, spec.name)
    base = load_base(spec)
    tokenizer = tokenizer_for(spec, base)
    if spec.quantization != "none":
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=gradient_checkpointing)
    if spec.adapter:
        return PeftModel.from_pretrained(base, str(folder), is_trainable=True), tokenizer
    return get_peft_model(base, lora_config(spec)), tokenizer


def head_in_compute_dtype(scorer, spec: Model) -> None:
    """RewardTrainer keeps a quantised model's trainable weights in bf16 (QLoRA's recipe). LoRA layers
    cast their input to match; the plain `score` head does not, and fails on fp32 (CPU) or fp16 (T4)
    hidden states: it goes back to the compute dtype."""
    from . import model

    dtype = model.compute_dtype(spec)
    for name, param in scorer.named_parameters():
        if param.requires_grad and ".score." in f".{name}":
            param.data = param.data.to(dtype)


def run_spec(run_dir) -> Model:
    """The base model a reward-model run was trained on (its recipe.yaml), with the run as the adapter."""
    from . import recipe as recipes

    folder = Path(run_dir).expanduser()
    if not is_reward_model(folder):
        hint = ("; it is a policy adapter, not a reward model" if (folder / "adapter_config.json").is_file()
                else "; train one with python -m tinyalign.rm RECIPE")
        raise UserError(f"reward model not found in {run_dir}{hint}")
    recipe = next((p for p in (folder / "recipe.yaml", folder.parent / "recipe.yaml") if p.is_file()), None)
    if recipe is None:
        raise UserError(f"reward model {run_dir} has no recipe.yaml naming its base model; pass its run directory")
    spec = recipes.load(recipe).model
    spec.adapter = str(folder)
    return spec


def load_for_scoring(run_dir, quantization: str | None = None):
    """(model in eval mode, tokenizer) of a finished reward-model run; `quantization` overrides the run's."""
    from peft import PeftModel

    spec = run_spec(run_dir)
    if quantization:
        spec.quantization = quantization
    base = load_base(spec)
    tokenizer = tokenizer_for(spec, base, source=str(spec.adapter))
    scorer = PeftModel.from_pretrained(base, spec.adapter)
    scorer.eval()
    return scorer, tokenizer


def held_out_stats(run_dir) -> dict:
    """The run's rm_metrics.json; a UserError if the run never finished measuring itself."""
    path = Path(run_dir).expanduser() / METRICS
    if not path.is_file():
        raise UserError(f"reward model {run_dir} has no {METRICS} (held-out scores to normalise by); "
                        "train it to the end with python -m tinyalign.rm")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- scoring


def as_messages(role: str, content) -> list[dict]:
    return content if isinstance(content, list) else [{"role": role, "content": str(content)}]


def score(scorer, tokenizer, prompts: list, answers: list, batch_size: int = 32) -> list[float]:
    """One scalar per (prompt, answer): the chat rendered exactly as RewardTrainer renders a pair's side."""
    import torch

    ids = [tokenizer.apply_chat_template(as_messages("user", p) + as_messages("assistant", a), tokenize=True,
                                         return_dict=True)["input_ids"] for p, a in zip(prompts, answers)]
    device = next(scorer.parameters()).device
    was_training = scorer.training
    scorer.eval()
    scores = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            width = max(map(len, chunk))
            pad = tokenizer.pad_token_id
            input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in chunk], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=device)
            logits = scorer(input_ids=input_ids, attention_mask=mask).logits
            scores.extend(logits[:, 0].float().tolist())
    scorer.train(was_training)
    return scores


def text_of(content) -> str:
    return content if isinstance(content, str) else "".join(m.get("content", "") for m in content)


def measure(scorer, tokenizer, pairs) -> dict:
    """Held-out accuracy, mean margin, length bias and the score scale, from rows of prompt/chosen/rejected."""
    pairs = list(pairs)
    if not pairs:
        raise UserError("no held-out pairs to measure the reward model on; set data.test_size or data.test_split")
    prompts = [p["prompt"] for p in pairs]
    chosen = score(scorer, tokenizer, prompts, [p["chosen"] for p in pairs])
    rejected = score(scorer, tokenizer, prompts, [p["rejected"] for p in pairs])
    margins = [c - r for c, r in zip(chosen, rejected)]
    # Length bias: over pairs whose answers differ in length, does the RM prefer the longer answer
    # more often than the people did? (0 = no bias; +0.3 = 30 points more often than it should)
    longer_wins, longer_chosen = [], []
    for p, c, r in zip(pairs, chosen, rejected):
        len_c, len_r = len(text_of(p["chosen"])), len(text_of(p["rejected"]))
        if len_c != len_r and c != r:
            longer_chosen.append(len_c > len_r)
            longer_wins.append((c > r) == (len_c > len_r))
    everything = chosen + rejected
    return {
        "pairs": len(pairs),
        "accuracy": mean(m > 0 for m in margins),
        "mean_margin": mean(margins),
        "longer_wins": mean(longer_wins) if longer_wins else None,
        "longer_chosen": mean(longer_chosen) if longer_chosen else None,
        "length_bias": mean(longer_wins) - mean(longer_chosen) if longer_wins else None,
        "length_pairs": len(longer_wins),
        "score_mean": mean(everything),
        "score_std": pstdev(everything) or 1.0,
    }


def write_metrics(metrics: dict, run_dir) -> Path:
    path = Path(run_dir) / METRICS
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(path)
    return path


def summary(metrics: dict) -> str:
    bias = metrics.get("length_bias")
    length = (f"longer answer wins {metrics['longer_wins']:.0%} vs chosen longer {metrics['longer_chosen']:.0%} "
              f"(bias {bias:+.0%}, {metrics['length_pairs']} pairs)" if bias is not None else "no pairs differ in length")
    return (f"held-out: accuracy {metrics['accuracy']:.1%} on {metrics['pairs']} pairs, mean margin "
            f"{metrics['mean_margin']:.3f}; {length}; score mean {metrics['score_mean']:.3f} std {metrics['score_std']:.3f}")


# ---------------------------------------------------------------- the doctor's rows for reward models

AT_CHANCE = 0.6  # held-out accuracy under 60 %: a coin flip would do nearly as well
MARGIN_COLLAPSE = 0.5  # logged margin's last quarter under half its best quarter: the RM stopped separating
LENGTH_BIAS = 0.2  # the longer answer wins 20 points more often than people chose it: the RM rewards length
LENGTH_MIN_PAIRS = 10  # fewer pairs that differ in length cannot show a bias
HACK_RM_RISE = 0.5  # the learned reward rising half a held-out standard deviation ...
HACK_RULE_GAIN = 0.02  # ... while the rule metric on the same completions gains under 2 points: hacking


def findings(run_dir, history: list[dict], recipe: dict | None) -> list:
    """Doctor findings for a reward-model run (held-out metrics, logged margins) or for a GRPO run that
    optimises one (learned reward up, exact match of the same completions flat: the RM is being hacked)."""
    from .doctor import Finding

    recipe = recipe or {}
    run_dir = Path(run_dir)
    if recipe.get("method") == "grpo":
        return [f for f in [_rm_hacked(run_dir, history, recipe)] if f]
    if recipe.get("method") != "rm" or not (run_dir / METRICS).is_file():
        return []
    metrics, out = json.loads((run_dir / METRICS).read_text()), []
    lr = float(recipe.get("train", {}).get("learning_rate", 1e-4))
    if metrics["accuracy"] < AT_CHANCE:
        out.append(Finding(
            "rm_at_chance", f"held-out accuracy {metrics['accuracy']:.0%} on {metrics['pairs']} pairs",
            "the reward model cannot tell chosen from rejected: too few or contradictory votes, or too little training",
            "collect more votes (read a few pairs: do they say what 'better' means?); train longer or at a higher "
            f"LR: python -m tinyalign.rm {run_dir}/recipe.yaml train.learning_rate={lr * 2:g} train.num_train_epochs=2 "
            f"output_dir={run_dir}-more"))
    margins = [e["margin"] for e in history if isinstance(e.get("margin"), (int, float))]
    if len(margins) >= 8:
        quarter = max(2, len(margins) // 4)
        best = max(median(margins[i:i + quarter]) for i in range(len(margins) - quarter + 1))
        last = median(margins[-quarter:])
        if best > 0 and last < MARGIN_COLLAPSE * best:
            out.append(Finding(
                "rm_margins_collapsing", f"logged margin fell from {best:.3g} to {last:.3g}",
                "the reward model stopped separating pairs: learning rate too high, or centring pulls every score to 0",
                f"lower the learning rate (train.learning_rate={lr / 2:g}); lower train.center_rewards_coefficient"))
    bias = metrics.get("length_bias")
    if bias is not None and abs(bias) >= LENGTH_BIAS and metrics.get("length_pairs", 0) >= LENGTH_MIN_PAIRS:
        longer = "longer" if bias > 0 else "shorter"
        out.append(Finding(
            "rm_tracks_length", f"the longer answer wins {metrics['longer_wins']:.0%} of held-out pairs, people chose "
                                f"it {metrics['longer_chosen']:.0%} ({metrics['length_pairs']} pairs)",
            f"the reward model pays for {longer} answers, not better ones: GRPO on it will drift in length",
            "vote on pairs where the other length wins; add an overlong / length_penalty reward next to it in GRPO"))
    return out


def _rm_hacked(run_dir: Path, history: list[dict], recipe: dict):
    """GRPO on a learned reward: its normalised score rises while exact match of the same logged
    completions (against the data's reference answers) does not."""
    from .doctor import Finding, read_completions

    names = [r.get("name") for r in recipe.get("rewards", [])]
    if "reward_model" not in names:
        return None
    points = [e["rewards/reward_model/mean"] for e in history if "rewards/reward_model/mean" in e]
    rows = [r for r in read_completions(run_dir / "completions.jsonl") if r.get("answer") is not None]
    if len(points) < 4 or len(rows) < 16:
        return None
    quarter = max(1, len(points) // 4)
    rise = median(points[-quarter:]) - median(points[:quarter])
    rows.sort(key=lambda r: r.get("step", 0))
    exact = [text_of(r.get("completion", "")).strip() == str(r["answer"]).strip() for r in rows]
    cut = max(1, len(exact) // 4)
    gain = mean(exact[-cut:]) - mean(exact[:cut])
    if rise < HACK_RM_RISE or gain >= HACK_RULE_GAIN:
        return None
    index = names.index("reward_model")
    return Finding(
        "rm_hacked", f"rewards/reward_model/mean rose {rise:+.2f} (held-out std units) while exact match of the "
                     f"same completions moved {gain:+.0%}",
        "the policy found what the reward model pays for without being right (it was never trained on its answers)",
        "vote on this checkpoint's answers and retrain the reward model on them (python -m tinyalign.loop); "
        "add a rule reward where one can judge",
        [f"rewards.{index}.weight=0.5"])


# ---------------------------------------------------------------- evaluate


def evaluate_checkpoints(recipe, adapters: list[tuple[str, int, str]]) -> list[dict]:
    """Held-out accuracy, mean margin and length bias of each (name, step, adapter folder) of an RM run,
    on the run's own held-out pairs; the final adapter's figures come from its rm_metrics.json."""
    from . import data

    _, test = data.load(recipe.data, "rm", recipe.seed)
    if test is None:
        raise UserError("this reward-model recipe holds out no pairs; set data.test_size or data.test_split")
    scorer = tokenizer = None
    table = []
    for name, step, folder in adapters:
        if name == "final" and (Path(folder) / METRICS).is_file():
            metrics = held_out_stats(folder)
        else:
            slot = name.replace("-", "_")
            if scorer is None:  # the base once; checkpoints swap in as adapters
                scorer, tokenizer = load_for_scoring(folder)
                scorer.load_adapter(str(folder), adapter_name=slot)
            else:
                scorer.load_adapter(str(folder), adapter_name=slot)
            scorer.set_adapter(slot)
            metrics = measure(scorer, tokenizer, test)
        table.append({"model": name, "step": step, "accuracy": metrics["accuracy"],
                      "mean_margin": metrics["mean_margin"], "length_bias": metrics["length_bias"]})
    return table
