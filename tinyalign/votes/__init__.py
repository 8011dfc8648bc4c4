"""Votes on pairs of answers: how they are stored, turned into training rows, rated and trusted.

    store.py      the SQLite vote store, its schema and migrations (VoteStore, read_votes)
    pairs.py      the export: DPO/RM preference pairs and SFT rows (pairs, load_pairs, export)
    ratings.py    the leaderboard: Bradley-Terry ratings per checkpoint, raw and style-controlled
    trust.py      how far the votes can be trusted: gold items, annotator agreement, position bias

`python -m tinyalign.prefs export|stats` is the command over them.
"""

from tinyalign.votes.pairs import export, load_pairs, sft_rows
from tinyalign.votes.ratings import leaderboard
from tinyalign.votes.store import SCHEMA_VERSION, VERDICTS, VOTES, VoteStore, read_votes, unswap_vote
from tinyalign.votes.trust import agreement, position_bias

# No name here is also a module's (the function pairs() lives in tinyalign.votes.pairs), so
# `from tinyalign.votes import pairs` always means the module.
__all__ = ["SCHEMA_VERSION", "VERDICTS", "VOTES", "VoteStore", "agreement", "export", "leaderboard",
           "load_pairs", "position_bias", "read_votes", "sft_rows", "unswap_vote"]
