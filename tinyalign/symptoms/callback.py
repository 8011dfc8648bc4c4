"""The doctor while training: `DoctorCallback` runs the checks every few logs and prints one line the first time
each symptom shows (`recipe.doctor: true`), at once for a step that learns nothing; `training.run` adds it."""

import sys
from pathlib import Path

from tinyalign.core import files
from tinyalign.core.run_logs import Run
from tinyalign.symptoms import diagnose, nothing_learned


def read_completions(path) -> list[dict]:
    """The sampled completions, skipping a line half-written by a run still training."""
    path = Path(path)
    if not path.is_file():
        return []
    return [row for _, row in files.read_jsonl(path, encoding_errors="replace") if isinstance(row, dict)]


def _callback_class():
    from transformers import TrainerCallback

    class DoctorCallback(TrainerCallback):
        """Runs the doctor every `every` logs and at the end; warns once per symptom; never stops training."""

        def __init__(self, recipe: "dict | None" = None, every: int = 5):
            self.recipe = recipe or {}
            self.every = every
            self.history: list[dict] = []
            self.warned: set[str] = set()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs:
                return
            self.history.append({**logs, "step": state.global_step})
            if len(self.history) % self.every == 0:
                self._check(args, state)
            elif self.recipe.get("method", "grpo") == "grpo":  # a step that learns nothing is said at once
                self._check(args, state, [nothing_learned], self.history[-1:])

        def on_train_end(self, args, state, control, **kwargs):
            if self.recipe.get("method") == "rm":
                return  # its verdict waits for the held-out pairs: tinyalign.rm calls finish() once they are scored
            self.finish(args, state)

        def finish(self, args, state):
            """The last check, over the whole run directory (a reward model's rm_metrics.json included),
            and the one-line verdict: what holds at the end, as `python -m tinyalign.doctor` will report it, and
            what was warned during the run but no longer shows (a dip the run recovered from)."""
            final = self._check(args, state)
            if getattr(state, "is_world_process_zero", True):
                from tqdm.auto import tqdm

                out = getattr(args, "output_dir", None) or "RUN_DIR"
                final = self.warned if final is None else final  # a check that failed clears nothing
                verdict = (f"{len(final)} finding(s): {', '.join(sorted(final))}" if final
                           else "no symptoms in the logs")
                if gone := self.warned - final:
                    verdict += f"; warned during the run, gone by its end: {', '.join(sorted(gone))}"
                tqdm.write(f"doctor: {verdict} (full report: python -m tinyalign.doctor {out})", file=sys.stderr)

        def _check(self, args, state, checks=None, history=None) -> "set[str] | None":
            """Warn once of each symptom found; returns the symptoms found now (None: the check failed)."""
            from tqdm.auto import tqdm  # written above the console's progress bar, not through it

            try:
                if checks:
                    run = Run(history, self.recipe, [], "grpo")
                    findings = [f for check in checks if (f := check(run))]
                else:
                    output_dir = getattr(args, "output_dir", None) or self.recipe.get("output_dir")
                    completions = read_completions(Path(output_dir) / "completions.jsonl") if output_dir else []
                    findings = diagnose(self.history, self.recipe, completions, run_dir=output_dir)
                for finding in findings:
                    if finding.symptom not in self.warned and getattr(state, "is_world_process_zero", True):
                        self.warned.add(finding.symptom)
                        hint = f" (try: {' '.join(finding.overrides)})" if finding.overrides else ""
                        tqdm.write(f"doctor: {finding.symptom} at step {state.global_step}: {finding.cause} — "
                                   f"{finding.remedy}{hint}", file=sys.stderr)
                return {finding.symptom for finding in findings}
            except Exception as e:  # a diagnosis is advice: it must never take a training run down
                tqdm.write(f"doctor: skipped a check ({type(e).__name__}: {e})", file=sys.stderr)
                return None

    return DoctorCallback


def __getattr__(name):
    # transformers takes seconds to import: only code that builds the callback (the trainers) pays for it,
    # not `python -m tinyalign.doctor`.
    if name == "DoctorCallback":
        globals()["DoctorCallback"] = cls = _callback_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
