"""python -m tinyalign.rm RECIPE [key=value ...] — a 4-bit QLoRA reward model from preference pairs.

`train(recipe)` reads top to bottom: settings, run directory, data, model, trainer, train, measure, save.
`data.source` may be a JSONL of pairs, a hub/local preference dataset, or the app's vote store
(the same pairs the DPO export makes). The model is the recipe's base with a one-output `score`
head, trained (Bradley-Terry, TRL's RewardTrainer) and saved with the LoRA adapter. At the end it
is measured on the held-out pairs — accuracy, mean margin, length bias, and the score scale a GRPO
reward normalises by — printed and written to `rm_metrics.json` in the run directory.
"""

from pathlib import Path

from tinyalign.core.errors import cli

# Any RewardConfig field in the recipe's `train:` wins.
DEFAULTS = dict(
    learning_rate=1e-4,  # LoRA; the head is new, so higher than DPO's
    center_rewards_coefficient=0.01,  # keeps scores near 0: a raw scale that drifts is harder to use as a reward
    lr_scheduler_type="cosine",
    warmup_steps=10,
    max_grad_norm=1.0,
    per_device_train_batch_size=8,  # pairs: each step scores 2x as many sequences
    gradient_accumulation_steps=2,
    num_train_epochs=1,  # reward models overfit fast: held-out accuracy peaks within one or two epochs
    logging_steps=10,
    save_steps=100,
    save_total_limit=3,
    report_to="none",
)
# An RM that is never measured cannot be trusted as a reward: hold out this share of the pairs
# when the recipe names no held-out split.
HELD_OUT = 0.1


def resolve(recipe):
    """The settings this run uses (what `validate` prints): DEFAULTS under the recipe's `train:`, and
    the held-out share when the recipe names no held-out split."""
    from tinyalign.training import run

    run.with_defaults(recipe, DEFAULTS)
    if not (recipe.data.test_split or recipe.data.test_size):
        recipe.data.test_size = HELD_OUT
    return recipe


def train(recipe) -> Path:
    """Train a reward model from a recipe as `config.recipe.load` returns it; returns the run directory.
    A mistake in it raises UserError, and output_dir is then as it was."""
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    from tinyalign.data import loading as data
    from tinyalign.measure import pair_files
    from tinyalign.measure import reward_model as rm_measure
    from tinyalign.models import reward_model as rm_load
    from tinyalign.training import run

    # ── settings and run directory (checked only; nothing is written until the trainer is built)
    recipe = resolve(recipe)
    with run.guarded(recipe) as guard:
        resume = run.prepare(recipe)
        set_seed(recipe.seed)
        config = run.trl_config(recipe, RewardConfig)

        # ── data: conversational prompt / chosen / rejected, as DPO reads them
        train_rows, test = data.load(recipe.data, "rm", recipe.seed)
        if recipe.data.mismatched_pairs:  # the held-out pairs stay the votes as they are
            voted = len(train_rows)
            train_rows = pair_files.with_mismatched_answers(train_rows, recipe.seed)
            print(f"training on {voted} voted pairs and {len(train_rows) - voted} mismatched ones "
                  "(data.mismatched_pairs)")

        # ── model: 4-bit base as a classifier + LoRA; the `score` head trains in full, saved with the adapter
        scorer, tokenizer = rm_load.load_for_training(recipe.model, config.gradient_checkpointing)

        # ── trainer
        trainer = RewardTrainer(model=scorer, args=config, train_dataset=train_rows,
                                eval_dataset=test if config.eval_strategy != "no" else None,
                                processing_class=tokenizer, callbacks=run.callbacks(recipe))
        rm_load.head_in_compute_dtype(trainer.model, recipe.model)

        # ── train
        run.start(recipe, resume, guard)
        run.train(trainer, resume)

        # ── measure on held-out pairs, then save (the adapter file last: it marks the run finished)
        metrics = rm_measure.measure(trainer.model, tokenizer, test)
        print(rm_measure.summary(metrics))
        if trainer.is_world_process_zero():
            rm_load.write_metrics(metrics, recipe.output_dir)
        run.doctor_verdict(trainer)  # the held-out figures are on disk: an RM at chance is named now
        run.save(trainer, tokenizer, recipe, guard)
    return Path(recipe.output_dir)


@cli
def main(argv=None):
    from tinyalign.training import run

    train(run.load_recipe("rm", argv))


if __name__ == "__main__":
    main()
