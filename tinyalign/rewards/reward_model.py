"""reward_model: a trained scalar reward model (python -m tinyalign.rm) as a GRPO reward.

An RM's raw scale is arbitrary and drifts between trainings, so scores are normalised by the mean
and standard deviation of its own held-out scores, saved at training time (rm_metrics.json): 0 is
an average answer, +1 one standard deviation better. Weights between rewards then mean something.
The raw scores go to TRL's completions table (`log_extra`) and their mean to the logs
(`reward_model/raw_mean`), so drift of the raw scale stays visible.

Loaded on first call, once per process (each DDP process scores its own completions on its own
GPU), in the quantisation it was trained in unless `quantization` says otherwise.
"""

from pathlib import Path

from tinyalign.core.errors import UserError
from tinyalign.rewards.text import completion_text


class RewardModel:
    """The reward function: `rm(completions, prompts=...) -> list[float]`, normalised scores."""

    def __init__(self, model: str, batch_size: int, quantization: str | None):
        self.model, self.batch_size, self.quantization = model, batch_size, quantization
        stats = held_out_stats(model)
        self.mean, self.std = float(stats["score_mean"]), float(stats["score_std"]) or 1.0
        self.last_raw: list[float] = []
        self._scorer = self._tokenizer = None

    def __getstate__(self):  # picklable like the other rewards; the model is reloaded where it is used
        return {**self.__dict__, "_scorer": None, "_tokenizer": None}

    def _load(self):
        if self._scorer is None:
            from tinyalign.models.reward_model import load_for_scoring

            self._scorer, self._tokenizer = load_for_scoring(self.model, self.quantization)
        return self._scorer, self._tokenizer

    def __call__(self, completions, prompts=None, answer=None, log_extra=None, log_metric=None, **_):
        if prompts is None:
            raise UserError("reward_model needs the prompts the answers reply to; call it with prompts=[...]")
        from tinyalign.models.reward_model import rm_scores

        scorer, tokenizer = self._load()
        raw = rm_scores(scorer, tokenizer, list(prompts), [completion_text(c) for c in completions], self.batch_size)
        self.last_raw = raw
        if log_extra is not None:
            log_extra("reward_model_raw", raw)
            if isinstance(answer, list):  # the doctor checks the learned reward against the references
                log_extra("answer", answer)
        if log_metric is not None and raw:
            log_metric("reward_model/raw_mean", sum(raw) / len(raw))
        return [(r - self.mean) / self.std for r in raw]


def held_out_stats(model: str) -> dict:
    from tinyalign.models.reward_model import held_out_stats as stats
    from tinyalign.models.reward_model import is_reward_model

    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise UserError(f"reward 'reward_model': run directory not found: {model}; train one with "
                        "python -m tinyalign.rm RECIPE")
    if not is_reward_model(folder):
        raise UserError(f"reward 'reward_model': {model} is not a finished reward-model run (no sequence-"
                        "classification adapter); point at the output_dir of python -m tinyalign.rm")
    return stats(folder)


def reward_model(model: str, batch_size: int = 32, quantization: str | None = None):
    """Normalised score of a reward model trained from votes (python -m tinyalign.rm): 0 = its held-out average.

    `model`: the RM's run directory. `quantization`: 4bit | 8bit | none to override the one it was
    trained in. Loaded on first use, once.
    """
    if quantization not in (None, "4bit", "8bit", "none"):
        raise UserError(f"reward 'reward_model': quantization must be 4bit, 8bit or none, got {quantization!r}")
    if batch_size < 1:
        raise UserError("reward 'reward_model': batch_size must be at least 1")
    return RewardModel(model, batch_size, quantization)
