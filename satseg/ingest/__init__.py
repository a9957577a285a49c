"""Inbox -> validated, versioned training data (the satseg_ingest DAG's functions).

``pipeline`` holds one function per DAG task (``scan_inbox``, ``process_pair``,
``finalize``); ``inbox`` decides what is complete and how files pair up; ``labels`` and
``scene`` validate and patch one pair; ``quarantine`` files away bad input with its reason.
"""
