"""Reward models on disk: a reward-model run directory (python -m tinyalign.rm), and loading one to
train further or to score with.

The run holds a LoRA adapter for a sequence-classification head (`score`, one output) on the recipe's
base, saved with the adapter, and `rm_metrics.json` (tinyalign.measure.reward_model writes it):

    accuracy       held-out pairs where the chosen answer scored above the rejected one
    mean_margin    mean of chosen - rejected scores
    length_bias    how often the longer answer scored higher vs. how often people chose it
    score_mean, score_std   of every held-out answer's score: a GRPO reward normalises with these
"""

import json
from pathlib import Path

from tinyalign.config import recipe as recipes
from tinyalign.config.recipe import Model
from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.core.run_logs import RM_METRICS as METRICS
from tinyalign.models import loading as model
from tinyalign.models.chat_template import as_message
from tinyalign.models.precision import autocast


def load_base(spec: Model):
    """The recipe's base as a one-output sequence classifier (a fresh `score` head), quantised as it says;
    with `model.policy`, that policy's LoRA merged in first."""
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    with suppress_seqcls_warning():  # a causal LM has no `score` weights: the new head is expected
        base = model.load_base(spec, auto_class=AutoModelForSequenceClassification, num_labels=1)
    if spec.policy:
        # InstructGPT's reward models start from the SFT policy: its layers already read the task, so the
        # head learns to judge answers rather than first how they are written. The classifier's backbone
        # has the causal LM's module names, so the policy's LoRA loads onto it as it is (as a plain
        # PeftModel: the causal-LM wrapper would reach for generation methods a classifier lacks).
        from peft import PeftConfig, PeftModel

        folder = str(model.policy_dir(spec))
        config = PeftConfig.from_pretrained(folder)
        config.task_type = None
        base = PeftModel.from_pretrained(base, folder, config=config).merge_and_unload()
    return base


def tokenizer_for(spec: Model, base, source: str | None = None):
    """The chat tokenizer, and the model told its pad id: the head reads the last non-pad token."""
    tokenizer = model.load_tokenizer(spec, source)
    base.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def is_reward_model(folder) -> bool:
    config = Path(folder) / "adapter_config.json"
    return config.is_file() and files.read_run_file(config).get("task_type") == "SEQ_CLS"


def load_for_training(spec: Model, gradient_checkpointing: bool = False):
    """(classifier with a trainable LoRA adapter and head, tokenizer): fresh, or `model.adapter` (an RM) continued."""
    folder = None
    if spec.adapter:
        folder = model.adapter_dir(spec.adapter)
        if not is_reward_model(folder):
            raise UserError(f"model.adapter {spec.adapter} is not a reward model (its adapter is not a "
                            "sequence-classification one); continue an RM run, or drop model.adapter")
        model.check_adapter_base(folder, spec.name)
    base = load_base(spec)
    tokenizer = tokenizer_for(spec, base)
    # SEQ_CLS + modules_to_save: the new head is trained in full and saved with the adapter;
    # without it the head would stay at its random initial weights.
    return model.with_lora(base, spec, gradient_checkpointing, folder, task_type="SEQ_CLS",
                           modules_to_save=["score"]), tokenizer


def head_in_compute_dtype(scorer, spec: Model) -> None:
    """RewardTrainer keeps a quantised model's trainable weights in bf16 (QLoRA's recipe). LoRA layers
    cast their input to match; the plain `score` head does not, and fails on fp32 (CPU, outside autocast)
    or fp16 (T4) hidden states: it goes back to the dtype the model's weights are in."""
    dtype = model.weights_dtype(spec)
    for name, param in scorer.named_parameters():
        if param.requires_grad and ".score." in f".{name}":
            param.data = param.data.to(dtype)


def run_spec(run_dir) -> Model:
    """The base model a reward-model run was trained on (its recipe.yaml), with the run as the adapter."""
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


def write_metrics(metrics: dict, run_dir) -> Path:
    path = Path(run_dir) / METRICS
    files.write_atomically(path, json.dumps(metrics, indent=2) + "\n")
    return path


def rm_scores(scorer, tokenizer, prompts: list, answers: list, batch_size: int = 32) -> list[float]:
    """One scalar per (prompt, answer): the chat rendered exactly as RewardTrainer renders a pair's side."""
    import torch

    ids = [tokenizer.apply_chat_template(as_message("user", p) + as_message("assistant", a), tokenize=True,
                                         return_dict=True)["input_ids"] for p, a in zip(prompts, answers)]
    device = next(scorer.parameters()).device
    was_training = scorer.training
    scorer.eval()
    scores = []
    with torch.inference_mode(), autocast(scorer):
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
