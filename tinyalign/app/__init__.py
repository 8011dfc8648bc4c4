"""The arena app: chat with checkpoints of one base side by side, vote, and turn the votes into DPO pairs.

    tinyalign app --adapter sft=runs/sft --adapter dpo=runs/dpo [--db prefs.sqlite]    (or python app.py)

cli.py        the command line and its checks (nothing loads before they pass)
engine.py     one base model, every checkpoint an adapter; both panes from one batched generate call
arena.py      one match: sides, anonymous draws, the conversation, a click -> a row in the vote store
ballots.py    the handle on the vote store: opened at launch if it exists, created by the first vote
ui.py         the Gradio page: one builder per tab, keyboard voting
arena_tab.py  the Arena tab: two checkpoints side by side, the vote, the annotator's note
queue_tab.py  a labeling session's controls on the Arena tab: Next, Skip, counter, reference answer
prompts.py    the prompt queue of a labeling session (--prompts)
admin.py      the Leaderboard and Export tabs (hidden with --annotate-only)
review.py     the Review tab: a GRPO run's completions, filtered; corrected bad cases become DPO pairs
text.py       text on the page, escaped once
"""

from tinyalign.app.cli import main

__all__ = ["main"]
