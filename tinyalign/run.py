"""The run directory: what every method writes into `output_dir`, and how a run starts and ends.

    output_dir/
      recipe.yaml              the resolved recipe, written before training starts
      checkpoint-*/            TRL checkpoints (adapter, optimizer, trainer_state.json)
      adapter_model.safetensors, adapter_config.json, tokenizer files   the final adapter
      trainer_state.json       the whole log history (the doctor reads it)
      completions.jsonl        GRPO: sampled completions with their per-reward scores
"""

import argparse
import functools
import os
import shutil
from pathlib import Path

from . import recipe as recipes
from .errors import UserError
from .model import hardware_args

FINAL = "adapter_model.safetensors"
RUN_FILES = ("recipe.yaml", "trainer_state.json", "completions.jsonl", FINAL, "adapter_config.json")


def parse_args(method: str, argv=None):
    parser = argparse.ArgumentParser(prog=f"python -m tinyalign.{method}",
                                     description=f"4-bit QLoRA {method.upper()} from a YAML recipe.")
    parser.add_argument("recipe", help="recipe YAML, e.g. recipes/tiny_sft.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. train.max_steps=10 output_dir=/tmp/x")
    return parser.parse_args(argv)


def load_recipe(method: str, argv=None, defaults: dict | None = None) -> recipes.Recipe:
    """Parse the command line, load and check the recipe; the method's defaults go under `train:`."""
    args = parse_args(method, argv)
    recipe = recipes.load(args.recipe, args.overrides, method=method)
    recipe.train = {**(defaults or {}), **recipe.train}
    return recipe


def checkpoints(output_dir) -> list[Path]:
    """Complete checkpoint-N folders, oldest first. The Trainer writes trainer_state.json last, so a
    folder without it was cut off mid-save (a kill) and cannot be resumed or evaluated."""
    found = [p for p in Path(output_dir).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def is_finished(output_dir) -> bool:
    return (Path(output_dir) / FINAL).is_file()


def check_output_dir(recipe: recipes.Recipe) -> str | None:
    """Refuse to clobber a run unless asked; return the checkpoint to resume from, if resuming."""
    out = Path(recipe.output_dir)
    resume = None
    if recipe.resume:
        resume = str(recipe.resume) if isinstance(recipe.resume, str) else None
        if resume is None:
            found = checkpoints(out)
            if not found:
                raise UserError(f"resume=true but {out} has no checkpoint-* to resume from; drop resume to start fresh")
            resume = str(found[-1])
        elif not Path(resume).is_dir():
            raise UserError(f"resume: checkpoint folder not found: {resume}")
    elif is_finished(out) and not recipe.overwrite:
        raise UserError(f"output_dir {out} holds a finished run; pass overwrite=true to replace it, "
                        "or output_dir=another/folder")
    elif checkpoints(out) and not recipe.overwrite:
        raise UserError(f"output_dir {out} holds an unfinished run; pass resume=true to continue it, "
                        "or overwrite=true to start again")
    return resume


def prepare(recipe: recipes.Recipe) -> str | None:
    """Check output_dir, clear a run being overwritten, write recipe.yaml; return a checkpoint to resume."""
    out = Path(recipe.output_dir)
    resume = check_output_dir(recipe)
    if not is_main_process():  # under DDP one process writes the run directory
        return resume
    if recipe.overwrite and not resume:
        for old in checkpoints(out):  # stale checkpoints would mix into evaluation of the new run
            shutil.rmtree(old)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    recipes.write(recipe, out / "recipe.yaml")
    return resume


def is_main_process() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


def train(trainer, resume: str | None) -> None:
    """trainer.train, resuming exactly. Two mends to the Trainer's resume path for PEFT models:
    - PEFT's load_adapter would upcast TRL's bf16 QLoRA weights to fp32, and the resumed run would
      drift from the uninterrupted one;
    - when a checkpoint also holds adapters in sub-folders (DPO's frozen `ref/` copy), the Trainer
      loads only those and leaves the trained adapter at its starting weights: it is loaded here."""
    model = trainer.model
    if resume and hasattr(model, "load_adapter"):
        model.load_adapter = functools.partial(model.load_adapter, autocast_adapter_dtype=False)
        if any((sub / "adapter_config.json").is_file() for sub in Path(resume).iterdir() if sub.is_dir()):
            model.load_adapter(resume, model.active_adapter, is_trainable=True)
    trainer.train(resume_from_checkpoint=resume)


def trl_config(recipe: recipes.Recipe, config_cls):
    """The TRL config: hardware flags, then the recipe's `train:` (which wins)."""
    kwargs = {**hardware_args(recipe.model), "seed": recipe.seed, **recipe.train}
    try:
        return config_cls(output_dir=recipe.output_dir, **kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"train: {str(e).splitlines()[0]}") from None


def callbacks(recipe: recipes.Recipe) -> list:
    """The console (one progress bar, one compact line per logging step, a summary) and, unless
    `doctor: false`, the doctor's warnings. `console.install(trainer)` then takes out the Trainer's own
    progress callback, which prints every log as a raw dict."""
    from . import console

    console.quiet()
    found = [console.Console(recipe.method, recipe.to_dict())]
    if recipe.doctor:
        from .doctor import DoctorCallback

        found.append(DoctorCallback(recipe.to_dict()))
    return found


def save(trainer, tokenizer, recipe: recipes.Recipe) -> None:
    """Final adapter + tokenizer + full log history; the adapter file last, since it marks the run finished."""
    out = Path(recipe.output_dir)
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(out / "trainer_state.json"))
        tokenizer.save_pretrained(out)
    trainer.save_model(str(out))  # collective under FSDP/DeepSpeed: every process calls it
    if trainer.is_world_process_zero():
        print(f"saved adapter to {out}")
