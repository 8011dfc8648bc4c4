"""python -m tinyalign.dpo RECIPE [key=value ...] — 4-bit QLoRA DPO on preference pairs.

`train(recipe)` reads top to bottom: settings, run directory, data, model, trainer, train, save, held out.
`data.source` may be a JSONL of pairs, a hub/local preference dataset, or the app's vote store.
"""

from pathlib import Path

from tinyalign.core.errors import cli

# Any DPOConfig field in the recipe's `train:` wins.
DEFAULTS = dict(
    learning_rate=2e-5,  # LoRA; full fine-tuning would use 1e-7..5e-6. Loss falling fast + worse outputs: lower it
    beta=0.1,  # how far from the reference the policy may move: margins grow slowly -> lower; loss collapses -> raise
    loss_type=["sigmoid"],  # the original DPO loss; add "sft" (RPO) if chosen answers get less likely too
    lr_scheduler_type="cosine",
    warmup_steps=10,
    max_grad_norm=1.0,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=4,
    num_train_epochs=1,
    logging_steps=10,
    save_steps=100,
    save_total_limit=3,
    report_to="none",
)


def resolve(recipe):
    """The settings this run uses (what `validate` prints): DEFAULTS under the recipe's `train:`."""
    from tinyalign.training import run

    return run.with_defaults(recipe, DEFAULTS)


def train(recipe) -> Path:
    """Train a DPO run from a recipe as `config.recipe.load` returns it; returns the run directory.
    A mistake in it raises UserError, and output_dir is then as it was."""
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.rewards import implicit
    from tinyalign.training import run

    # ── settings and run directory: everything that can be checked is, before anything is written
    recipe = resolve(recipe)
    with run.guarded(recipe) as guard:
        resume = run.prepare(recipe)
        set_seed(recipe.seed)
        config = run.trl_config(recipe, DPOConfig)

        # ── data: conversational prompt / chosen / rejected
        train_rows, test = data.load(recipe.data, "dpo", recipe.seed)

        # ── model: 4-bit base + LoRA. The reference is the same weights, no second copy: adapters
        #    disabled for a fresh LoRA, or (TRL) a frozen copy of model.adapter when continuing one.
        policy, tokenizer = model.load_for_training(recipe.model, config.gradient_checkpointing)

        # ── trainer
        trainer = DPOTrainer(model=policy, ref_model=None, args=config, train_dataset=train_rows,
                             eval_dataset=test if config.eval_strategy != "no" else None,
                             processing_class=tokenizer, callbacks=run.callbacks(recipe))

        # ── train and save: only now does anything in output_dir change
        run.start(recipe, resume, guard)
        run.train(trainer, resume)
        run.save(trainer, tokenizer, recipe, guard)

    # ── held out: the run is a reward model too (`implicit_reward`); how often it sides with the votes
    #    it never trained on, as a reward model run reports it (dpo_metrics.json)
    if test is not None and trainer.is_world_process_zero():
        del trainer, policy  # the saved run is read back with its reference
        metrics = implicit.measure(recipe.output_dir, test)
        print(f"held-out: the implicit reward sides with {metrics['accuracy']:.1%} of {metrics['pairs']} voted pairs "
              f"(mean margin {metrics['mean_margin']:.3f}); the DPO model's own likelihood with "
              f"{metrics['likelihood_accuracy']:.1%}")
    return Path(recipe.output_dir)


@cli
def main(argv=None):
    from tinyalign.training import run

    train(run.load_recipe("dpo", argv))


if __name__ == "__main__":
    main()
