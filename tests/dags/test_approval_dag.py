"""``promotion: approve`` in satseg_retrain under real Airflow: approve, reject, timeout.

``dag.test()`` parks the ``approve`` task in ``awaiting_input`` and waits, as the scheduler
would; it never answers a human-in-the-loop request itself. The answer comes from a thread,
the way a person gives it: Airflow's REST API (``PATCH .../hitlDetails`` of the real API
server app, logged in through ``/auth/token``), which is also what the UI's "Required
Actions" calls. A timeout is applied by the scheduler's own sweep
(``check_awaiting_input_timeouts``) once the request's deadline passed.

One module-scoped story (a margin of -1 makes every challenger beat the champion, so each
run asks for approval):
1. approved by admin -> first champion v1, ``satseg://model`` event, approvers alerted;
2. rejected with a comment -> v2 stays challenger, v1 champion, the reason recorded;
3. no answer, ``on_timeout=promote``, a 2 s timeout -> v3 promoted by the timeout default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset
from tests.airflow_helpers import HitlAnswer, events_of, load_dag, load_module, task_states, xcom

pytestmark = pytest.mark.slow  # three dag.test() runs with one tiny training each: ~2 min

TESTS = Path(__file__).resolve().parents[1]
sinks_mod = load_module("alert_sinks", TESTS / "alerting" / "alert_sinks.py")
DAG_ID = "satseg_retrain"
CONF = {
    "epochs": 1,
    "batch_size": 4,
    "sweep": None,
    "promotion": "approve",
    "approval_timeout_h": 24,
    "on_timeout": "reject",
}


@pytest.fixture(scope="module")
def story(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from satseg.config import get_settings, reset_settings_cache
    from satseg.registry import champion

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("approval") / "home"
    mp.setenv("SATSEG_HOME", str(home))
    mp.setenv("SATSEG_PROMOTION_MARGIN", "-1.0")
    with sinks_mod.running_sinks() as sinks:
        sinks_mod.configure(mp, sinks)
        s = get_settings()
        s.ensure_dirs()
        write_sample_dataset(
            s.processed / "tiny", dataset="tiny", tag="tiny-v1", n_train=8, n_val=4,
            style=SceneStyle(building_density=2.0),
        )  # fmt: skip
        dag = load_dag(DAG_ID)
        runs, champions = {}, {}
        with HitlAnswer(DAG_ID, "approve", "Approve") as approved:
            runs["approved"] = (dag.test(run_conf={**CONF, "force": False}), approved)
        champions["approved"] = champion(s).version
        with HitlAnswer(DAG_ID, "approve", "Reject", comment="labels of tile 7 are off") as no:
            runs["rejected"] = (dag.test(run_conf={**CONF, "force": True}), no)
        champions["rejected"] = champion(s).version
        timeout = {**CONF, "force": True, "approval_timeout_h": 2 / 3600, "on_timeout": "promote"}
        with HitlAnswer(DAG_ID, "approve", None) as silent:
            runs["timeout"] = (dag.test(run_conf=timeout), silent)
        champions["timeout"] = champion(s).version
        sinks.wait(mails=1, posts=1)
        story = {"settings": s, "runs": runs, "champions": champions, "sinks": sinks}
        yield type("Story", (), story)
    mp.undo()
    reset_settings_cache()


def _version_tag(settings: Any, version: str, key: str) -> str | None:
    from satseg.registry.tracking import setup

    client = setup(settings)
    return client.get_model_version(settings.registered_model, version).tags.get(key)


def test_approved_challenger_becomes_champion(story: Any) -> None:
    dr, answer = story.runs["approved"]
    assert all(v == "success" for v in task_states(dr).values()), task_states(dr)
    detail = answer.detail
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert "Promote satseg model version 1" in detail["subject"]
    assert "| val metric | challenger v1 | champion (none yet) |" in detail["body"]
    assert "Without an answer in 24 h: **reject**" in detail["body"]
    decision = xcom(dr, "promote")
    assert decision["promoted"] is True
    assert decision["reason"].startswith("approved by admin (rule: first model")
    assert story.champions["approved"] == "1"
    assert [e["version"] for e in events_of("satseg_model", dr.run_id)] == ["1"]


def test_reject_keeps_the_champion_and_records_why(story: Any) -> None:
    from satseg.registry import list_models

    dr, answer = story.runs["rejected"]
    assert all(v == "success" for v in task_states(dr).values()), task_states(dr)
    # both models' metrics side by side: the champion re-evaluated on the same val split
    body = answer.detail["body"]
    assert "| val metric | challenger v2 | champion v1 | difference |" in body
    assert "| iou |" in body and "| dice |" in body
    assert answer.response["chosen_options"] == ["Reject"]
    decision = xcom(dr, "promote")
    assert decision["promoted"] is False and decision["version"] == "2"
    assert decision["approval"] == "rejected by admin: labels of tile 7 are off"
    assert decision["champion_metrics"]["iou"] == decision["champion_iou"]
    assert story.champions["rejected"] == "1"
    refs = {r.version: r for r in list_models(story.settings)}
    assert refs["2"].aliases == []  # was challenger until v3 took that alias
    assert "labels of tile 7 are off" in (_version_tag(story.settings, "2", "promotion") or "")
    assert events_of("satseg_model", dr.run_id) == []
    assert "kept as challenger" in xcom(dr, "notify")


def test_timeout_applies_on_timeout(story: Any) -> None:
    from satseg.registry.store import history

    dr, answer = story.runs["timeout"]
    assert all(v == "success" for v in task_states(dr).values()), task_states(dr)
    assert answer.detail["defaults"] == ["Approve"]  # on_timeout=promote
    assert answer.response == {}  # nobody answered
    gate = xcom(dr, "approve")
    assert gate["timedout"] is True and gate["responded_by_user"] is None
    decision = xcom(dr, "promote")
    assert decision["promoted"] is True
    assert decision["approval"] == "no answer within 0.000555556 h: promoted"
    assert story.champions["timeout"] == "3"
    assert history(story.settings) == ["1", "3"]  # v2 never was champion
    assert [e["version"] for e in events_of("satseg_model", dr.run_id)] == ["3"]


def test_approvers_are_alerted_with_the_link_to_answer(story: Any) -> None:
    sinks = story.sinks
    asked = [b for b in sinks.bodies() if "waits for approval" in b]
    assert len(asked) == 3, [m["Subject"] for m in sinks.mails]
    link = f"{sinks_mod.UI}/dags/{DAG_ID}/runs/"
    assert link in asked[1] and "/tasks/approve/required_actions" in asked[1]
    slack = [p["json"]["text"] for p in sinks.posts if "waits for approval" in p["json"]["text"]]
    assert len(slack) == 3 and "required_actions" in slack[0]
