"""The doctor: read a run's logs, name what is going wrong, and say which recipe overrides to try next.

    python -m tinyalign.doctor runs/qwen_1.5b_math          # a readable report
    python -m tinyalign.doctor runs/qwen_1.5b_math --json   # the same findings for scripts

The checks themselves are in `tinyalign.symptoms` (one small function per row of the symptoms -> remedies
table in docs/practice.md, calibrated on a labeled corpus of real runs: bench/doctor_corpus.py); this module reads
run directories, writes the report and the commands to try, and warns while training.

While training, `DoctorCallback` runs the same checks every few logs and prints one line the first time
each symptom shows (`recipe.doctor: true`), at once for a step that learns nothing.
"""

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from tinyalign.core import files
from tinyalign.core.errors import ArgumentParser, UserError, cli
from tinyalign.core.run_logs import Run, Trend  # noqa: F401
from tinyalign.symptoms import CHECKS, METHODS, Finding, diagnose, infer_method, nothing_learned  # noqa: F401

# ---------------------------------------------------------------- reading a run directory


def load_run(run_dir) -> tuple[list[dict], "dict | None", list[dict]]:
    """(log_history, recipe or None, completions) of a run directory; UserError when there are no logs."""
    run_dir = files.run_folder(run_dir)
    return _read_log_history(run_dir), _read_recipe(run_dir / "recipe.yaml"), read_completions(run_dir / "completions.jsonl")


def _read_log_history(run_dir: Path) -> list[dict]:
    # trainer_state.json is written at the end; during training only checkpoint-*/ hold one. Take the furthest.
    candidates = [run_dir / "trainer_state.json", *run_dir.glob("checkpoint-*/trainer_state.json")]
    states, problems = [], []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            state = json.loads(path.read_text())
            history = state["log_history"]
            if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
                raise ValueError("log_history is not a list of records")
            states.append((state.get("global_step") or 0, history, path))
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
            problems.append(f"{path}: {type(e).__name__} {e}")
    if not states:
        why = problems[0] if problems else "no trainer_state.json in it or in its checkpoint-*/ folders"
        raise UserError(f"{run_dir}: no training logs to read ({why}); train for at least logging_steps steps first")
    _, history, path = max(states, key=lambda s: s[0])
    if not history:
        raise UserError(f"{path}: log_history is empty; train for at least logging_steps steps first")
    return history


def _read_recipe(path: Path) -> "dict | None":
    if not path.is_file():
        return None
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:  # the logs can still be read; the overrides just cannot be computed
        print(f"doctor: ignoring {path}: {e}", file=sys.stderr)
        return None
    return recipe if isinstance(recipe, dict) else None


def read_completions(path) -> list[dict]:
    """The sampled completions, skipping a line half-written by a run still training."""
    path = Path(path)
    if not path.is_file():
        return []
    return [row for _, row in files.read_jsonl(path, encoding_errors="replace") if isinstance(row, dict)]


# ---------------------------------------------------------------- the report

SUMMARY_KEYS = {"grpo": ("reward", "kl", "entropy"), "dpo": ("loss", "rewards/margins", "rewards/accuracies"),
                "sft": ("loss", "eval_loss")}


def summary(log_history, method: str) -> str:
    run = Run(log_history, {}, [], method)
    finals = [f"{key} {points[-1][1]:.3g}" for key in SUMMARY_KEYS[method] if (points := run.points(key))]
    return f"{method}, {run.last_step} steps" + (", final " + ", ".join(finals) if finals else "")


def command(run_dir, method: str, finding: Finding, recipe_path=None) -> "str | None":
    """The command line that retrains with the finding's overrides into a sibling output_dir."""
    if not finding.overrides:
        return None
    run_dir = str(run_dir).rstrip("/")
    recipe_path = recipe_path or f"{run_dir}/recipe.yaml"
    return shlex.join(["python", "-m", f"tinyalign.{method}", str(recipe_path), *finding.overrides,
                       f"output_dir={run_dir}-{finding.symptom}"])


def report(run_dir, log_history, recipe, findings: list[Finding]) -> dict:
    method = infer_method(log_history, recipe)
    recipe_path = None if recipe else "<your recipe.yaml>"
    return {
        "run_dir": str(run_dir), "method": method, "summary": summary(log_history, method),
        "findings": [{**asdict(f), "command": command(run_dir, method, f, recipe_path)} for f in findings],
    }


def format_report(result: dict) -> str:
    lines = [f"doctor: {result['run_dir']} — {result['summary']}", ""]
    if not result["findings"]:
        lines.append("no findings: the logs show none of the symptoms the doctor knows")
    for n, f in enumerate(result["findings"], 1):
        lines += [f"{n}. {f['symptom']}",
                  f"   evidence:     {f['evidence']}",
                  f"   likely cause: {f['cause']}",
                  f"   remedy:       {f['remedy']}"]
        if f["command"]:
            lines.append(f"   try:          {f['command']}")
        lines.append("")
    return "\n".join(lines).rstrip()


@cli
def main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m tinyalign.doctor",
                            description="Read a run's logs; name symptoms, causes and the overrides to try.")
    parser.add_argument("run_dir", help="a run's output_dir (trainer_state.json, recipe.yaml, completions.jsonl)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    history, recipe, completions = load_run(args.run_dir)
    result = report(args.run_dir, history, recipe, diagnose(history, recipe, completions, run_dir=args.run_dir))
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_report(result))


# ---------------------------------------------------------------- while training


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


if __name__ == "__main__":
    main()
