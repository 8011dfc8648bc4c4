"""implicit_reward: the reward a DPO run learned from votes, read back out of it, as a GRPO reward.

DPO fits beta * (log pi_DPO(y|x) - log pi_ref(y|x)) to the votes (Rafailov et al. 2023, "Your language
model is secretly a reward model"). Read back, it scores any answer, including the kinds of answer no
vote ever saw, from the language model's own next-token predictions: on SmolLM2's sums it ordered a
right bare sum over a wrong one 76 % of the time after votes that never held a wrong bare number, where
a scalar reward model trained on the same votes ordered 7 % (bench/RESULTS.md).

The reference is what the DPO run started from: its `model.adapter`, or the base when it trained a fresh
LoRA. Both load once per process, on first call, on one base. Scores are raw (nats times beta): GRPO
compares answers within a group, so the scale does not matter alone; weigh it against other rewards with
that in mind.

`reference: none` drops the reference: beta * log pi_DPO(y|x), the DPO model's own likelihood of the answer
(SimPO's reference-free reward, summed rather than averaged). The log-ratio keeps only what the votes
changed; the likelihood keeps what the model knew before them too. On the tiny sums the log-ratio learned
the asked style and ordered a right bare sum over a wrong one about half the time (no vote had changed the
sums), the likelihood nearly always (bench/RESULTS.md, "The tiny reward model over seeds").
"""

import json
from pathlib import Path
from statistics import mean

from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.core.run_logs import DPO_METRICS as METRICS
from tinyalign.rewards.text import completion_text


class ImplicitReward:
    """The reward function: `r(completions, prompts=...) -> list[float]`."""

    def __init__(self, model: str, batch_size: int, reference: str = "start"):
        self.model, self.batch_size, self.reference = model, batch_size, reference
        self.recipe = dpo_recipe(model)
        self.beta = float(self.recipe.train.get("beta", 0.1))  # TRL's default when the recipe names none
        start = self.recipe.model.adapter  # the reference: the adapter DPO started from; without one, the base
        self.adapters = {"dpo": model, **({"ref": start} if start else {})}
        self._policy = self._tokenizer = None

    def __getstate__(self):  # picklable like the other rewards; the model is reloaded where it is used
        return {**self.__dict__, "_policy": None, "_tokenizer": None}

    def _load(self):
        if self._policy is None:
            from tinyalign.models.loading import load_with_adapters

            self._policy, self._tokenizer = load_with_adapters(self.recipe.model, self.adapters)
        return self._policy, self._tokenizer

    def __call__(self, completions, prompts=None, answer=None, log_extra=None, **_):
        if prompts is None:
            raise UserError("implicit_reward needs the prompts the answers reply to; call it with prompts=[...]")
        logps = self.logps(prompts, completions, ("dpo",) if self.reference == "none" else ("dpo", "ref"))
        if log_extra is not None and isinstance(answer, list):  # the references beside the learned reward
            log_extra("answer", answer)
        if self.reference == "none":
            return [self.beta * t for t in logps["dpo"]]
        return [self.beta * (t - r) for t, r in zip(logps["dpo"], logps["ref"])]

    def logps(self, prompts, completions, names=("dpo", "ref"), desc: str | None = None) -> dict[str, list[float]]:
        """Each answer's summed log-probability under the DPO run ("dpo") and its reference ("ref");
        `desc` names a progress bar per model (none by default: GRPO calls it every step)."""
        from tinyalign.models.likelihood import answer_logps, encode
        from tinyalign.models.loading import answering_as

        policy, tokenizer = self._load()
        rows = encode(tokenizer, list(prompts), [completion_text(c) for c in completions])
        logps = {}
        for name in names:  # "ref" is the base when DPO trained a fresh LoRA
            with answering_as(policy, name, self.adapters):
                model = {"dpo": "the DPO run", "ref": "its start"}[name]
                logps[name] = answer_logps(policy, tokenizer, rows, desc and f"{desc} ({model})", self.batch_size)
        return logps


def dpo_recipe(model: str):
    """The recipe a finished DPO run was trained with (its recipe.yaml), checked to be one."""
    from tinyalign.config import recipe as recipes

    folder = Path(model).expanduser()
    if not (folder / "recipe.yaml").is_file() or not (folder / "adapter_config.json").is_file():
        raise UserError(f"reward 'implicit_reward': {model} is not a finished DPO run (recipe.yaml and an adapter); "
                        "train one with python -m tinyalign.dpo RECIPE")
    recipe = recipes.load(folder / "recipe.yaml")
    if recipe.method != "dpo":
        raise UserError(f"reward 'implicit_reward': {model} is a {recipe.method} run; it reads a DPO run's reward")
    return recipe


def implicit_reward(model: str, batch_size: int = 16, reference: str = "start"):
    """beta * (log pi_DPO - log pi_ref) of an answer: the reward a DPO run learned from votes.

    `model`: the DPO run directory (python -m tinyalign.dpo). Loaded on first use, once.
    `reference`: "start" (DPO's reward) or "none" (beta * log pi_DPO: the DPO model's own likelihood).
    """
    if batch_size < 1:
        raise UserError("reward 'implicit_reward': batch_size must be at least 1")
    if reference not in ("start", "none"):
        raise UserError(f"reward 'implicit_reward': reference must be start or none, got {reference!r}")
    return ImplicitReward(model, batch_size, reference)


def measure(run_dir, pairs) -> dict:
    """How often the finished DPO run's implicit reward sides with held-out votes (a tie is not agreement, as
    for a reward model), and by how much; beside it, how often the DPO model's own likelihood does (no
    reference: the knowledge the run started with counts too). Written to the run's dpo_metrics.json. The run
    is read back from disk through the reward itself, so the figure is the one a GRPO run on it gets."""
    pairs = list(pairs)
    reward = ImplicitReward(str(run_dir), batch_size=16)
    n = len(pairs)
    logps = reward.logps([pair["prompt"] for pair in pairs] * 2,  # every chosen answer, then every rejected one
                         [pair["chosen"] for pair in pairs] + [pair["rejected"] for pair in pairs],
                         desc=f"scoring {n} held-out pairs")
    ratio = [t - r for t, r in zip(logps["dpo"], logps["ref"])]
    margins = [reward.beta * (c - r) for c, r in zip(ratio[:n], ratio[n:])]
    metrics = {"pairs": n, "accuracy": mean(m > 0 for m in margins), "mean_margin": mean(margins),
               "likelihood_accuracy": mean(c > r for c, r in zip(logps["dpo"][:n], logps["dpo"][n:]))}
    files.write_atomically(Path(run_dir) / METRICS, json.dumps(metrics, indent=2) + "\n")
    return metrics
