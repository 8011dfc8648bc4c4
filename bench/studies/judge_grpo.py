"""GRPO on the sums judge against the rule and the scalar RM of the same votes, from the same start and budget.

    python -m bench.studies.judge_grpo --seeds 0 1 --rewards rule rm judge    # ~80 min on 2 cores, bf16
    python -m bench.studies.judge_grpo --task words --seeds 0 --rewards rule judge   # word problems, ~30 min
    options: [--steps N] [--threads 2] [--start RUN] [--votes STORE] [--judge RUN] [--work DIR] [--record FILE]
    rewards: rule, rm, judge (solving first, both orders), judge-1order, judge-inline (its solution beside the answers)

--task sums (the defaults): the start, the votes and the judge are bench.studies.sums_judge's (its docstring
makes them); recipes/smollm2_sums_grpo.yaml, 30 steps of 8 prompts x 8 answers, a checkpoint every 10, the
learned rewards at beta 0.1 as `python -m tinyalign.loop run --task smollm2-sums` runs them, 500 held-out sums.
--task words: the word-problem judge of bench.studies.real_judge from the 10-step word SFT start (bench/RESULTS.md,
"From a shorter SFT start"); recipes/smollm2_word_grpo.yaml as it is, 12 steps, a checkpoint every 6, 300
held-out problems. The scalar RM is trained once from the votes as the loop trains it. The judge compares each
answer with two others of its group, never with the reference. Held out: greedy accuracy at each checkpoint,
with the paired 95 % interval against the start. From each judge run's log: the share of the judge's decisive verdicts
on the policy's own answers that the checker backs, per step; the judge's seconds against the step's.
Each run is cached in --work; prints Markdown tables, writes WORK/results.json and the run's record.
"""

import argparse
import json
import statistics
from pathlib import Path

from bench import harness

TASKS = {  # --task -> the recipe, its budget, the held-out count, the defaults of the paths, the judgement length
    "sums": {"recipe": "recipes/smollm2_sums_grpo.yaml", "steps": 30, "every": 10, "held_out": 500, "beta": 0.1,
             "start": "runs/rft/sft15", "votes": "runs/loop-sft/s0b/votes-r1.sqlite",
             "judge": "runs/sumjudge2/judge_T2_S0", "work": "runs/judge_grpo", "max_new_tokens": 40},
    "words": {"recipe": "recipes/smollm2_word_grpo.yaml", "steps": 12, "every": 6, "held_out": 300, "beta": None,
              "start": "runs/wsft/c30/checkpoint-10", "votes": "runs/real_rm/votes.sqlite",
              "judge": "runs/real_judge2/judge_T2_S0", "work": "runs/judge_grpo_words", "max_new_tokens": 64},
}
JUDGE = {"name": "pairwise_judge", "checker": "math_accuracy", "batch_size": 64}
REWARDS = {  # name -> the run's reward settings; None: the recipe's rule
    "rule": None,
    "rm": {"name": "reward_model"},
    "judge": {**JUDGE, "solve_first": True},
    "judge-1order": {**JUDGE, "solve_first": True, "orders": 1},
    "judge-inline": {**JUDGE, "solve_first": False, "max_new_tokens": 64},
}


def scalar_rm(votes: Path, start: Path, work: Path, threads: int) -> Path:
    """The loop's round-1 reward model on the votes, from the start's policy; cached."""
    from tinyalign.experiments.tasks import TASKS
    from tinyalign.models.reward_model import is_reward_model

    setup, run = TASKS["smollm2-sums"], work / "rm"
    if not is_reward_model(str(run)):
        settings = {**setup.rm_settings, "model.policy": str(start), "data.split": "train", "data.test_split": "test",
                    "data.source": str(votes), "overwrite": True, "output_dir": str(run)}
        print(f"the scalar RM on {votes} -> {run} (console: {work / 'log_rm.txt'})", flush=True)
        harness.train_process("rm", setup.rm, settings, threads, work / "log_rm.txt", "the scalar RM")
    return run


def policy(reward: str, seed: int, args, rm: "Path | None") -> Path:
    """One GRPO run; cached."""
    run = args.work / f"{reward}_s{seed}"
    if (run / "trainer_state.json").is_file():
        return run
    task = TASKS[args.task]
    settings = {"model.adapter": str(args.start), "probe": False, "overwrite": True, "seed": seed,
                "train.max_steps": args.steps, "train.save_steps": task["every"], "output_dir": str(run)}
    chosen = REWARDS[reward]
    if chosen is not None:
        settings["rewards"] = [{**chosen, "model": str(rm)} if reward == "rm" else
                               {"max_new_tokens": task["max_new_tokens"], **chosen, "judge": str(args.judge)}]
        if task["beta"] is not None:  # else the recipe's
            settings["train.beta"] = task["beta"]
    log = args.work / f"log_{run.name}.txt"
    print(f"GRPO on {reward}, seed {seed}, {args.steps} steps -> {run} (console: {log})", flush=True)
    harness.train_process("grpo", task["recipe"], settings, args.threads, log, f"GRPO {run.name}")
    return run


def logged(run: Path) -> dict:
    """Per-step figures from a run's log: step seconds, and for a judge its seconds and the checker's agreement."""
    steps = [h for h in json.loads((run / "trainer_state.json").read_text())["log_history"] if "step_time" in h]
    pick = lambda key: [h[key] for h in steps if key in h]
    out = {"step_s": statistics.median(pick("step_time")), "kl_last": steps[-1].get("kl")}
    if pick("pairwise_judge/seconds"):
        out |= {"judge_s": statistics.median(pick("pairwise_judge/seconds")),
                "checker_agreement": [round(v, 3) for v in pick("pairwise_judge/checker_agreement")],
                "position_bias": [round(v, 3) for v in pick("pairwise_judge/position_bias")],
                "judged": statistics.median(pick("pairwise_judge/judged"))}
    return out


def held_out(runs: dict[str, Path], start: Path, steps: int, task: dict, cache: Path) -> dict:
    """Accuracy on the task's held-out problems at each checkpoint, and the paired interval against the start;
    each checkpoint's verdicts cached in `cache` by its folder."""
    from tinyalign.measure.solve_rate import held_out_verdicts, paired_interval95

    adapters = {"start": str(start)}
    for name, run in runs.items():
        for step in range(task["every"], steps, task["every"]):
            adapters[f"{name}@{step}"] = str(run / f"checkpoint-{step}")
        adapters[f"{name}@{steps}"] = str(run)
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    missing = {name: path for name, path in adapters.items() if path not in known}
    if missing:
        verdicts = held_out_verdicts(task["recipe"], missing, task["held_out"], base=False)
        known |= {missing[name]: right for name, right in verdicts.items()}
        cache.write_text(json.dumps(known) + "\n")
    right = {name: known[path] for name, path in adapters.items()}
    out = {"start": {"accuracy": sum(right["start"]) / len(right["start"])}}
    for name in adapters:
        if name != "start":
            gain, low, high = paired_interval95(right["start"], right[name])
            out[name] = {"accuracy": sum(right[name]) / len(right[name]), "gain": gain, "interval": [low, high]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.judge_grpo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), default="sums")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rewards", nargs="+", choices=list(REWARDS), default=["rule", "rm", "judge"])
    parser.add_argument("--steps", type=int, help="default: the task's (sums 30, words 12)")
    parser.add_argument("--threads", type=int, default=2)
    for path in ("start", "votes", "judge", "work"):
        parser.add_argument(f"--{path}", type=Path, help="default: the task's (see above)")
    harness.add_record_arg(parser)
    args = parser.parse_args()
    task = TASKS[args.task]
    for key in ("steps", "start", "votes", "judge", "work"):
        if getattr(args, key) is None:
            setattr(args, key, task[key] if key == "steps" else Path(task[key]))
    harness.threads(args.threads)
    needed = [args.start, args.judge] + ([args.votes] if "rm" in args.rewards else [])
    for need in needed:
        if not need.exists():
            raise SystemExit(f"{need} not found; make it as this module's docstring says")
    args.work.mkdir(parents=True, exist_ok=True)

    rm = scalar_rm(args.votes, args.start, args.work, args.threads) if "rm" in args.rewards else None
    runs = {f"{reward}_s{seed}": policy(reward, seed, args, rm) for seed in args.seeds for reward in args.rewards}
    scores = held_out(runs, args.start, args.steps, task, args.work / "held_out_verdicts.json")
    logs = {name: logged(run) for name, run in runs.items()}

    rows = []
    for name in runs:
        reward, seed = name.rsplit("_s", 1)
        cells = [reward, seed]
        for step in range(task["every"], args.steps + 1, task["every"]):
            s = scores[f"{name}@{step}"]
            cells.append(f"{s['gain'] * 100:+.1f} ({s['interval'][0] * 100:+.1f}..{s['interval'][1] * 100:+.1f})")
        log = logs[name]
        agreement = log.get("checker_agreement")
        cells += [f"{scores[f'{name}@{args.steps}']['accuracy']:.1%}", f"{log['step_s']:.1f}",
                  f"{log['judge_s']:.1f}" if "judge_s" in log else "",
                  f"{statistics.median(agreement):.2f} ({min(agreement):.2f}..{max(agreement):.2f})" if agreement else ""]
        rows.append(cells)
    headers = ["reward", "seed", *[f"gain @{s}" for s in range(task["every"], args.steps + 1, task["every"])],
               "held out", "step (s)",
               "judge (s)", "checker agrees (median, range)"]
    print(f"\nstart {scores['start']['accuracy']:.1%} on {task['held_out']} held-out problems ({args.task}); gains in "
          "points, paired 95 % intervals\n")
    print(harness.table(rows, headers))
    figures = {"task": args.task, "steps": args.steps, "seeds": args.seeds, "start": str(args.start),
               "judge": str(args.judge),
               "held_out": scores, "logs": logs}
    (args.work / "results.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(f"\nwrote {harness.record('judge_grpo', figures, args.record)}")


if __name__ == "__main__":
    main()
