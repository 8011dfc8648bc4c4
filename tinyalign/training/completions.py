"""GRPO's sampled completions with their per-reward scores, as JSONL in the run directory.

Reading bad cases beats staring at a reward curve: this is where reward hacking shows first.
Each logging step appends a few samples of the latest generation batch; the file is bounded.
"""

import json
from pathlib import Path

from transformers import TrainerCallback

SAMPLES_PER_LOG = 16
MAX_LINES = 20_000  # ~10 MB for 512-token completions


class CompletionLog(TrainerCallback):
    """Appends {step, prompt, completion, rewards: {name: score}, advantage} lines to completions.jsonl."""

    def __init__(self, trainer, output_dir, samples_per_log: int = SAMPLES_PER_LOG, max_lines: int = MAX_LINES):
        self.trainer = trainer
        self.path = Path(output_dir) / "completions.jsonl"
        self.samples_per_log = samples_per_log
        self.max_lines = max_lines
        self.written = 0
        self.last_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed run appends; lines a killed run wrote after its last checkpoint (or cut off
        mid-write) are dropped first, since those steps are about to be trained and logged again."""
        if not state.is_world_process_zero or not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if _step(line) in range(1, state.global_step + 1)]
        if len(kept) < len(lines):
            self.path.write_text("".join(kept))
        self.written = len(kept)

    def on_log(self, args, state, control, **kwargs):
        logs = getattr(self.trainer, "_logs", None)  # TRL's buffer of the latest generation batch
        if not state.is_world_process_zero or not logs or not logs.get("completion"):
            return
        if state.global_step == self.last_step:  # the end-of-training log repeats the last batch
            return
        self.last_step = state.global_step
        prompts, completions = list(logs["prompt"]), list(logs["completion"])
        rewards = {name: list(values) for name, values in logs["rewards"].items()}
        advantages = list(logs["advantages"])
        extra = {name: list(values) for name, values in logs.get("extra", {}).items()}  # e.g. rubric_judge's rubric
        stride = max(1, len(completions) // self.samples_per_log)
        lines = []
        for i in range(0, len(completions), stride)[: self.samples_per_log]:
            if self.written + len(lines) >= self.max_lines:
                break
            lines.append(json.dumps({
                "step": state.global_step,
                "prompt": prompts[i],
                "completion": completions[i],
                "rewards": {name: _number(values[i]) for name, values in rewards.items() if i < len(values)},
                "advantage": _number(advantages[i]) if i < len(advantages) else None,
                **{name: values[i] for name, values in extra.items() if i < len(values)},
            }, ensure_ascii=False))
        if lines:
            with open(self.path, "a") as f:
                f.write("\n".join(lines) + "\n")
            self.written += len(lines)


def _step(line: str) -> int | None:
    """The step a line was logged at; None for a line cut off mid-write."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return None


def _number(value):
    return None if value is None or value != value else round(float(value), 4)  # NaN -> null for JSON
