"""One side-by-side match in one browser tab: which checkpoints, which side each is shown on, the
conversation so far, and how a click on the screen becomes a row in the vote store.

Conversation and vote mapping (what the store's `conversation` means):
  Both panes get the same user turns; each pane keeps its own earlier answers, as it would in a plain
  chat with that checkpoint. So at turn t, model_a answers  user1, a1, ..., user_t  and model_b answers
  user1, b1, ..., user_t. The vote row's `conversation` is model_a's side, exactly the prompt response_a
  answered (model_a is the left pane, or the right one in an anonymous match with `swapped`). When
  model_b saw other earlier answers, its prompt is kept in `settings["conversation_b"]`, so nothing is
  lost; single-turn votes, the common case, have one prompt. The export pairs response_b with model_a's
  history: slightly off-policy for multi-turn rows, the usual arena compromise. The system prompt is not
  in `conversation`: it is `settings["system"]`, which the export prepends.

Anonymous mode: a random pair of distinct checkpoints and a random side for each; names are hidden
until the vote, and a match ends with its vote (a second vote would no longer be blind). Undo marks the
last vote superseded in the store and opens the turn again; a blind match's names stay revealed, and
the new vote records that it was cast with the names visible.
"""

import random
from dataclasses import dataclass, field

from tinyalign.core.errors import UserError
from tinyalign.votes.store import VERDICTS, VOTES, unswap_vote
from tinyalign.votes.trust import GOLD_BETTER, GOLD_WORSE

TAGS = ("wrong", "verbose", "unsafe", "format")


@dataclass
class Match:
    model_a: str
    model_b: str
    anonymous: bool = False
    swapped: bool = False  # model_a is shown on the right
    user_turns: list[str] = field(default_factory=list)
    answers_a: list[str] = field(default_factory=list)  # one per finished turn
    answers_b: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # those that produced the latest answers
    voted: bool = False  # the latest turn has its vote
    # Bumped whenever the open turn changes (a message, a regeneration, its vote). Whatever the page
    # holds for one turn (better answer, tags, rationale) is cleared when this moves, so it can never
    # reach the vote of another turn; `fields_turn` is the value the page last cleared them for.
    turn: int = 0
    fields_turn: int = -1
    prompt_id: str | None = None  # the queued prompt this match answers
    revealed: bool = False  # a blind match's names were shown (it had a vote, since undone)
    last_vote: int | None = None  # the id of this tab's latest vote, for undo
    chosen: str = ""  # the latest vote as clicked ("a" = left pane), to highlight its button
    gold: bool = False  # a gold item: known answers, one turn, no names
    stands_for: tuple[str, str] | None = None  # a gold item's place: the checkpoint pair the session was on

    @classmethod
    def pick(cls, left: str, right: str) -> "Match":
        """The annotator chose the checkpoints: model_a is the left one, names are shown."""
        return cls(model_a=left, model_b=right)

    @classmethod
    def draw(cls, names: list[str], rng: random.Random | None = None) -> "Match":
        """Anonymous: two different checkpoints at random, and a coin for which is shown left."""
        if len(names) < 2:
            raise UserError("anonymous mode needs at least two checkpoints")
        rng = rng or random.SystemRandom()
        model_a, model_b = rng.sample(names, 2)
        return cls(model_a=model_a, model_b=model_b, anonymous=True, swapped=rng.random() < 0.5)

    @classmethod
    def gold_item(cls, prompt_id: str, text: str, better: str, worse: str, stands_for=None,
                  rng: random.Random | None = None) -> "Match":
        """A gold item of a labeling session, asked and answered: the known better answer is response_a,
        on a random side, and no checkpoint names, before or after the vote (a blind match shows none
        before it either)."""
        rng = rng or random.SystemRandom()
        match = cls(model_a=GOLD_BETTER, model_b=GOLD_WORSE, gold=True, swapped=rng.random() < 0.5,
                    prompt_id=prompt_id, stands_for=stands_for)
        match.ask(text)
        match.answer(better, worse, {})
        return match

    # ------------------------------------------------------------ sides as shown

    @property
    def left(self) -> str:
        return self.model_b if self.swapped else self.model_a

    @property
    def right(self) -> str:
        return self.model_a if self.swapped else self.model_b

    @property
    def names_visible(self) -> bool:
        return not self.gold and (not self.anonymous or self.voted or self.revealed)

    @property
    def answered(self) -> bool:
        """The latest user turn has both answers."""
        return bool(self.user_turns) and len(self.answers_a) == len(self.user_turns)

    @property
    def can_vote(self) -> bool:
        return self.answered and not self.voted

    @property
    def can_continue(self) -> bool:
        """More turns are allowed: always with named checkpoints; blind only until the vote; a gold item
        has its one turn (it is answered when made)."""
        return not (self.anonymous and (self.voted or self.revealed)) and not (self.gold and self.user_turns)

    def displayed(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(left, right) histories as (user, answer) pairs; the open turn's answer is ''."""
        rows_a = list(zip(self.user_turns, self.answers_a + [""] * (len(self.user_turns) - len(self.answers_a))))
        rows_b = list(zip(self.user_turns, self.answers_b + [""] * (len(self.user_turns) - len(self.answers_b))))
        return (rows_b, rows_a) if self.swapped else (rows_a, rows_b)

    # ------------------------------------------------------------ turns

    def conversations(self, system: str = "") -> tuple[list[dict], list[dict]]:
        """The prompts for model_a and model_b for the open (last) user turn, system prompt first."""
        head = [{"role": "system", "content": system}] if system.strip() else []
        return (head + _chat(self.user_turns, self.answers_a), head + _chat(self.user_turns, self.answers_b))

    def ask(self, message: str) -> None:
        if not self.can_continue:
            raise UserError("this blind match has its vote; start a new round")
        if self.user_turns and not self.answered:
            raise UserError("wait for both answers before sending the next message")
        self.user_turns.append(message)
        self.voted = False
        self.turn += 1

    def retry(self) -> None:
        """Forget the latest answers so the same user turn is answered again (Regenerate)."""
        if not self.answered or not self.can_continue:
            raise UserError("nothing to regenerate")
        self.answers_a.pop()
        self.answers_b.pop()
        self.voted = False
        self.turn += 1

    def answer(self, response_a: str, response_b: str, settings: dict) -> None:
        self.answers_a.append(response_a)
        self.answers_b.append(response_b)
        self.settings = dict(settings)

    # ------------------------------------------------------------ the vote

    def vote(self, store, displayed_vote: str, *, annotator: str, edited: str = "", tags=(),
             run_dirs: dict | None = None, rationale: str = "", dimensions: dict | None = None,
             side_tags: dict | None = None) -> int:
        """Record the vote on the latest turn; `displayed_vote` "a"/"b" mean the left/right pane, and so
        do the per-dimension verdicts in `dimensions` ({name: "a" | "b" | "tie"}, unjudged ones left out)
        and the keys of `side_tags` ({"a": tags on the left answer, "b": on the right one}).

        Returns the row id once it is committed; only then is the turn marked as voted.
        """
        if not annotator.strip():
            raise UserError("who is voting? type your name in the Annotator box first")
        if not self.can_vote:
            raise UserError("this turn already has its vote" if self.voted else "wait for both answers")
        if displayed_vote not in VOTES:
            raise UserError(f"vote must be one of {', '.join(VOTES)}")
        side_tags = {side: list(values or []) for side, values in (side_tags or {}).items()}
        unknown = [t for t in [*tags, *(t for values in side_tags.values() for t in values)] if t not in TAGS]
        if unknown:
            raise UserError(f"unknown tag {unknown[0]!r}; tags: {', '.join(TAGS)}")
        dimensions = {name: verdict for name, verdict in (dimensions or {}).items() if verdict}
        bad = [v for v in dimensions.values() if v not in VERDICTS]
        if bad:
            raise UserError(f"a dimension's verdict must be one of {', '.join(VERDICTS)}, got {bad[0]!r}")
        conversation = _chat(self.user_turns, self.answers_a[:-1])
        conversation_b = _chat(self.user_turns, self.answers_b[:-1])
        settings = {**self.settings, "anonymous": self.anonymous, "turn": len(self.user_turns)}
        if self.revealed:
            settings["names_visible"] = True  # a blind match re-voted after its names were shown
        if self.gold:
            settings["gold"] = True
        if conversation_b != conversation:
            settings["conversation_b"] = conversation_b
        run_dirs = run_dirs or {}
        vote_id = store.record(
            conversation=conversation, response_a=self.answers_a[-1], response_b=self.answers_b[-1],
            model_a=self.model_a, model_b=self.model_b, vote=unswap_vote(displayed_vote, self.swapped),
            annotator=annotator.strip(), run_dir_a=run_dirs.get(self.model_a),
            run_dir_b=run_dirs.get(self.model_b), settings=settings, swapped=self.swapped,
            edited=edited or None, tags=list(tags), prompt_id=self.prompt_id, rationale=rationale or None,
            dimensions={name: unswap_vote(v, self.swapped) for name, v in dimensions.items()},
            side_tags={unswap_vote(side, self.swapped): values for side, values in side_tags.items()},
        )
        self.voted = True
        self.turn += 1
        self.last_vote, self.chosen = vote_id, displayed_vote
        return vote_id

    def undo(self, store, *, annotator: str) -> int:
        """Mark this tab's latest vote superseded (kept in the store, no longer counted) and open its
        turn for a new vote. Only the latest turn's vote, and only its own annotator's."""
        if not self.voted or self.last_vote is None:
            raise UserError("no vote on this turn to undo")
        store.undo(self.last_vote, annotator=annotator.strip())
        undone = self.last_vote
        self.voted, self.last_vote, self.chosen = False, None, ""
        self.revealed = self.revealed or self.anonymous
        self.settings = {**self.settings, "revote_of": undone}
        self.turn += 1
        return undone


def _chat(user_turns: list[str], answers: list[str]) -> list[dict]:
    """user1, answer1, user2, ... — every user turn, with the answers given so far in between."""
    messages = []
    for i, text in enumerate(user_turns):
        messages.append({"role": "user", "content": text})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages
