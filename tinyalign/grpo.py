"""python -m tinyalign.grpo RECIPE [key=value ...] — 4-bit QLoRA GRPO with rule rewards.

`train(recipe)` reads top to bottom: settings, run directory, rewards, data, probe, model, trainer, train, save.
"""

from pathlib import Path

from tinyalign.core.errors import UserError, cli

# Defaults for one consumer GPU, with their reasons in docs/practice.md; any GRPOConfig field in `train:` wins.
DEFAULTS = dict(
    learning_rate=1e-5,  # about an order below LoRA SFT; full fine-tuning would use 1e-6..5e-6
    lr_scheduler_type="cosine",
    warmup_steps=10,
    max_grad_norm=0.2,  # clip hard: RL gradients spike
    epsilon_high=0.28,  # clip-higher (DAPO) keeps rare good tokens alive against entropy collapse
    loss_type="dapo",  # token-level normalisation: no bias towards long or short answers
    mask_truncated_completions=True,  # a cut-off answer is not evidence of a bad one
    num_generations=8,
    per_device_train_batch_size=8,  # completions, not prompts
    gradient_accumulation_steps=4,  # a large effective batch steadies the advantage estimates
    temperature=1.0,
    max_completion_length=256,
    logging_steps=5,
    save_steps=50,
    save_total_limit=5,
    report_to="none",
)
# KL β: 0 from a base model (no reference pass at all); a small anchor once it starts from an SFT
# adapter, raised only if KL runs away. The recipe's `train.beta` wins.
KL_FROM_BASE, KL_AFTER_SFT = 0.0, 0.001
# Groups whose answers all score alike teach nothing (advantages 0): dropped before the log-prob passes and
# the backward (flat_groups.py); the step's policy gradient is the one `keep` takes, at less compute.
FLAT_GROUPS = "drop"


def resolve(recipe):
    """The settings this run uses (what `validate` prints): DEFAULTS under the recipe's `train:`, β
    by where the run starts, and the rewards' weights as TRL's `reward_weights`."""
    from tinyalign.training import run

    run.with_defaults(recipe, DEFAULTS)
    recipe.train.setdefault("beta", KL_AFTER_SFT if recipe.model.adapter else KL_FROM_BASE)
    recipe.train.setdefault("reward_weights", [float(spec.get("weight", 1.0)) for spec in recipe.rewards])
    recipe.flat_groups = recipe.flat_groups or FLAT_GROUPS
    return recipe


def train(recipe) -> Path:
    """Train a GRPO run from a recipe as `config.recipe.load` returns it; returns the run directory.
    A mistake in it (or a probe that finds no signal) raises UserError, and output_dir is then as it was."""
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from tinyalign import rewards, trl_patches
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.models.generate import begun_as_text
    from tinyalign.training import run
    from tinyalign.training.completions import CompletionLog

    # ── settings and run directory: everything that can be checked is, before anything is written
    recipe = resolve(recipe)
    with run.guarded(recipe) as guard:
        resume = run.prepare(recipe)
        set_seed(recipe.seed)
        config = run.trl_config(recipe, GRPOConfig)

        # ── rewards: resolved by name; their weights go to TRL
        reward_fns = [rewards.resolve(spec) for spec in recipe.rewards]

        # ── data: chat prompts + the reference `answer` column the rewards read
        train_rows, _ = data.load(recipe.data, "grpo", recipe.seed)

        # ── probe: is RL viable from this starting model? (one process probes, under DDP too)
        if recipe.probe and not resume:
            from tinyalign import probe

            report = probe.run_once(recipe, out_dir=recipe.output_dir)
            if report["verdict"] == "no signal" and not recipe.force:
                raise UserError(f"probe says no signal: {report['reason']}; GRPO would learn nothing. Fix that "
                                "first, or pass force=true to train anyway")

        # ── model: 4-bit base + LoRA (usually continued from an SFT adapter)
        policy, tokenizer = model.load_for_training(recipe.model, config.gradient_checkpointing)
        if recipe.data.reply_start:  # the policy writes the rest of a reply the data opens
            train_rows = begun_as_text(train_rows, tokenizer)

        # ── trainer, with tinyalign's changes to TRL (trl_patches: flat groups dropped unless `flat_groups:
        # keep`, the old log-probs from each batch's first update, generation under the CPU's autocast);
        # completions with their per-reward scores go to completions.jsonl
        trainer = GRPOTrainer(model=policy, args=config, train_dataset=train_rows, reward_funcs=reward_fns,
                              processing_class=tokenizer, callbacks=run.callbacks(recipe))
        trl_patches.patch_grpo(trainer, drop_flat_groups=recipe.flat_groups == "drop")
        trainer.add_callback(CompletionLog(trainer, recipe.output_dir))

        # ── train and save: only now does anything in output_dir change
        run.start(recipe, resume, guard)
        run.train(trainer, resume)
        run.save(trainer, tokenizer, recipe, guard)
    return Path(recipe.output_dir)


@cli
def main(argv=None):
    from tinyalign.training import run

    train(run.load_recipe("grpo", argv))


if __name__ == "__main__":
    main()
