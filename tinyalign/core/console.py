"""What a training command prints: one progress bar, one compact line per logging step, a summary.

    grpo ▏██████▌       ▏ 30/60
    step  10/60  reward 0.562  accuracy 0.562  kl 0.0291  entropy 0.366  length 4.1  clipped 0%  1.62 s/step
    ...
    trained 60 steps in 97 s (1.62 s/step); full logs: runs/tiny_grpo/trainer_state.json

Only the numbers that matter for the method are shown; everything TRL logs stays in the run's
trainer_state.json and in the `report_to` backends. `Console` replaces the Trainer's own
ProgressCallback / PrinterCallback (which print every log as a raw dict) through the callback API:
`install(trainer, recipe)` swaps them; `quiet()` silences the library chatter around training
(datasets' split and map bars, transformers' notices that need no action).
"""

import logging
import sys
import time

from tinyalign.core.run_logs import looks_like_accuracy

# What a GRPO / SFT / DPO line shows: (label, logged key, format). Missing keys are left out.
COLUMNS = {
    "grpo": [("reward", "reward", "{:.3f}"), ("accuracy", None, "{:.3f}"), ("kl", "kl", "{:.3g}"),
             ("entropy", "entropy", "{:.3f}"), ("length", "completions/mean_length", "{:.1f}"),
             ("clipped", "completions/clipped_ratio", "{:.0%}")],
    "sft": [("loss", "loss", "{:.4f}"), ("token accuracy", "mean_token_accuracy", "{:.1%}"),
            ("lr", "learning_rate", "{:.1e}")],
    "dpo": [("loss", "loss", "{:.4f}"), ("margin", "rewards/margins", "{:.3f}"),
            ("pair accuracy", "rewards/accuracies", "{:.0%}"), ("lr", "learning_rate", "{:.1e}")],
    "rm": [("loss", "loss", "{:.4f}"), ("pair accuracy", "accuracy", "{:.0%}"), ("margin", "margin", "{:.3f}"),
           ("lr", "learning_rate", "{:.1e}")],
}
EVAL_COLUMNS = [("eval loss", "eval_loss", "{:.4f}"), ("eval token accuracy", "eval_mean_token_accuracy", "{:.1%}"),
                ("eval margin", "eval_rewards/margins", "{:.3f}"), ("eval pair accuracy", "eval_rewards/accuracies", "{:.0%}"),
                ("eval pair accuracy", "eval_accuracy", "{:.0%}"), ("eval margin", "eval_margin", "{:.3f}")]
NOTHING_LEARNED = "nothing is learned: every completion hit max_completion_length"
# transformers' notices that say nothing a user can act on: it aligned the model's pad/bos/eos ids to the
# tokenizer's (every run), and it sorts checkpoints by number rather than file time (on some filesystems).
NOTICES = ("The tokenizer has new PAD/BOS/EOS tokens", "mtime may not be reliable on this filesystem")


def line(method: str, logs: dict, accuracy: list[str] = ()) -> str:
    """The compact view of one log entry: the method's columns that are present, in a fixed order."""
    parts = []
    for label, key, fmt in COLUMNS.get(method, COLUMNS["sft"]):
        if key is None:  # GRPO's accuracy: the mean of its accuracy rewards
            values = [logs[f"rewards/{n}/mean"] for n in accuracy if _number(logs.get(f"rewards/{n}/mean"))]
            value = sum(values) / len(values) if values else None
        else:
            value = logs.get(key)
        if _number(value):
            parts.append(f"{label} {fmt.format(value)}")
    return "  ".join(parts)


def learns_nothing(logs: dict) -> bool:
    """A GRPO step whose every completion hit the cap with a loss of exactly 0 (said even with `doctor: false`)."""
    return logs.get("completions/clipped_ratio") == 1 and logs.get("loss") == 0


def eval_line(logs: dict) -> str:
    return "  ".join(f"{label} {fmt.format(logs[key])}" for label, key, fmt in EVAL_COLUMNS if _number(logs.get(key)))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def write(text: str, file=None) -> None:
    """Print above the progress bar (a plain print would tear it)."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=file or sys.stdout)


def _console_class():
    from transformers import TrainerCallback

    class Console(TrainerCallback):
        """One progress bar for the training phase, one line per logging step, a summary at the end."""

        def __init__(self, method: str, recipe: "dict | None" = None, accuracy: "list[str] | None" = None):
            """`accuracy`: the names of the recipe's accuracy rewards, from whoever knows the reward registry;
            without it, the recipe's rewards named like one."""
            self.method = method
            self.recipe = recipe or {}
            if accuracy is None:
                named = [r.get("name") if isinstance(r, dict) else r for r in self.recipe.get("rewards") or []]
                accuracy = [n for n in named if isinstance(n, str) and looks_like_accuracy(n)]
            self.accuracy = list(accuracy) if method == "grpo" else []
            self.bar = None
            self.began = self.last_time = None
            self.first_step = self.last_step = 0

        def on_train_begin(self, args, state, control, **kwargs):
            from tqdm.auto import tqdm

            self.began = self.last_time = time.time()
            self.first_step = self.last_step = state.global_step  # a resumed run starts mid-way
            if state.is_world_process_zero:
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.method, unit="step",
                                dynamic_ncols=True, leave=False)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            if "train_runtime" in logs:  # the Trainer's closing log: the summary says it
                return
            if any(key.startswith("eval_") for key in logs):
                write(f"eval {state.global_step:>{len(str(state.max_steps))}}/{state.max_steps}  {eval_line(logs)}")
                return
            now, steps = time.time(), state.global_step - self.last_step
            pace = f"  {(now - self.last_time) / steps:.2f} s/step" if steps > 0 else ""
            self.last_time, self.last_step = now, state.global_step
            width = len(str(state.max_steps))
            write(f"step {state.global_step:>{width}}/{state.max_steps}  {line(self.method, logs, self.accuracy)}{pace}"
                  + (f"  <- {NOTHING_LEARNED}" if learns_nothing(logs) else ""))

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if state.is_world_process_zero and self.began is not None:
                took, steps = time.time() - self.began, state.global_step - self.first_step
                pace = f" ({took / steps:.2f} s/step)" if steps > 0 else ""
                write(f"trained {steps} steps in {took:.0f} s{pace}; full logs: {args.output_dir}/trainer_state.json")

    return Console


def install(trainer, method: "str | None" = None, recipe: "dict | None" = None):
    """Swap the Trainer's dict-printing progress callback for a Console (the one `run.callbacks()` gave
    the trainer, else a new one for `method`, by default named after the trainer: GRPOTrainer -> grpo)."""
    from transformers import PrinterCallback, ProgressCallback

    console_class = __getattr__("Console")
    for stock in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(stock)
    console = next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, console_class)), None)
    if console is None:
        method = method or type(trainer).__name__.removesuffix("Trainer").lower()
        console = console_class(method if method in COLUMNS else "sft", recipe)
        trainer.add_callback(console)
    return console


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(notice in record.getMessage() for notice in NOTICES)


def quiet() -> None:
    """Silence the chatter around training: datasets' "Generating train split" and map/filter bars,
    and transformers' NOTICES. Warnings that need the user's attention still print."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" for a model that loads in a second
    notice = logging.getLogger("transformers.trainer_utils")
    if not any(isinstance(f, _DropNotices) for f in notice.filters):
        notice.addFilter(_DropNotices())


def __getattr__(name):
    # transformers takes seconds to import: only what builds a trainer pays for it.
    if name == "Console":
        if "Console" not in globals():
            globals()["Console"] = _console_class()
        return globals()["Console"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
