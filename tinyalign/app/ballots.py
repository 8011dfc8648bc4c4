"""The app's handle on the vote store: opened at launch when the file exists, created by the first vote."""

import os
import threading
from pathlib import Path

from tinyalign.core.errors import UserError
from tinyalign.votes.store import VoteStore

LAUNCH_WAIT = 2.0  # seconds a busy store may take to let the app in at launch
VOTE_WAIT = 10.0  # ... and to take one vote, once the app runs


class Ballots:
    """The vote store, opened at launch if the file exists (so a locked or damaged one is refused
    before anyone votes) and created with the first vote otherwise."""

    def __init__(self, path):
        self.path = Path(path)
        self._store = None
        self._lock = threading.Lock()
        if self.path.exists():
            # Opened with a short wait: a store another process holds is refused at launch, in
            # seconds, instead of after the model has loaded and at every vote.
            self._store = VoteStore(self.path, timeout=LAUNCH_WAIT)
            try:
                self._store.check_writable(LAUNCH_WAIT)
            except UserError:
                self._store.close()
                raise
            self._store.wait_for_writers(VOTE_WAIT)
        elif not os.access(self.path.parent, os.W_OK):
            raise UserError(f"--db {self.path}: cannot create the vote store there (folder missing or "
                            "not writable); give another path")

    def store(self) -> VoteStore:
        with self._lock:
            if self._store is None:
                self._store = VoteStore(self.path)
            return self._store

    def existing(self) -> VoteStore | None:
        return self._store
