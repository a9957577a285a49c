"""One claim ledger: first owner wins, ours is ours again, a stale claim may be taken over."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from satseg.inbox.claims import STALE_CLAIM_S, Ledger


def _ledger(tmp_path, **kw) -> Ledger:
    return Ledger(tmp_path / "ledger.json", tmp_path / "ledger.lock", owner_field="pair_id", **kw)


def test_first_claim_wins_and_the_owner_may_come_back(tmp_path) -> None:
    ledger = _ledger(tmp_path)
    with ledger.edit() as entries:
        assert ledger.holder(entries, "sha1", "pairA") is None
        ledger.claim(entries, "sha1", "pairA", scene="a")
    with ledger.edit() as entries:
        other = ledger.holder(entries, "sha1", "pairB")
        assert other is not None and other["pair_id"] == "pairA" and other["scene"] == "a"
        assert ledger.holder(entries, "sha1", "pairA") is None  # a retry of the owner
    stored = json.loads((tmp_path / "ledger.json").read_text())
    assert stored["sha1"]["status"] == "processing" and stored["sha1"]["claimed"] <= time.time()


def test_a_stale_processing_claim_is_free_a_done_entry_never(tmp_path) -> None:
    ledger = _ledger(tmp_path)
    old = time.time() - STALE_CLAIM_S - 60
    with ledger.edit() as entries:
        entries["crashed"] = {"pair_id": "A", "status": "processing", "claimed": old}
        entries["recent"] = {"pair_id": "A", "status": "processing", "claimed": time.time()}
        entries["done"] = {"pair_id": "A", "status": "done", "claimed": old}
    with ledger.edit() as entries:
        assert ledger.holder(entries, "crashed", "B") is None
        assert ledger.holder(entries, "recent", "B") is not None
        assert ledger.holder(entries, "done", "B") is not None
    short = _ledger(tmp_path, stale_s=0.0)
    with short.edit() as entries:
        assert short.holder(entries, "recent", "B") is None


def test_put_finalises_or_releases(tmp_path) -> None:
    ledger = _ledger(tmp_path)
    with ledger.edit() as entries:
        ledger.claim(entries, "k", "A")
    ledger.put("k", {"pair_id": "A", "status": "done"})
    with ledger.edit() as entries:
        assert entries["k"]["status"] == "done"
    ledger.put("k", None)
    with ledger.edit() as entries:
        assert entries == {}


def test_parallel_claims_have_exactly_one_winner(tmp_path) -> None:
    ledger = _ledger(tmp_path)

    def try_claim(owner: str) -> bool:
        with ledger.edit() as entries:
            if ledger.holder(entries, "same-content", owner) is not None:
                return False
            ledger.claim(entries, "same-content", owner)
            time.sleep(0.01)  # widen the window a lost update would need
            return True

    with ThreadPoolExecutor(8) as ex:
        won = list(ex.map(try_claim, [f"pair{i}" for i in range(16)]))
    assert won.count(True) == 1
