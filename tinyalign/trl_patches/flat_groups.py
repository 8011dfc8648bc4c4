"""GRPO without the groups that teach nothing: `flat_groups: drop` (DAPO's dynamic-sampling filter, without
its re-sampling to refill the batch).

A group whose answers all score the same has advantages of exactly 0: its rows move the policy by nothing
but the small KL anchor, yet TRL still spends the reference (and, with num_iterations > 1, the "old") log-prob
pass and the policy's forward and backward on them. Early in a real run most groups are like that (TRL logs
the share as `frac_reward_zero_std`).

The hook: TRL computes those log-probs inside `_generate_and_score_completions` *before* it scores the
answers, so dropping rows from its output would save only the backward. Here the rewards are computed
once, right after generation (`_generate`), and handed to TRL's own scoring call (`_calculate_rewards`), so
the flat groups are known before any log-prob pass: those passes run on the kept rows only, and the
dropped rows are removed from the batch before it is split for gradient accumulation. TRL's reward metrics,
advantages and completion logs are still computed over every completion.

What stays as in `flat_groups: keep`: the advantages of the kept rows (TRL computes them over the whole
batch) and, for loss_type dapo/cispo/vespo, the token count the loss is divided by (TRL's count over all
completions is kept), so the step's policy gradient is the one `keep` takes; what differs is only the KL
anchor on the dropped rows, and the logged kl/entropy/clip ratios, which now cover the kept rows only.
Loss types that average per micro-batch (grpo, bnpo, dr_grpo, luspo, sapo) weigh the kept rows more.
"""

import functools

import torch

METRIC = "flat_groups_dropped"  # share of this step's groups dropped (equals TRL's frac_reward_zero_std)
TOKEN_KEYS = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
              "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")


def flat_rows(rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Which rows belong to a group whose weighted rewards do not vary: the same test TRL's
    `frac_reward_zero_std` makes (group std within 1e-8 of 0). Rows no reward scored (all NaN) are left out of
    the spread, as TRL leaves them out of the baseline; a group with fewer than two scored rows is flat."""
    rewards = (rewards_per_func * weights.to(rewards_per_func.device)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    groups = rewards.view(-1, num_generations)
    scored = (~torch.isnan(groups)).sum(dim=1)
    mean = torch.nanmean(groups, dim=1, keepdim=True)
    var = torch.nansum((groups - mean) ** 2, dim=1) / (scored - 1).clamp(min=1)
    flat = (scored < 2) | ~(var.sqrt() > 1e-8)
    return flat.repeat_interleave(num_generations)


def kept_rows(flat: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    """Indices of the rows to train on, in order: every row of a non-flat group, then as few flat rows as
    make the count a multiple of `multiple` (TRL splits the batch into that many equal micro-batches; a flat
    row adds nothing to the policy gradient). None kept when every group is flat."""
    keep = (~flat).nonzero().flatten()
    short = -len(keep) % multiple
    if short:
        keep = torch.cat([keep, flat.nonzero().flatten()[:short]]).sort().values
    return keep


def take_rows(batch: dict, keep: torch.Tensor) -> dict:
    """The batch with only the rows `keep` (0-dim entries such as num_items_in_batch unchanged), and the
    completion columns after the last token any kept row attends to cut off (causal: nothing before them
    changes; fewer columns to run)."""
    rows = batch["completion_ids"].size(0)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            if value.size(0) != rows:
                raise ValueError(f"cannot drop rows of {key}: {value.size(0)} entries for {rows} completions")
            value = value[keep.to(value.device)]
        elif value is not None and not isinstance(value, torch.Tensor):
            raise ValueError(f"cannot drop rows of {key} ({type(value).__name__})")
        out[key] = value
    mask = out["completion_mask"]
    width = mask.size(1)
    used = mask.any(dim=0).nonzero()
    cut = max(int(used[-1]) + 1 if len(used) else 1, 1)
    if cut < width:
        for key in TOKEN_KEYS:
            if isinstance(out.get(key), torch.Tensor) and out[key].dim() == 2 and out[key].size(1) == width:
                out[key] = out[key][:, :cut]
    return out


def drop_flat_groups(trainer):
    """The built GRPOTrainer, now dropping flat groups: its class becomes a subclass of its own class that
    only adds the methods below (no state of its own), so whatever built it (TRL, a subclass, a test's
    stand-in) stays in charge of construction."""
    trainer.__class__ = trainer_class(type(trainer))
    return trainer


@functools.cache
def trainer_class(base):
    """`base` (TRL's GRPOTrainer or a subclass) with flat groups dropped."""

    class FlatGroupsGRPOTrainer(base):
        _flat_inputs = None  # the rows being scored, set only inside _generate_and_score_completions
        _flat_keep = None  # rows to train on, decided right after generation
        _flat_rewards = None  # (completions, rewards_per_func) computed early, handed to TRL's scoring call

        def _generate_and_score_completions(self, inputs):
            self._flat_inputs, self._flat_keep, self._flat_rewards = inputs, None, None
            try:
                output = super()._generate_and_score_completions(inputs)
                keep = self._flat_keep
            finally:
                self._flat_inputs, self._flat_keep, self._flat_rewards = None, None, None
            return output if keep is None else take_rows(output, keep)

        def _can_drop(self, extra_fields, images) -> bool:
            """Single process, text, TRL's default aggregation, no rollout extras and no vLLM: the cases where
            a flat group's advantages are exactly 0 and every batch entry is one row per completion.
            (Under DDP a process left with no rows would skip the forward the others synchronise on.)"""
            return (self.model.training and self.accelerator.num_processes == 1 and not self.use_vllm
                    and self.multi_objective_aggregation == "sum_then_normalize" and not extra_fields
                    and images is None and not any(k in self._flat_inputs[0] for k in ("image", "images")))

        def _generate(self, prompts):
            result = super()._generate(prompts)
            _, completion_ids, _, completions, _, extra_fields, images, _ = result
            if self._flat_inputs is not None and self._can_drop(extra_fields, images):
                # scored now rather than after the log-prob passes, so those passes can skip the flat groups;
                # TRL's own call to _calculate_rewards below gets these same scores (reward functions run once)
                rewards = self._calculate_rewards(self._flat_inputs, prompts, completions, completion_ids)
                self._flat_rewards = (completions, rewards)
                flat = flat_rows(rewards, self.reward_weights, self.num_generations)
                self._flat_keep = kept_rows(flat.cpu(), self.args.steps_per_generation)
                self._metrics["train"][METRIC].append(flat.float().mean().item())
            return result

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            early = self._flat_rewards
            if early is not None and early[0] is completions:
                self._flat_rewards = None
                return early[1]
            return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args,
                                               **kwargs):
            keep = self._flat_keep
            if self._flat_inputs is None or keep is None or len(keep) == input_ids.size(0):
                return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                                  *args, **kwargs)
            # the reference / old log-prob pass inside scoring: only the rows that will be trained are run; the
            # dropped rows get zeros, and take_rows removes them before anything reads them
            rows, index = input_ids.size(0), keep.to(input_ids.device)
            if len(keep) == 0:
                return torch.zeros(rows, logits_to_keep, device=input_ids.device), None, None
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model, input_ids[index], attention_mask[index], logits_to_keep, *args, **kwargs)

            def spread(x):
                if x is None:
                    return None
                full = x.new_zeros((rows, *x.shape[1:]))
                full[index] = x
                return full

            return spread(logps), spread(entropies), aux

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if inputs["completion_ids"].size(0) == 0:
                # every group of this micro-batch was flat: no forward at all; a zero loss tied to the trainable
                # weights lets the Trainer's backward and optimizer step run as usual (zero gradients)
                return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    return FlatGroupsGRPOTrainer
