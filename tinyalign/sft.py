"""python -m tinyalign.sft RECIPE [key=value ...] — 4-bit QLoRA supervised fine-tuning.

`train(recipe)` reads top to bottom: settings, run directory, data, model, trainer, train, save.
"""

from pathlib import Path

from tinyalign.core.errors import cli

# tinyalign's starting points for LoRA SFT; any SFTConfig field in the recipe's `train:` wins.
DEFAULTS = dict(
    learning_rate=1e-4,  # LoRA wants ~10x full fine-tuning's LR
    lr_scheduler_type="cosine",
    warmup_steps=20,
    weight_decay=0.0,  # none to start: an overfitting run wants fewer steps or more varied data first
    per_device_train_batch_size=8,
    num_train_epochs=1,
    logging_steps=10,
    save_steps=200,
    save_total_limit=3,
    report_to="none",
)


def resolve(recipe):
    """The settings this run uses (what `validate` prints): DEFAULTS under the recipe's `train:`."""
    from tinyalign.training import run

    return run.with_defaults(recipe, DEFAULTS)


def train(recipe) -> Path:
    """Train an SFT run from a recipe as `config.recipe.load` returns it; returns the run directory.
    A mistake in it raises UserError, and output_dir is then as it was."""
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.training import run

    # ── settings and run directory: everything that can be checked is, before anything is written
    recipe = resolve(recipe)
    with run.guarded(recipe) as guard:
        resume = run.prepare(recipe)
        set_seed(recipe.seed)
        config = run.trl_config(recipe, SFTConfig)

        # ── data: prompt/completion chat rows; TRL puts the loss on the completion only
        train_rows, test = data.load(recipe.data, "sft", recipe.seed)

        # ── model: 4-bit base + LoRA (fresh, or continued from model.adapter)
        policy, tokenizer = model.load_for_training(recipe.model, config.gradient_checkpointing)

        # ── trainer
        trainer = SFTTrainer(model=policy, args=config, train_dataset=train_rows,
                             eval_dataset=test if config.eval_strategy != "no" else None,
                             processing_class=tokenizer, callbacks=run.callbacks(recipe))

        # ── train and save: only now does anything in output_dir change
        run.start(recipe, resume, guard)
        run.train(trainer, resume)
        run.save(trainer, tokenizer, recipe, guard)
    return Path(recipe.output_dir)


@cli
def main(argv=None):
    from tinyalign.training import run

    train(run.load_recipe("sft", argv))


if __name__ == "__main__":
    main()
