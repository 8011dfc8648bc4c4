"""What every benchmark and study shares: torch threads pinned, the methods called through their library
entry point, a JSON record per run, and Markdown tables.

    threads(n)                         pin torch (and child processes) to n threads
    train(method, recipe, overrides)   one sft / dpo / grpo / rm run in this process; its run directory
    train_process(..., threads, log)   the same in a child process at a stated thread count
    run_logged(command, threads, log)  any child process, its console in a log file
    record(name, figures, path)        write the run's record: commit, hardware, versions, command, figures
    table(rows, headers)               a Markdown table from rows

A record lands in bench/records/NAME-DATE.json unless --record names another path (add_record_arg); smoke
runs default to runs/bench_smoke/, which git ignores. The command is written as `python -m bench.<kind>.<name>`
with the OMP_NUM_THREADS it ran under, so a record says how to measure it again.

    python -m bench.harness train sft recipes/tiny_sft.yaml output_dir=runs/x   # what train_process runs
"""

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RECORDS = BENCH / "records"
SMOKE_RECORDS = ROOT / "runs" / "bench_smoke"
PACKAGES = ("torch", "transformers", "trl", "peft", "bitsandbytes")
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16")  # what decides bf16 speed on a CPU


# ---------------------------------------------------------------- threads and child processes


def threads(n: int) -> int:
    """Pin torch to `n` threads here, and OMP_NUM_THREADS for the processes this one starts."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)
    return n


def child_env(threads: "int | str | None" = None) -> dict:
    """The environment of a child process: this checkout importable from any folder (bench and tinyalign),
    OMP_NUM_THREADS set when `threads` is given."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def module_command(module: str, *args) -> list[str]:
    """`python -m module args`: how one bench script starts another (or itself, in a child mode)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_logged(command: list[str], threads: int, log: Path, what: str) -> None:
    """Run `command` with OMP_NUM_THREADS=`threads`, its output into `log`; exit naming `what` failed, with
    the log's tail, when it does. It runs in this folder (relative paths mean what they meant here)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(command, env=child_env(threads), stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"{what} failed; its console: {log}\n" + "\n".join(log.read_text().splitlines()[-15:]))


# ---------------------------------------------------------------- the methods, through their library entry point


def as_overrides(overrides) -> list[str]:
    """`key=value` strings, from strings or a mapping of dotted keys to values (written as YAML)."""
    if not isinstance(overrides, dict):
        return [str(o) for o in overrides]
    import yaml

    def text(value):
        value = str(value) if isinstance(value, Path) else value
        if isinstance(value, str):
            try:
                same = yaml.safe_load(value) == value
            except yaml.YAMLError:
                same = False
            return value if same else yaml.safe_dump(value, default_style="'").strip()
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()

    return [f"{key}={text(value)}" for key, value in overrides.items()]


def train(method: str, recipe_path, overrides=()) -> Path:
    """One `method` run (sft, dpo, grpo, rm) from a recipe file and overrides (`key=value` strings or a
    mapping of dotted keys to values), in this process, through the method's library entry point
    `train(recipe)`; returns its run directory."""
    from tinyalign.config import recipe as recipes
    from tinyalign.core import console
    from tinyalign.core.errors import UserError

    console.quiet()
    settings = overrides if isinstance(overrides, dict) else [str(o) for o in overrides]
    try:
        return Path(importlib.import_module(f"tinyalign.{method}").train(recipes.load(recipe_path, settings, method=method)))
    except UserError as e:
        sys.exit(f"error: {e}")


def train_process(method: str, recipe_path, overrides, threads: int, log: Path, what: str | None = None) -> Path:
    """`train` in a child process with OMP_NUM_THREADS=`threads` (its own memory, its own thread pool),
    its console in `log`; returns the run directory."""
    from tinyalign.config import recipe as recipes

    overrides = as_overrides(overrides)
    run_logged(module_command("bench.harness", "train", method, recipe_path, *overrides), threads, log,
               what or f"{method} {recipe_path}")
    return Path(recipes.load(recipe_path, overrides, method=method).output_dir)


# ---------------------------------------------------------------- the record


def commit() -> dict:
    """HEAD's sha and whether the checkout differs from it (untracked files aside)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode:
        return {"sha": None, "dirty": None}
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    return {"sha": head.stdout.strip(), "dirty": dirty}


def hardware() -> dict:
    """CPU model, cores, the CPU flags that decide bf16 speed, and the GPU where there is one."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": model, "cores": cores, "cpu_flags": {f: f in flags for f in CPU_FLAGS}, "gpu": gpu}


def versions(extra=()) -> dict:
    found = {}
    for name in (*PACKAGES, *extra):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def command_line(argv=None) -> str:
    """This run's command as `[OMP_NUM_THREADS=N] python -m bench.<kind>.<name> ARGS`."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve() if argv and argv[0] not in ("-c", "") else None
    if script and script.suffix == ".py" and script.is_relative_to(ROOT):
        program = "python -m " + ".".join(script.relative_to(ROOT).with_suffix("").parts)
    else:
        program = "python " + (argv[0] if argv else "")
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={threads} " if threads else "") + " ".join([program, *map(shlex.quote, argv[1:])])


def add_record_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", type=Path, help="where the run's JSON record goes (default: "
                        "bench/records/NAME-DATE.json; smoke runs: runs/bench_smoke/)")


def record_path(name: str, given=None, smoke: bool = False) -> Path:
    """`given`, else NAME-DATE.json in bench/records/ (runs/bench_smoke/ for a smoke run), -2, -3 ... when
    that day already has one."""
    if given:
        return Path(given)
    folder, day = (SMOKE_RECORDS if smoke else RECORDS), datetime.date.today().isoformat()
    path, n = folder / f"{name}-{day}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{day}-{n}.json"
    return path


def record(name: str, figures, path=None, smoke: bool = False, argv=None, extra_versions=()) -> Path:
    """Write the run's record (name, date, commit, hardware, versions, command, figures) as JSON; its path."""
    out = record_path(name, path, smoke)
    entry = {"name": name, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
             "commit": commit(), "hardware": hardware(), "versions": versions(extra_versions),
             "command": command_line(argv), "smoke": smoke, "figures": figures}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entry, indent=1, default=str) + "\n")
    print(f"record: {out}", flush=True)
    return out


# ---------------------------------------------------------------- tables


def _numeric(cell: str) -> bool:
    return cell[:1].isdigit() or (cell[:1] in "+-−." and cell[1:2].isdigit())


def table(rows, headers=None, align: str | None = None) -> str:
    """A Markdown table. `rows`: dicts (headers default to the first row's keys) or sequences (with
    `headers`). A cell None is "-"; other cells print as str(cell), so format figures first. `align` gives
    each column l or r; by default a column of numbers is right-aligned and any other left."""
    rows = list(rows)
    if headers is None:
        headers = list(rows[0]) if rows else []
    cells = [[("-" if v is None else str(v)) for v in (r.values() if isinstance(r, dict) else r)] for r in rows]
    if align is None:
        align = "".join("r" if any(_numeric(row[i]) for row in cells if i < len(row))
                        and all(_numeric(row[i]) or row[i] in ("-", "") for row in cells if i < len(row)) else "l"
                        for i in range(len(headers)))
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(map(str, headers)) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("train", help="one method run through bench.harness.train (what train_process starts)")
    one.add_argument("method", choices=["sft", "dpo", "grpo", "rm"])
    one.add_argument("recipe")
    one.add_argument("overrides", nargs="*")
    sub.add_parser("hardware", help="print what a record says of this machine")
    args = parser.parse_args(argv)
    if args.command == "train":
        print(train(args.method, args.recipe, args.overrides))
    else:
        print(json.dumps({"commit": commit(), "hardware": hardware(), "versions": versions()}, indent=1))


if __name__ == "__main__":
    main()
