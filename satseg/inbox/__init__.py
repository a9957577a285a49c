"""What every inbox shares: when a dropped file is complete, who works on it, where bad input goes.

The training inbox (``satseg.ingest``) and the predict inbox (``satseg.inference.inbox``) both
use these three pieces, so "is this upload finished?", "is another task already on it?" and
"what does a quarantine record say?" are each answered once:

- ``completeness``: a ``.done`` marker, or size and mtime unchanged across polls (remembered in
  a state file) or across a second look ``stable_polls_s`` later; temporaries are skipped.
- ``claims``: a locked ledger keyed by content hash; a claim older than ``STALE_CLAIM_S`` is
  from a crashed run and may be taken over.
- ``quarantine`` (module and function): the file moves to ``quarantine/<date>/`` under a name
  never used before, with one ``QuarantineRecord`` beside it as ``<name>.error.json``; nothing
  is ever deleted.
"""

from satseg.inbox.claims import STALE_CLAIM_S, Ledger
from satseg.inbox.completeness import Observed, ScanState, Seen, complete
from satseg.inbox.quarantine import QuarantineRecord, free_target, is_record, read_record

__all__ = [
    "STALE_CLAIM_S",
    "Ledger",
    "Observed",
    "QuarantineRecord",
    "ScanState",
    "Seen",
    "complete",
    "free_target",
    "is_record",
    "read_record",
]
