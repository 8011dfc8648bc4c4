"""The arena app: chat with checkpoints of one base side by side, vote, and turn the votes into DPO pairs.

    python app.py --adapter sft=runs/sft --adapter dpo=runs/dpo [--db prefs.sqlite]

cli.py      the command line and its checks (nothing loads before they pass)
engine.py   one base model, every checkpoint an adapter; both panes from one batched generate call
arena.py    one match: sides, anonymous draws, the conversation, a click -> a row in the vote store
ui.py       the Gradio page: the Arena tab, keyboard voting, the prompt queue
admin.py    the Leaderboard and Export tabs (hidden with --annotate-only)
prompts.py  the prompt queue of a labeling session (--prompts)
review.py   the Review tab: a GRPO run's completions, filtered; corrected bad cases become DPO pairs
text.py     text on the page, escaped once
"""

from tinyalign.app.cli import main

__all__ = ["main"]
