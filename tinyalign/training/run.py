"""The run directory: what every method writes into `output_dir`, and how a run starts and ends.

    output_dir/
      recipe.yaml              the resolved recipe, written before training starts
      checkpoint-*/            TRL checkpoints (adapter, optimizer, trainer_state.json)
      adapter_model.safetensors, adapter_config.json, tokenizer files   the final adapter
      trainer_state.json       the whole log history (the doctor reads it)
      completions.jsonl        GRPO: sampled completions with their per-reward scores
      .replaced/               overwrite=true: the run being replaced, until the new one is saved

A method's `train(recipe)` runs under `with guarded(recipe) as guard:` — `prepare` (every check; writes
nothing), the trainer built, `start` (the overwritten run set aside, recipe.yaml written), `train`, and
`save`, which commits: a failure before it leaves output_dir as it was.
"""

import contextlib
import errno
import functools
import os
import shutil
from pathlib import Path

from tinyalign.config import recipe as recipes
from tinyalign.core import console, files
from tinyalign.core.errors import ArgumentParser, UserError
from tinyalign.core.run_logs import DPO_METRICS, RM_METRICS
from tinyalign.models import loading as models

FINAL = "adapter_model.safetensors"
RUN_FILES = ("recipe.yaml", "trainer_state.json", "completions.jsonl", RM_METRICS, DPO_METRICS, FINAL, "adapter_config.json",
             "README.md")  # the last: the model card TRL writes with each checkpoint
REPLACED = ".replaced"  # an overwritten run, kept until the run replacing it is saved


def parse_args(method: str, argv=None):
    parser = ArgumentParser(prog=f"python -m tinyalign.{method}",
                            description=f"4-bit QLoRA {method.upper()} from a YAML recipe.")
    recipes.add_arguments(parser)
    return parser.parse_args(argv)


def load_recipe(method: str, argv=None) -> recipes.Recipe:
    """Parse the command line, load and check the recipe (as written: the method's `resolve` fills in the rest)."""
    args = parse_args(method, argv)
    console.quiet()  # before any data is read: datasets' bars and notices stay out of the console
    return recipes.load(args.recipe, args.overrides, method=method)


def with_defaults(recipe: recipes.Recipe, defaults: dict) -> recipes.Recipe:
    """`train:` over the method's defaults, with the settings a curriculum needs in between (the
    trainers shuffle by default, which would undo it); the recipe's own keys always win."""
    from tinyalign.data import loading as data

    recipe.train = {**defaults, **data.trainer_order(recipe.data, recipe.method), **recipe.train}
    return recipe


def resolve(recipe: recipes.Recipe) -> recipes.Recipe:
    """The settings the run will use: the method module's `resolve`, which both the method script and
    `validate` call, so what validate prints is what trains."""
    import importlib

    return importlib.import_module(f"tinyalign.{recipe.method}").resolve(recipe)


def load_target(target, overrides=()) -> tuple:
    """(resolved recipe, run directory or None) for a recipe file or a run directory (its recipe.yaml):
    the commands that take either (evaluate, sample) ask here."""
    path = Path(target).expanduser()
    if path.is_dir():
        if not (path / "recipe.yaml").is_file():
            raise UserError(f"{path} is not a run directory (no recipe.yaml); pass a recipe or a run directory")
        return resolve(recipes.load(path / "recipe.yaml", overrides)), path
    return resolve(recipes.load(path, overrides)), None


def checkpoints(output_dir) -> list[Path]:
    """Complete checkpoint-N folders, oldest first. The Trainer writes trainer_state.json last, so a
    folder without it was cut off mid-save (a kill) and cannot be resumed or evaluated."""
    found = [p for p in Path(output_dir).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def is_finished(output_dir) -> bool:
    return (Path(output_dir) / FINAL).is_file()


def check_output_dir(recipe: recipes.Recipe) -> str | None:
    """Refuse to clobber a run unless asked; return the checkpoint to resume from, if resuming.

    Reads only: nothing on disk changes here (see `start`)."""
    out = Path(recipe.output_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file; give a folder for the run")
    files.check_folders_above(out, "output_dir")
    adapter = Path(recipe.model.adapter).expanduser().resolve() if recipe.model.adapter else None
    if adapter and (adapter == out.resolve() or out.resolve() in adapter.parents):
        raise UserError(f"output_dir {out} holds model.adapter {recipe.model.adapter}, the adapter this run "
                        "continues; set output_dir to a new folder")
    resume = None
    if recipe.resume:
        if is_finished(out):
            raise UserError(f"output_dir {out} holds a finished run: nothing to resume. To train it further, "
                            f"start a new run from it: model.adapter={out} output_dir=another/folder")
        resume = str(recipe.resume) if isinstance(recipe.resume, str) else None
        if resume is None:
            found = checkpoints(out)
            if not found:
                raise UserError(f"resume=true but {out} has no checkpoint-* to resume from; drop resume to start fresh")
            resume = str(found[-1])
        elif not (Path(resume) / "trainer_state.json").is_file():
            raise UserError(f"resume: {resume} is not a complete checkpoint folder (no trainer_state.json)")
    elif is_finished(out) and not recipe.overwrite:
        raise UserError(f"output_dir {out} holds a finished run; pass overwrite=true to replace it, "
                        "or output_dir=another/folder")
    elif checkpoints(out) and not recipe.overwrite:
        raise UserError(f"output_dir {out} holds an unfinished run; pass resume=true to continue it, "
                        "or overwrite=true to start again")
    return resume


def prepare(recipe: recipes.Recipe) -> str | None:
    """Every check that needs no model loaded: output_dir, the TRL config, the model and adapter
    folders. Writes nothing; returns the checkpoint to resume from, if any."""
    console.quiet()  # before any data is read, for a method called as a library (the loop, bench) too
    resume = check_output_dir(recipe)
    trl_config(recipe, recipes.trl_config_class(recipe.method))
    check_model(recipe.model)
    return resume


def check_model(spec) -> None:
    """The base exists (a local folder, or a tiny model, built now) and the adapter is there and fits it."""
    if models.resolve_name(spec.name) == spec.name and not models.looks_like_path(spec.name):
        models.check_hub_model(spec.name)
    if spec.adapter:
        models.check_adapter_base(models.adapter_dir(spec.adapter), spec.name)
    if spec.policy:
        models.policy_dir(spec)


def doctor_verdict(trainer) -> None:
    """The doctor's last check and verdict, for a run whose figures are measured after training (a reward
    model's held-out pairs); other runs get theirs when training ends."""
    from tinyalign.symptoms.callback import DoctorCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, DoctorCallback):
            callback.finish(trainer.args, trainer.state)


class Guard:
    """One run's undo steps, run newest first if its work fails before the run is saved; `commit` drops
    them. Each run has its own: a run started inside another's work (the loop's) leaves the outer one's be."""

    def __init__(self):
        self.steps: list = []

    def undo_on_failure(self, step) -> None:
        self.steps.append(step)

    def commit(self) -> None:
        self.steps.clear()

    def undo(self) -> None:
        while self.steps:
            try:
                self.steps.pop()()
            except OSError:
                pass


@contextlib.contextmanager
def guarded(recipe: recipes.Recipe):
    """`with run.guarded(recipe) as guard:` around a method's work. If it fails (a UserError, an interrupt,
    any exception) before `save` commits, output_dir is as it was: the empty folder the Trainer created is
    removed, a run being overwritten is put back (`start` set it aside); then the exception goes on."""
    guard = Guard()
    out = Path(recipe.output_dir).expanduser()
    if not out.exists():  # the Trainer creates output_dir when it is built: gone again if the run fails first
        guard.undo_on_failure(lambda: out.rmdir() if out.is_dir() and not any(out.iterdir()) else None)
    try:
        yield guard
    except BaseException:
        guard.undo()
        raise


def start(recipe: recipes.Recipe, resume: str | None, guard: Guard) -> None:
    """Model, data and trainer are ready: only now does the run directory change. A run being
    overwritten is set aside here, not before, so a recipe that fails its checks leaves it whole."""
    if not is_main_process():  # under DDP one process writes the run directory
        return
    out = Path(recipe.output_dir).expanduser()
    if recipe.overwrite and not resume and set_aside(out):
        guard.undo_on_failure(lambda: put_back(out))
    recipes.write(recipe, out / "recipe.yaml")


def run_items(out: Path) -> list[Path]:
    """What makes a folder a run: its checkpoints and files (stale ones would mix into the new run's evaluation)."""
    return [*out.glob("checkpoint-*"), *(out / name for name in RUN_FILES if (out / name).exists())]


def set_aside(out: Path) -> bool:
    """The run being overwritten moves into out/.replaced until the new run is saved, and moves back if this
    one fails first: some TRL settings are read only at the first step, and an interrupt can come any time.
    A .replaced already there is from a process killed mid-way: beside an unfinished run it holds the last
    finished one, and stays; beside a finished run (killed just after its save) it is stale."""
    aside = out / REPLACED
    if aside.is_dir() and is_finished(out):
        remove(aside)
    if aside.is_dir():
        for item in run_items(out):
            remove(item)
    elif run_items(out):
        aside.mkdir()
        for item in run_items(out):
            os.replace(item, aside / item.name)
    else:
        return False
    return True


def put_back(out: Path) -> None:
    """The failed run's files go, the overwritten run's come back."""
    for item in [*run_items(out), out / ".final"]:
        remove(item)
    aside = out / REPLACED
    for item in aside.iterdir():
        os.replace(item, out / item.name)
    aside.rmdir()


def remove(item: Path) -> None:
    if item.is_dir():
        shutil.rmtree(item)
    else:
        item.unlink(missing_ok=True)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


def train(trainer, resume: str | None) -> None:
    """trainer.train, resuming exactly. Three mends to the Trainer's resume path for PEFT models:
    - PEFT's load_adapter would upcast TRL's bf16 QLoRA weights to fp32, and the resumed run would
      drift from the uninterrupted one;
    - when a checkpoint also holds adapters in sub-folders (DPO's frozen `ref/` copy), the Trainer
      loads only those and leaves the trained adapter at its starting weights: it is loaded here;
    - a run cut during its final save has a checkpoint at its last step, from which the Trainer
      would train one step more: training is done, so its weights are loaded and only `save` is left."""
    from transformers import TrainerState

    model = trainer.model
    if resume and hasattr(model, "load_adapter"):
        model.load_adapter = functools.partial(model.load_adapter, autocast_adapter_dtype=False)
        state = TrainerState.load_from_json(str(Path(resume) / "trainer_state.json"))
        if 0 < state.max_steps <= state.global_step:
            model.load_adapter(resume, model.active_adapter, is_trainable=True)
            trainer.state = state
            return
        if any((sub / "adapter_config.json").is_file() for sub in Path(resume).iterdir() if sub.is_dir()):
            model.load_adapter(resume, model.active_adapter, is_trainable=True)
    console.install(trainer)  # the Trainer's own progress callback prints every log as a raw dict
    with disk_full_is_a_user_error(trainer.args.output_dir):
        trainer.train(resume_from_checkpoint=resume)


@contextlib.contextmanager
def disk_full_is_a_user_error(output_dir):
    """A write that fails because the disk is full (torch's serializer says only "unexpected pos" or
    "file write failed", so the disk itself is asked) becomes one line: what was being written and how much space is missing. The half-written
    checkpoint is removed (it could never be resumed); the complete ones before it stay usable."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        out = Path(output_dir)
        free = shutil.disk_usage(out if out.exists() else out.parent).free
        done = checkpoints(out)
        partial = [p for p in out.glob("checkpoint-*") if p not in done]
        need = folder_size(done[-1]) if done else folder_size(out)
        if free >= need and getattr(e, "errno", None) != errno.ENOSPC:
            raise  # not a full disk after all
        for p in partial:
            shutil.rmtree(p, ignore_errors=True)
        what = partial[0].name if partial else getattr(e, "filename", None) or "the run's files"
        kept = f"resume=true continues from {done[-1].name}" if done else "no checkpoint was complete yet"
        raise UserError(f"disk full while writing {what} in {out}: {free / 2**20:.0f} MB free, about "
                        f"{max(need - free, 0) / 2**20:.0f} MB more needed; free space, then {kept}") from None


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def trl_config(recipe: recipes.Recipe, config_cls):
    """The TRL config: hardware flags, then the recipe's `train:` (which wins)."""
    kwargs = {**models.hardware_args(recipe.model), "seed": recipe.seed, **recipe.train}
    try:
        return config_cls(output_dir=recipe.output_dir, **kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"train: {str(e).splitlines()[0]}") from None


def callbacks(recipe: recipes.Recipe) -> list:
    """The console (one progress bar, one compact line per logging step, a summary) and, unless
    `doctor: false`, the doctor's warnings. `console.install(trainer)` then takes out the Trainer's own
    progress callback, which prints every log as a raw dict."""
    from tinyalign import rewards
    from tinyalign.core import console

    console.quiet()
    accuracy = [reward.__name__ for reward in rewards.accuracy_rewards(recipe.rewards)]
    found = [console.Console(recipe.method, recipe.to_dict(), accuracy)]
    if recipe.doctor:
        from tinyalign.symptoms.callback import DoctorCallback

        found.append(DoctorCallback(recipe.to_dict()))
    return found


def save(trainer, tokenizer, recipe: recipes.Recipe, guard: Guard) -> None:
    """Final adapter + tokenizer + full log history. Everything is written into a staging folder
    first and moved into output_dir with the adapter weights last, so the run counts as finished
    only once all of it is there: a kill mid-save leaves an unfinished run that resume=true completes.
    Once it is, the guard commits: nothing after the save (a DPO run's held-out measure) undoes the run."""
    out = Path(recipe.output_dir)
    staging = out / ".final"
    with disk_full_is_a_user_error(out):
        if trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
        trainer.save_model(str(staging))  # collective under FSDP/DeepSpeed: every process calls it
        if not trainer.is_world_process_zero():
            guard.commit()
            return
        trainer.state.save_to_json(str(staging / "trainer_state.json"))
        tokenizer.save_pretrained(staging)
        for item in sorted(staging.iterdir(), key=lambda p: p.name == FINAL):  # FINAL last: it marks the run finished
            target = out / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        staging.rmdir()
        shutil.rmtree(out / REPLACED, ignore_errors=True)  # the new run is whole: the one it replaced can go
        guard.commit()
    print(f"saved adapter to {out}")
