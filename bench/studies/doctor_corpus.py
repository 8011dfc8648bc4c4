"""Calibrate the doctor on real runs: a labeled corpus of tiny GRPO and DPO runs, and its precision/recall;
then check it on a held-out corpus of real-model runs that no threshold was tuned on.

    python -m bench.studies.doctor_corpus               # train what the cache lacks, label it, print + write the table
    python -m bench.studies.doctor_corpus --table-only  # recompute the table from the cached logs and labels only
    python -m bench.studies.doctor_corpus --corpus real --threads 2   # the held-out SmolLM2 corpus (~13 min a run)

A study, not a benchmark: it measures what the doctor says (precision and recall against held-out labels),
not speed or memory against plain TRL; it reproduces the two doctor sections of bench/RESULTS.md, writing
their tables there between their markers, and its record (bench/harness.py) to --record.

Each run starts from one short tiny SFT adapter and varies one thing (learning rate, beta, temperature,
the reward set: including a hackable format reward the model can satisfy without the answer). Each is
labeled by what happened to its held-out task metric (greedy exact match on the tiny task's test split,
start adapter vs final adapter), never by its training logs:

    improved   accuracy rose by >= DELTA              flat   moved less than DELTA either way
    degraded   accuracy fell by >= DELTA              collapsed   accuracy under COLLAPSED_SHARE of the start
    hacked     the hackable reward's held-out rate rose by >= HACK_RISE while accuracy did not improve

Then the doctor reads each run's logs (exactly what `python -m tinyalign.doctor RUN` reads) and the
table says, per symptom, how often it fired and on which labels, and per label, how often the doctor
named it right. The held-out corpus (`--corpus real`) does the same with SmolLM2-135M-Instruct GRPO runs
on word problems, started from the real-model demo's SFT stage as recorded (30 steps at a constant LR)
and labeled by math_accuracy on 300 held-out problems; its table is reported apart, and no threshold may
be changed to fit it. The caches (bench/studies/doctor_runs/tiny/<run>/ and .../real/<run>/:
trainer_state.json, recipe.yaml, completions.jsonl, label.json) are small and kept in git, so the tables
are rebuilt without training.
Training and labeling take the shared CPU lock one run at a time (other work runs between runs).
"""

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from tinyalign.config.recipe import builtin

ROOT = harness.ROOT
RUNS = harness.BENCH / "studies" / "doctor_runs"  # the corpora's logs and labels, kept in git

LOCK = "/tmp/tinyalign-cpu.lock"
KEPT = ("trainer_state.json", "recipe.yaml", "completions.jsonl")

PROMPTS = 300  # held-out questions per label; the accuracy of a difference of two such runs has SE ~0.03
DELTA = 0.05  # a change under 5 points is within the noise of 300 greedy answers
COLLAPSED_SHARE = 0.35  # under a third of the start's accuracy left: the skill is gone, not dented
HACK_RISE = 0.20  # the hackable reward's held-out rate rose by 20 points

# Hackable: "the answer ends in 0" is a format any output can meet without being the sum.
ROUND = "{name: regex_match, pattern: '0\\s*$', weight: 1.0}"
# Hackable: a closing parenthesis, left over from the base model's style "46 (12+34)" that SFT trained
# away; some start answers still end in one ("167)"), and exact match fails on every such answer.
PAREN = "{name: regex_match, pattern: '\\)', weight: 1.0}"

GRPO = dict(recipe="tiny_grpo.yaml", base=["probe=false", "train.max_steps=30", "train.logging_steps=2",
                                          "train.save_strategy=no", "train.warmup_steps=3"])
DPO = dict(recipe="tiny_dpo.yaml", base=["train.max_steps=30", "train.logging_steps=2", "train.save_strategy=no",
                                        "train.warmup_steps=3", "data.limit=600"])

# name -> (method settings, overrides). One thing varies per run, around the demo's healthy settings.
GRID = {
    "grpo_default": (GRPO, []),
    "grpo_lr3e-5": (GRPO, ["train.learning_rate=3e-5"]),
    "grpo_lr1e-6": (GRPO, ["train.learning_rate=1e-6"]),
    "grpo_lr1e-3": (GRPO, ["train.learning_rate=1e-3"]),
    "grpo_lr3e-3": (GRPO, ["train.learning_rate=3e-3"]),
    "grpo_lr4.5e-3": (GRPO, ["train.learning_rate=4.5e-3"]),
    "grpo_lr6e-3": (GRPO, ["train.learning_rate=6e-3"]),
    "grpo_lr1e-2": (GRPO, ["train.learning_rate=1e-2"]),
    "grpo_lr1e-2_beta0.04": (GRPO, ["train.learning_rate=1e-2", "train.beta=0.04"]),
    "grpo_lr2e-2": (GRPO, ["train.learning_rate=2e-2"]),
    "grpo_beta0": (GRPO, ["train.beta=0.0"]),
    "grpo_beta0_lr1e-2": (GRPO, ["train.beta=0.0", "train.learning_rate=1e-2"]),
    "grpo_beta0.1": (GRPO, ["train.beta=0.1"]),
    "grpo_beta1_lr1e-3": (GRPO, ["train.beta=1.0", "train.learning_rate=1e-3"]),
    "grpo_cap1": (GRPO, ["train.max_completion_length=1"]),  # every answer cut: truncated ones are masked
    "grpo_temp0.5": (GRPO, ["train.temperature=0.5"]),
    "grpo_temp1.5": (GRPO, ["train.temperature=1.5"]),
    "grpo_hack_round": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.0}}, {ROUND}]", "train.learning_rate=1e-3"]),
    "grpo_hack_paren": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]", "train.learning_rate=3e-4"]),
    "grpo_hack_paren_beta0.04": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]",
                                        "train.learning_rate=3e-4", "train.beta=0.04"]),
    "grpo_hack_paren_lr1e-3": (GRPO, [f"rewards=[{{name: exact_match, weight: 0.2}}, {PAREN}]",
                                      "train.learning_rate=1e-3"]),
    "grpo_format_with_accuracy": (GRPO, [f"rewards=[{{name: exact_match, weight: 1.0}}, {ROUND.replace('1.0', '0.1')}]"]),
    "dpo_default": (DPO, []),
    "dpo_sigmoid_only": (DPO, ["train.loss_type=[sigmoid]"]),
    "dpo_lr2e-5": (DPO, ["train.learning_rate=2e-5"]),
    "dpo_lr1e-7": (DPO, ["train.learning_rate=1e-7"]),
    "dpo_lr3e-3": (DPO, ["train.learning_rate=3e-3"]),
    "dpo_lr8e-3": (DPO, ["train.learning_rate=8e-3"]),
    "dpo_lr2e-2": (DPO, ["train.learning_rate=2e-2"]),
    "dpo_beta0.01_sigmoid": (DPO, ["train.beta=0.01", "train.loss_type=[sigmoid]"]),
    "dpo_lr1e-2_beta0.01_sigmoid": (DPO, ["train.learning_rate=1e-2", "train.beta=0.01", "train.loss_type=[sigmoid]"]),
    "dpo_beta1": (DPO, ["train.beta=1.0"]),
}

# The held-out corpus: SmolLM2 GRPO runs on word problems from the real-model demo's SFT stage as it was
# recorded (30 steps at a constant LR: 47 % held out) and its GRPO recipe (12 steps of 8 problems x 8 answers,
# 32 tokens), one thing varied per run.
REAL = dict(recipe="smollm2_word_grpo.yaml", base=["probe=false", "train.save_strategy=no"])
# Hackable: the answer's last number ends in 0 ("The answer is 20."), which any answer can meet.
REAL_ROUND = "{name: regex_match, pattern: '0\\.?\\s*$', weight: 1.0}"
REAL_GRID = {
    "real_default": (REAL, []),
    "real_lr2e-4": (REAL, ["train.learning_rate=2e-4"]),
    "real_lr5e-4": (REAL, ["train.learning_rate=5e-4"]),
    "real_hack_round": (REAL, [f"rewards=[{{name: math_accuracy, weight: 0.2}}, {REAL_ROUND}]",
                               "train.learning_rate=3e-4"]),
    "real_lr5e-4_beta0.04": (REAL, ["train.learning_rate=5e-4", "train.beta=0.04"]),
}


@dataclass(frozen=True)
class Corpus:
    """Where a corpus's runs are kept and how they are labeled."""
    name: str  # as --corpus spells it
    grid: dict
    cache: Path  # logs and labels, small, kept in git
    scratch: Path  # adapters and checkpoints: big, not kept
    start_recipe: str  # the SFT recipe whose adapter every run starts from
    task: str  # the GRPO recipe whose held-out split labels the runs
    accuracy: str  # the reward that says an answer is right
    max_new_tokens: int
    marker: str  # the table's section in bench/RESULTS.md
    start_overrides: tuple = ()  # the start adapter as it was when the corpus was recorded


CORPORA = {c.name: c for c in (
    Corpus("tiny", GRID, RUNS / "tiny", ROOT / "runs" / "doctor_corpus", "tiny_sft.yaml",
           "tiny_grpo.yaml", "exact_match", 16, "doctor corpus table"),
    Corpus("real", REAL_GRID, RUNS / "real", ROOT / "runs" / "doctor_corpus_real",
           "smollm2_word_sft.yaml", "smollm2_word_grpo.yaml", "math_accuracy", 32,
           "doctor held-out corpus table", ("train.max_steps=30", "train.lr_scheduler_type=constant")),
)}

# What a right diagnosis of each label is: a symptom whose named cause is what went wrong.
RIGHT = {
    "hacked": {"reward_hacking", "identical_completions"},
    "collapsed": {"reward_falling", "kl_runaway", "loss_spikes", "entropy_collapse", "identical_completions",
                  "looping_completions", "length_collapse", "clip_ratio_high", "dpo_loss_collapse",
                  "dpo_margins_falling"},
    "degraded": {"reward_falling", "kl_runaway", "loss_spikes", "entropy_collapse", "clip_ratio_high",
                 "dpo_loss_collapse", "dpo_margins_falling", "identical_completions", "looping_completions"},
    "flat": {"reward_flat", "kl_tiny_reward_flat", "dpo_margins_flat", "reward_zero_std", "nothing_learned"},
    "improved": set(),
}
SICK = ("degraded", "collapsed", "hacked")
# A symptom can be true of a run without naming what went wrong: KL does run away in a hacked run. For
# precision, a finding counts as right on these labels too. kl_far_while_learning is a check, not a cause:
# it is right wherever the training reward's rise did not hold out.
ALSO_TRUE = {"kl_runaway": {"hacked"}, "entropy_collapse": {"hacked", "flat"}, "reward_zero_std": {"collapsed"},
             "length_collapse": {"hacked"}, "length_to_cap": {"hacked"},
             "kl_far_while_learning": {"hacked", "degraded", "flat"}}


def right_on(symptom: str, label: str) -> bool:
    return symptom in RIGHT[label] or label in ALSO_TRUE.get(symptom, ())


@contextmanager
def cpu_lock():
    """The box's shared lock, held for one run at a time so other work gets the CPU in between."""
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def label_process(corpus: Corpus, run_dir: Path, sft: Path, threads: int) -> None:
    """label_run in a child process (its own memory; the trained models stay out of this one)."""
    env = {**harness.child_env(threads), "TOKENIZERS_PARALLELISM": "false"}
    command = harness.module_command("bench.studies.doctor_corpus", "--label", run_dir, sft, "--corpus", corpus.name)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")


def start_adapter(corpus: Corpus, threads: int) -> Path:
    sft = corpus.scratch / "sft"
    if not (sft / "adapter_model.safetensors").is_file():
        with cpu_lock():
            harness.train_process("sft", builtin(corpus.start_recipe), [*corpus.start_overrides, f"output_dir={sft}",
                                  "overwrite=true"], threads, corpus.scratch / "sft.log", "the start's SFT")
    return sft


def train_and_label(corpus: Corpus, name: str, settings: dict, overrides: list[str], sft: Path, threads: int) -> None:
    out = corpus.scratch / name
    method = "dpo" if settings is DPO else "grpo"
    with cpu_lock():
        began = time.time()
        harness.train_process(method, builtin(settings["recipe"]), [f"model.adapter={sft}", f"output_dir={out}",
                              "overwrite=true", "doctor=false", *settings["base"], *overrides], threads,
                              corpus.scratch / f"{name}.log", name)
        took = time.time() - began
        label_process(corpus, out, sft, threads)
    kept = corpus.cache / name
    kept.mkdir(parents=True, exist_ok=True)
    for file in KEPT + ("label.json",):
        if (out / file).is_file():
            shutil.copy(out / file, kept / file)
    label = json.loads((kept / "label.json").read_text())
    label["train_s"] = round(took, 1)
    (kept / "label.json").write_text(json.dumps(label, indent=1) + "\n")
    print(f"{name}: {label['label']} (accuracy {label['start']['accuracy']:.2f} -> {label['final']['accuracy']:.2f}, "
          f"{took:.0f} s)", flush=True)


def label_run(corpus: Corpus, run_dir: Path, sft: Path) -> None:
    """Held-out metrics of the start and final adapters, and the label they give; writes label.json.
    The start adapter's answers are the same for every run of a corpus: generated once, kept beside it."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from tinyalign import rewards
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.measure import solve_rate
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generate

    task = recipes.load(builtin(corpus.task))  # the task's held-out questions with answers
    recipe = recipes.load(run_dir / "recipe.yaml")
    rows = data.eval_rows(task.data, limit=PROMPTS, seed=task.seed)
    accuracy = rewards.resolve({"name": corpus.accuracy})
    others = [reward for reward in map(rewards.resolve, recipe.rewards) if reward.kind != "accuracy"]
    cached = sft / "held_out_answers.json"  # the start's answers, the same for every run of the corpus
    policy, tokenizer = model.load_with_adapters(
        task.model, {"final": str(run_dir)} if cached.is_file() else {"start": str(sft), "final": str(run_dir)})

    def answers_of(adapter: str) -> list[str]:
        policy.set_adapter(adapter)
        prompts = [r["prompt"] for r in rows]
        return [c[0] for c in generate(policy, tokenizer, prompts, max_new_tokens=corpus.max_new_tokens)]

    if not cached.is_file():
        cached.write_text(json.dumps(answers_of("start")))
    metrics = {}
    for name, answers in (("start", json.loads(cached.read_text())), ("final", answers_of("final"))):
        columns = {"answer": [r["answer"] for r in rows]}
        metrics[name] = {"accuracy": sum(solve_rate.solved(accuracy, answers, **columns)) / len(rows),
                         "most_common_share": max(answers.count(a) for a in set(answers)) / len(rows),
                         "examples": answers[:5]}
        for reward in others:
            metrics[name][f"hack/{reward.__name__}"] = sum(solve_rate.at_max(reward, reward(answers, **columns))) / len(rows)
    (run_dir / "label.json").write_text(json.dumps({"label": label_of(metrics), **metrics}, indent=1) + "\n")


def label_of(metrics: dict) -> str:
    start, final = metrics["start"], metrics["final"]
    change = final["accuracy"] - start["accuracy"]
    hack = max((final[k] - start[k] for k in final if k.startswith("hack/")), default=0.0)
    if hack >= HACK_RISE and change < DELTA:
        return "hacked"
    if final["accuracy"] < COLLAPSED_SHARE * start["accuracy"]:
        return "collapsed"
    if change <= -DELTA:
        return "degraded"
    return "improved" if change >= DELTA else "flat"


# ---------------------------------------------------------------- the table


def score_corpus(corpus: Corpus) -> tuple[list[dict], str]:
    from tinyalign import doctor

    runs = []
    for folder in sorted(p for p in corpus.cache.iterdir() if (p / "label.json").is_file()):
        history, recipe, completions = doctor.load_run(folder)
        label = json.loads((folder / "label.json").read_text())
        found = [f.symptom for f in doctor.diagnose(history, recipe, completions)]
        runs.append({"run": folder.name, "label": label["label"], "findings": found,
                     "start": label["start"]["accuracy"], "final": label["final"]["accuracy"]})
    return runs, markdown(runs)


def summary(runs: list[dict]) -> dict:
    """The corpus's goals in figures: recall on sick runs, findings on improved ones, false alarms."""
    sick = [r for r in runs if r["label"] in SICK]
    # A false alarm: a finding on a run that did not get worse that names no cause its label can have.
    healthy = [r for r in runs if r["label"] in ("improved", "flat")]
    return {"sick": len(sick), "sick_named_right": sum(bool(set(r["findings"]) & RIGHT[r["label"]]) for r in sick),
            "improved": sum(r["label"] == "improved" for r in runs),
            "improved_with_a_finding": sum(bool(r["findings"]) for r in runs if r["label"] == "improved"),
            "healthy": len(healthy),
            "false_alarms": sum(any(not right_on(s, r["label"]) for s in r["findings"]) for r in healthy)}


def markdown(runs: list[dict]) -> str:
    rows = []
    for r in runs:
        verdict = ("yes" if set(r["findings"]) & RIGHT[r["label"]] else "**missed**") if r["label"] in SICK else \
                  ("yes" if not r["findings"] else "**false alarm**") if r["label"] == "improved" else "-"
        rows.append((r["run"], f"{r['start']:.2f} → {r['final']:.2f}", r["label"], ", ".join(r["findings"]) or "—",
                     verdict))
    parts = [harness.table(rows, ["run", "held-out accuracy", "label", "doctor's findings", "right?"], align="lllll")]
    rows = []
    for label in ("improved", "flat", "degraded", "collapsed", "hacked"):
        of = [r for r in runs if r["label"] == label]
        if of:
            right = sum(bool(set(r["findings"]) & RIGHT[label]) for r in of)
            rows.append((label, len(of), f"{right}/{len(of)}" if RIGHT[label] else "-",
                         f"{sum(bool(r['findings']) for r in of)}/{len(of)}"))
    parts.append(harness.table(rows, ["label", "runs", "named with a right symptom", "any finding"], align="llll"))
    rows = []
    for s in sorted({s for r in runs for s in r["findings"]}):
        fired = [r for r in runs if s in r["findings"]]
        right = [r for r in fired if right_on(s, r["label"])]
        rows.append((s, len(fired), f"{len(right)}/{len(fired)}", ", ".join(sorted({r["label"] for r in fired}))))
    parts.append(harness.table(rows, ["symptom", "fired on", "right label (precision)", "labels it fired on"],
                               align="llll"))
    n = summary(runs)
    parts.append(f"Recall on degraded/collapsed/hacked runs: {n['sick_named_right']}/{n['sick']}; improved runs with "
                 f"any finding: {n['improved_with_a_finding']}/{n['improved']}; false alarms on improved or flat "
                 f"runs: {n['false_alarms']}/{n['healthy']}.")
    return "\n\n".join(parts)


def write_results(corpus: Corpus, table: str) -> None:
    """Replace the corpus section of bench/RESULTS.md between its markers (appended the first time)."""
    path = harness.BENCH / "RESULTS.md"
    begin, end = f"<!-- {corpus.marker}: begin -->", f"<!-- {corpus.marker}: end -->"
    text = path.read_text()
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.doctor_corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="tiny",
                        help="tiny: the corpus the thresholds are tuned on; real: the held-out SmolLM2 runs")
    parser.add_argument("--table-only", action="store_true", help="score the cached corpus; train nothing")
    parser.add_argument("--only", nargs="*", help="train just these grid runs (names as in the corpus's grid)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and labeling")
    parser.add_argument("--label", nargs=2, metavar=("RUN_DIR", "SFT_DIR"), help=argparse.SUPPRESS)
    harness.add_record_arg(parser)
    args = parser.parse_args()
    corpus = CORPORA[args.corpus]
    if args.label:
        return label_run(corpus, Path(args.label[0]), Path(args.label[1]))
    if not args.table_only:
        todo = {n: spec for n, spec in corpus.grid.items() if (not args.only or n in args.only)
                and not (corpus.cache / n / "label.json").is_file()}
        if todo:
            sft = start_adapter(corpus, args.threads)
            for name, (settings, overrides) in todo.items():
                train_and_label(corpus, name, settings, overrides, sft, args.threads)
    runs, table = score_corpus(corpus)
    print(table)
    write_results(corpus, table)
    harness.record(f"doctor_corpus_{corpus.name}", {"corpus": corpus.name, **summary(runs), "runs": runs}, args.record)


if __name__ == "__main__":
    main()
