"""GRPO at num_iterations > 1 without TRL's separate "old" log-prob pass.

At μ > 1 every generated batch is trained on μ times, and the clipped ratio needs the log-probs of the
policy that sampled it (the "old" ones). TRL runs an extra no-grad forward over the whole batch right after
generation to get them. But where the first pass over the batch ends before any optimizer step (each
optimizer step trains on exactly one generated batch: steps_per_generation == gradient_accumulation_steps,
TRL's default), that first pass runs on the very weights that sampled it: its own log-probs, detached, are
the old ones. TRL already uses them so at μ = 1; here the first pass also keeps them in the buffered batch,
where the later passes find them, and the extra forward is not run. The numbers are the ones TRL computes
(the same weights, the same rows); one forward of the batch fewer per generated batch.
"""

import functools


def reuse_old_logps(trainer):
    """The built GRPOTrainer, skipping the old log-prob pass where its first update can supply those log-probs
    (unchanged where it cannot: μ 1, misaligned generation, vLLM's sampler, a loss other than TRL's own)."""
    if applies(trainer):
        trainer.__class__ = trainer_class(type(trainer))
    return trainer


def applies(trainer) -> bool:
    args = trainer.args
    return (trainer.num_iterations > 1 and args.steps_per_generation == args.gradient_accumulation_steps
            and not trainer.use_vllm and not trainer.use_liger_kernel
            # TRL's own loss gets its log-probs from the method hooked below; a replaced one (unsloth's compiled
            # trainer) may not, and would then train every pass against its own log-probs
            and type(trainer)._compute_loss.__module__ == "trl.trainer.grpo_trainer")


@functools.cache
def trainer_class(base):
    """`base` (TRL's GRPOTrainer or a subclass) with the old log-probs taken from each batch's first update."""

    class OldLogpsGRPOTrainer(base):
        _first_pass = None  # the micro-batch whose first loss pass is running, until its log-probs are kept

        def _generate_and_score_completions(self, inputs):
            # TRL runs the old log-prob pass here because num_iterations > 1; seen as 1, it leaves them out (None)
            iterations, self.num_iterations = self.num_iterations, 1
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self.num_iterations = iterations

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # `inputs` is the buffered micro-batch itself: what is written into it, the later passes read
            self._first_pass = inputs if inputs.get("old_per_token_logps") is None else None
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self._first_pass = None

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            result = super()._get_per_token_logps_and_entropies(*args, **kwargs)
            if self._first_pass is not None and self.model.training:
                # TRL's loss reads them right after this call, as the old log-probs of this pass (ratio 1, as
                # TRL's own fallback makes it) and, kept, of every later pass over the batch
                self._first_pass["old_per_token_logps"] = result[0].detach()
                self._first_pass = None
            return result

    return OldLogpsGRPOTrainer
