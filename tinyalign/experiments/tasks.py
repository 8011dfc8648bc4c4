"""The loop's tasks (`python -m tinyalign.loop --task NAME`): which recipes each stage trains from, and the
settings the loop changes in them, as typed values that `config.recipe.load` checks as it checks YAML.
Why each setting is what it is, measured: bench/RESULTS.md, the loop's sections."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinyalign.config.recipe import builtin
from tinyalign.experiments.annotators import grade, grade_reply


def sum_reference(prompt: str) -> str:
    """A sum's worked solution from its prompt's numbers ("What is 37+84?" -> "37 + 84 = 121"): the
    `reference` a pairwise judge's checker writes its traces from (tinyalign.judge.reference_traces)."""
    found = re.search(r"(\d+)\s*\+\s*(\d+)", prompt)
    if not found:
        raise ValueError(f"no sum a + b in the prompt {prompt!r}")
    a, b = map(int, found.groups())
    return f"{a} + {b} = {a + b}"


@dataclass(frozen=True)
class Task:
    """What one loop runs on: `prompts`' recipe gives the model, the training prompts, their references
    and the held-out split; `rm` and `grpo` train the reward model and the policy (`sft` the filter's
    policy step, with `filter_settings`); `rule` is the annotators'. With `--reward judge`, `judge_sft`
    distils the pairwise judge from the checker's traces on `reference(prompt)`, and GRPO's `pairwise_judge`
    logs its agreement with `checker`, the rule as an accuracy reward."""
    prompts: Path
    rm: Path
    grpo: Path
    sft: Path
    rule: Callable[[str, str], int] = grade
    rm_settings: dict = field(default_factory=dict)
    rm_from_policy: bool = False  # with --sft, the RM starts from that policy (model.policy)
    learned_reward_settings: dict = field(default_factory=dict)  # GRPO's settings when the reward is learned
    votes_prompts: int = 1000
    filter_prompts: int = 600  # training prompts the filter samples 8 answers to
    filter_settings: dict = field(default_factory=dict)  # the SFT recipe's settings for one epoch on the picks
    dpo: Path | None = None  # --with-dpo: DPO on round 1's pairs, whose likelihood ranks beside the RM
    dpo_settings: dict = field(default_factory=dict)
    reference: Callable[[str], str] = sum_reference  # a prompt's worked solution, for the judge's checker
    judge_sft: Path | None = None  # --reward judge: the recipe that distils the judge from the checker's traces
    judge_sft_settings: dict = field(default_factory=dict)
    judge_max_new_tokens: int = 64  # a judgement of a sum is ~53 tokens
    judge_solve_first: bool = True  # the judge solves each task before it reads the answers (PairJudge)
    judge_rl: Path | None = None  # round 2: GRPO on judge_verdict over the pairs the judge got wrong (None: SFT only)
    judge_rl_settings: dict = field(default_factory=dict)
    checker: str = "exact_match"  # the rule as an accuracy reward: logged beside the judge's verdicts, never rewarded


TASKS = {
    # 1000 prompts: most paired answers are alike (a tie teaches a reward model nothing), and an RM on too few
    # pairs learns them by heart and ranks held-out ones at chance
    "tiny": Task(builtin("tiny_sft.yaml"), builtin("tiny_rm.yaml"), builtin("tiny_grpo.yaml"), builtin("tiny_sft.yaml"),
                 filter_settings={"train.learning_rate": 5e-4, "train.lr_scheduler_type": "constant"},
                 dpo=builtin("tiny_dpo.yaml"),
                 dpo_settings={"model.quantization": "none", "data.limit": None, "data.prompt": None,
                               "data.chosen": None, "data.rejected": None},
                 judge_sft=builtin("tiny_judge_sft.yaml"), judge_rl=builtin("tiny_judge_grpo.yaml"),
                 judge_rl_settings={"train.learning_rate": 2e-5}),
    # SmolLM2 on sums, from an SFT start that answers bare (from the base, the RM learns an edit's look and
    # GRPO games it). The RM starts from that policy and also learns mismatched pairs, or it scores a
    # number's look under any question; three epochs, as a late-learning seed needs; GRPO keeps near the
    # start (beta 0.1), where the votes were; the filter's SFT refines the start at a fifth of its peak rate.
    # bench/RESULTS.md: "The loop on SmolLM2" and "The SmolLM2 sums RM over seeds and thread counts"
    "smollm2-sums": Task(builtin("smollm2_sums_grpo.yaml"), builtin("smollm2_rm.yaml"), builtin("smollm2_sums_grpo.yaml"),
                         builtin("smollm2_sums_sft.yaml"), rule=grade_reply, votes_prompts=600, rm_from_policy=True,
                         rm_settings={"model.policy": None, "train.max_length": 128, "data.mismatched_pairs": True,
                                      "train.num_train_epochs": 3},
                         learned_reward_settings={"train.beta": 0.1},
                         filter_settings={"train.learning_rate": 2e-4, "train.lr_scheduler_type": "constant"},
                         # one epoch; the sums' prompt and bare answer fit 128 tokens
                         dpo=builtin("smollm2_word_dpo.yaml"),
                         dpo_settings={"train.max_steps": None, "train.num_train_epochs": 1, "train.max_length": 128,
                                       "generation.max_new_tokens": 16},
                         # the judge as bench/studies/sums_judge.py trains it: one epoch of its traces, 8 a step
                         judge_sft=builtin("smollm2_judge_sft.yaml"),
                         judge_sft_settings={"train.max_steps": None, "train.num_train_epochs": 1},
                         # RL on its mistakes at the rate that held it (2e-5; 1e-4 cost it 6-8 points), 20 steps
                         # of 4 judge prompts x 8 judgements, as sums_judge.py --rl --hard
                         judge_rl=builtin("smollm2_judge_grpo.yaml"),
                         judge_rl_settings={"train.learning_rate": 2e-5, "train.max_steps": 20,
                                            "train.max_completion_length": 64, "generation.max_new_tokens": 64},
                         checker="math_accuracy"),
}
