"""What tinyalign changes inside TRL, in one place: each patch overrides private GRPOTrainer methods, so
each is checked against the TRL it was written for before it is applied.

    flat_groups          groups whose answers all score alike dropped before the log-prob passes (DAPO's filter)
    old_logps            at num_iterations > 1, the old log-probs from each batch's first update, not an extra pass
    autocast_generation  on a CPU under bf16 autocast, generation inside the autocast too
"""

from importlib.metadata import version

# the TRL releases these patches were written and tested against (pyproject.toml pins the same range)
WRITTEN_FOR = ((1, 13), (1, 15))  # >= 1.13, < 1.15
# the private methods they override or call, each checked to exist before a patch goes in
HOOKS = ("_generate_and_score_completions", "_generate", "_generate_single_turn", "_calculate_rewards",
         "_get_per_token_logps_and_entropies", "_compute_loss")


def check_trl(trainer_class) -> None:
    """Refuse to patch a TRL these patches were not written for: its private methods may have moved."""
    found = tuple(int(part) for part in version("trl").split(".")[:2])
    low, high = WRITTEN_FOR
    missing = [name for name in HOOKS if not hasattr(trainer_class, name)]
    if not low <= found < high or missing:
        raise RuntimeError(f"tinyalign's GRPO patches were written for trl >={'.'.join(map(str, low))},"
                           f"<{'.'.join(map(str, high))}; this is trl {version('trl')}"
                           + (f", which lacks {', '.join(missing)}" if missing else ""))


def patch_grpo(trainer, drop_flat_groups: bool):
    """The built GRPOTrainer with tinyalign's changes: flat groups dropped (unless `flat_groups: keep`), the
    old log-probs reused where they can be, generation under the CPU's autocast."""
    from tinyalign.trl_patches import autocast_generation, flat_groups, old_logps

    check_trl(type(trainer))
    if drop_flat_groups:
        flat_groups.drop_flat_groups(trainer)
    old_logps.reuse_old_logps(trainer)
    autocast_generation.generate_under_autocast(trainer)
    return trainer
