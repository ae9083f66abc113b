"""A ``LocateBatches`` that crashes its Ray actor once, for the restart test (tests/integrations/test_ray.py).

It lives here, not in the test module, because Ray's workers import it by name: the test session
puts tests/ on their PYTHONPATH.
"""

from __future__ import annotations

import os

from fakelocator.integrations.ray import LocateBatches


class DiesOnce(LocateBatches):
    """Kills its own actor process in the middle of the batch holding ``victim``, the first time only
    (``marker``, created atomically, says it happened; the retry in the restarted actor runs normally)."""

    def __init__(self, model, *, victim: str, marker: str, **kwargs):
        super().__init__(model, **kwargs)
        self.victim, self.marker = victim, marker

    def __call__(self, batch):
        if self.victim in batch.column("path").to_pylist():
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # the process dies as a crash or an OOM kill would end it: no exception, no cleanup
        return super().__call__(batch)
