"""What every inbox shares: when a dropped file is complete, who works on it, where bad input goes.

The training inbox (``satseg.ingest``) and the predict inbox (``satseg.inference.inbox``) both
use these pieces, so "is this upload finished?", "is another task already on it?", "is this
still the file that was checked?" and "what does a quarantine record say?" are each answered
once:

- ``completeness``: a ``.done`` marker, or size and mtime unchanged across polls (remembered in
  a state file) or across a second look ``stable_polls_s`` later; temporaries are skipped.
- ``claims``: a locked ledger keyed by content hash; a claim older than ``STALE_CLAIM_S``, or
  of a process of this host that no longer runs, is from a crashed run and may be taken over.
- ``verified``: a file is opened once without following links (``open_verified``), read only
  through that descriptor, and moved only while its name still refers to it, unchanged.
- ``stuck``: a file that cannot be moved out (a read-only folder) is reported once.
- ``quarantine`` (module and function): the file moves to ``quarantine/<date>/`` under a name
  never used before, with one ``QuarantineRecord`` beside it as ``<name>.error.json``; nothing
  is ever deleted; links, FIFOs and devices are moved as they are, never opened.
"""

from satseg.inbox.claims import STALE_CLAIM_S, Ledger
from satseg.inbox.completeness import Observed, ScanState, Seen, complete
from satseg.inbox.quarantine import QuarantineRecord, free_target, is_record, read_record
from satseg.inbox.stuck import StuckFiles
from satseg.inbox.verified import Changed, Identity, NotVerified, Verified, open_verified

__all__ = [
    "STALE_CLAIM_S",
    "Changed",
    "Identity",
    "Ledger",
    "NotVerified",
    "Observed",
    "QuarantineRecord",
    "ScanState",
    "Seen",
    "StuckFiles",
    "Verified",
    "complete",
    "free_target",
    "is_record",
    "open_verified",
    "read_record",
]
