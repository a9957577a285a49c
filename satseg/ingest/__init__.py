"""Inbox -> validated, versioned training data (the satseg_ingest DAG's functions).

``pipeline`` holds one function per DAG task (``scan_inbox``, ``process_pair``,
``finalize``); ``inbox`` decides what is complete and how files pair up; ``labels`` and
``scene`` validate and patch one pair; bad input goes to ``satseg.inbox.quarantine``.
"""
