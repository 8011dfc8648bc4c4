"""The doctor: read a run's logs, name what is going wrong, and say which recipe overrides to try next.

    python -m tinyalign.doctor runs/qwen_1.5b_math          # a readable report
    python -m tinyalign.doctor runs/qwen_1.5b_math --json   # the same findings for scripts

The checks themselves are in `tinyalign.symptoms` (one small function per row of the symptoms -> remedies
table in docs/practice.md, calibrated on a labeled corpus of real runs: bench/studies/doctor_corpus.py); this
module reads run directories, writes the report and the commands to try, and warns while training.

While training, `DoctorCallback` (tinyalign.symptoms.callback, importable from here too) runs the same
checks every few logs and prints one line the first time each symptom shows (`recipe.doctor: true`).
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
from tinyalign.symptoms.callback import read_completions

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


def __getattr__(name):
    if name == "DoctorCallback":  # built on first use (it needs transformers): tinyalign.symptoms.callback
        from tinyalign.symptoms.callback import DoctorCallback

        return DoctorCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
