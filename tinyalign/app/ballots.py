"""The app's handle on the vote store: opened at launch when the file exists, created by the first vote."""

import os
import threading
from pathlib import Path

from .. import prefs
from ..errors import UserError


class Ballots:
    """The vote store, opened at launch if the file exists (so a locked or damaged one is refused
    before anyone votes) and created with the first vote otherwise."""

    def __init__(self, path):
        self.path = Path(path)
        self._store = None
        self._lock = threading.Lock()
        if self.path.exists():
            self._store = prefs.VoteStore(self.path)
        elif not os.access(self.path.parent, os.W_OK):
            raise UserError(f"--db {self.path}: cannot create the vote store there (folder missing or "
                            "not writable); give another path")

    def store(self) -> prefs.VoteStore:
        with self._lock:
            if self._store is None:
                self._store = prefs.VoteStore(self.path)
            return self._store

    def existing(self) -> prefs.VoteStore | None:
        return self._store
