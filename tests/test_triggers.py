"""Entry triggers that run by themselves: a customer enters a segment, a recurring schedule,
a single send at a set time. Driven through the HTTP API on the virtual clock with real RQ
jobs (the harness's time machine), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine.core import calendar
from engine.core.models import Campaign, Enrollment, Profile, Segment
from engine.journeys import segments
from tests.support import add_profiles, doc

GOLD = {"match": "all", "rules": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]}
AWARD = ("p", "award_points", {"points": 1})


# --------------------------------------------------------------------------- helpers


def _segment(h, rules=GOLD, name="Gold customers") -> int:
    with h.transaction() as s:
        segment = Segment(name=name, rules=rules)
        s.add(segment)
        s.flush()
        return segment.id


def _profiles(h, count: int, tiers: dict[int, str] | None = None) -> list[int]:
    with h.transaction() as s:
        ids = add_profiles(s, count)
    for index, tier in (tiers or {}).items():
        _set_tier(h, ids[index], tier)
    return ids


def _set_tier(h, profile_id: int, tier: str, notify: bool = False) -> int:
    """Change a customer's tier as an import would; `notify`: also say so to the segments
    (as the profiles API does), else the next refresh finds out."""
    with h.transaction() as s:
        s.execute(update(Profile).where(Profile.id == profile_id).values(attributes={"tier": tier}))
        return segments.profiles_changed(s, [profile_id], h.clock.now()) if notify else 0


def _create(api, entry: tuple[str, str, dict], extra_nodes=(AWARD,), edges=(("t", "out", "p"),)) -> int:
    response = api.post("/api/campaigns", json=doc([entry, *extra_nodes], list(edges)))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _launch(api, h, campaign_id: int) -> dict:
    response = api.post(f"/api/campaigns/{campaign_id}/launch")
    assert response.status_code == 200, response.get_json()
    h.machine.run_due()
    return response.get_json()


def _journeys(h, campaign_id: int) -> Counter:
    """profile id -> how many times they entered the campaign."""
    with h.session() as s:
        return Counter(s.scalars(select(Enrollment.profile_id).where(
            Enrollment.campaign_id == campaign_id, Enrollment.parent_id.is_(None))))


def _runs(h, campaign_id: int) -> dict[datetime, int]:
    """entry time -> how many entered then: one key per run of a schedule."""
    with h.session() as s:
        return dict(Counter(s.scalars(select(Enrollment.entered_at).where(Enrollment.campaign_id == campaign_id))))


def _campaign(h, campaign_id: int) -> Campaign:
    with h.session() as s:
        return s.get(Campaign, campaign_id)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- segment entry


def test_segment_entry_enrolls_newcomers_on_the_refresh_once_ever(api, harness):
    segment_id = _segment(harness)
    ids = _profiles(harness, 5, {0: "gold", 1: "gold"})
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    assert _launch(api, harness, cid)["entered"] == 0, "members before launch are the baseline"

    harness.machine.advance_to(_at("2026-12-01T08:01:00"))
    _set_tier(harness, ids[2], "gold")  # no notification: the 5-minute refresh finds it
    harness.machine.advance_to(_at("2026-12-01T08:04:59"))
    assert _journeys(harness, cid) == {}
    harness.machine.advance_to(_at("2026-12-01T08:05:00"))
    assert _journeys(harness, cid) == {ids[2]: 1}
    assert _runs(harness, cid) == {_at("2026-12-01T08:05:00"): 1}

    _set_tier(harness, ids[2], "silver")  # out ...
    harness.machine.advance_to(_at("2026-12-01T08:11:00"))
    _set_tier(harness, ids[2], "gold")  # ... and in again
    harness.machine.advance_to(_at("2026-12-01T08:21:00"))
    assert _journeys(harness, cid) == {ids[2]: 1}, "a customer enters once, ever"

    harness.machine.advance_to(_at("2026-12-01T08:22:00"))
    assert _set_tier(harness, ids[3], "gold", notify=True) == 1, "a profile change enrolls at once"
    harness.machine.run_due()
    assert _journeys(harness, cid) == {ids[2]: 1, ids[3]: 1}
    with harness.session() as s:
        assert s.get(Profile, ids[3]).points == 1, "the journey ran"
        assert s.get(Segment, segment_id).evaluated_at == _at("2026-12-01T08:20:00")
    harness.machine.advance(timedelta(hours=2))
    assert _journeys(harness, cid) == {ids[2]: 1, ids[3]: 1}, "members from before launch never enter"
    assert _campaign(harness, cid).status == "active"


def test_segment_entry_with_include_current_enrolls_todays_members_at_launch(api, harness):
    segment_id = _segment(harness)
    ids = _profiles(harness, 4, {0: "gold", 1: "gold"})
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id, "include_current": True}))
    assert _launch(api, harness, cid)["entered"] == 2
    assert _journeys(harness, cid) == {ids[0]: 1, ids[1]: 1}
    _set_tier(harness, ids[2], "gold")
    harness.machine.advance(timedelta(minutes=30))
    assert _journeys(harness, cid) == {ids[0]: 1, ids[1]: 1, ids[2]: 1}


def test_segment_entry_two_campaigns_each_keep_their_own_baseline(api, harness):
    segment_id = _segment(harness)
    ids = _profiles(harness, 4, {0: "gold"})
    first = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    _launch(api, harness, first)
    harness.machine.advance_to(_at("2026-12-01T08:02:00"))
    _set_tier(harness, ids[1], "gold")
    harness.machine.advance_to(_at("2026-12-01T08:03:00"))
    second = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    assert _launch(api, harness, second)["entered"] == 0
    assert _journeys(harness, first) == {ids[1]: 1}, "the second launch's refresh enrolled the first's newcomer"
    _set_tier(harness, ids[2], "gold")
    harness.machine.advance_to(_at("2026-12-01T08:05:00"))
    assert _journeys(harness, first) == {ids[1]: 1, ids[2]: 1}
    assert _journeys(harness, second) == {ids[2]: 1}


def test_segment_entry_until_closes_entries_and_lets_the_campaign_finish(api, harness):
    segment_id = _segment(harness)
    ids = _profiles(harness, 4)
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id, "until": "2026-12-01T09:00:00Z"}))
    _launch(api, harness, cid)
    harness.machine.advance_to(_at("2026-12-01T08:30:00"))
    _set_tier(harness, ids[0], "gold")
    harness.machine.advance_to(_at("2026-12-01T08:35:00"))
    assert _journeys(harness, cid) == {ids[0]: 1}
    harness.rt.sweep()
    assert _campaign(harness, cid).status == "active", "still admitting until 09:00"

    harness.machine.advance_to(_at("2026-12-01T08:58:00"))
    _set_tier(harness, ids[1], "gold")  # the 09:00 refresh is the last one
    harness.machine.advance_to(_at("2026-12-01T09:02:00"))
    _set_tier(harness, ids[2], "gold")
    assert _set_tier(harness, ids[3], "gold", notify=True) == 0
    harness.machine.advance(timedelta(hours=1))
    assert _journeys(harness, cid) == {ids[0]: 1}, "09:00 is not before the until: nobody after it"
    assert harness.machine.next_scheduled() is None, "refreshes stop once no campaign watches"
    harness.rt.sweep()
    assert _campaign(harness, cid).status == "finished"


def test_segment_entry_launch_refuses_a_past_until_and_a_missing_segment(api, harness):
    cid = _create(api, ("t", "segment_entry", {"segment_id": _segment(harness), "until": "2026-12-01T07:00:00Z"}))
    error = _error(api.post(f"/api/campaigns/{cid}/launch"), 400)
    assert error["details"][0]["pointer"] == "/nodes/0/settings/until"
    missing = _create(api, ("t", "segment_entry", {"segment_id": 999}))
    error = _error(api.post(f"/api/campaigns/{missing}/launch"), 409)
    assert error["details"][0]["pointer"] == "/nodes/0/settings/segment_id"
    assert {_campaign(harness, c).status for c in (cid, missing)} == {"draft"}
    assert harness.machine.next_scheduled() is None


# --------------------------------------------------------------------------- recurring schedule


def _schedule(**settings) -> tuple[str, str, dict]:
    return ("t", "schedule_trigger", {"source": "all", **settings})


def test_cron_schedule_runs_at_nine_paris_time_between_start_and_end(api, harness):
    ids = _profiles(harness, 3)
    cid = _create(api, _schedule(cron="0 9 * * *", timezone="Europe/Paris", start="2026-12-02T00:00",
                                 end="2026-12-05T23:59"))
    assert _launch(api, harness, cid)["entered"] == 0
    assert _campaign(harness, cid).next_run_at == _at("2026-12-02T08:00:00")
    harness.machine.advance_to(_at("2026-12-02T07:59:59"))
    assert _runs(harness, cid) == {}
    harness.machine.advance_to(_at("2026-12-10T00:00:00"))
    assert _runs(harness, cid) == {_at(f"2026-12-0{d}T08:00:00"): 3 for d in (2, 3, 4, 5)}
    assert set(_journeys(harness, cid).values()) == {4} and len(_journeys(harness, cid)) == len(ids)
    campaign = _campaign(harness, cid)
    assert campaign.next_run_at is None and campaign.status == "active"
    harness.rt.sweep()
    assert _campaign(harness, cid).status == "finished", "no run left, nobody in flight"


def test_cron_schedule_keeps_local_time_across_the_dst_change(api, harness):
    _profiles(harness, 2)
    cid = _create(api, _schedule(cron="0 9 * * *", timezone="Europe/Paris", start="2027-03-26T00:00",
                                 end="2027-03-30T12:00"))
    _launch(api, harness, cid)
    harness.machine.advance_to(_at("2027-04-10T00:00:00"))
    assert sorted(_runs(harness, cid)) == [
        _at("2027-03-26T08:00:00"), _at("2027-03-27T08:00:00"),  # CET, UTC+1
        _at("2027-03-28T07:00:00"), _at("2027-03-29T07:00:00"), _at("2027-03-30T07:00:00"),  # CEST, UTC+2
    ]


def test_every_schedule_keeps_its_phase_and_local_time(api, harness):
    _profiles(harness, 2)
    every_12h = _create(api, _schedule(every="12h", start="2026-12-01T10:00", end="2026-12-03T10:00"))
    started_before = _create(api, _schedule(every="1d", start="2026-11-28T09:30", end="2026-12-03T00:00"))
    paris_daily = _create(api, _schedule(every="1d", start="2027-03-27T09:00", end="2027-03-29T23:00",
                                         timezone="Europe/Paris"))
    for cid in (every_12h, started_before, paris_daily):
        _launch(api, harness, cid)
    harness.machine.advance_to(_at("2027-04-01T00:00:00"))
    assert sorted(_runs(harness, every_12h)) == [_at(t) for t in (
        "2026-12-01T10:00:00", "2026-12-01T22:00:00", "2026-12-02T10:00:00", "2026-12-02T22:00:00",
        "2026-12-03T10:00:00")]
    assert sorted(_runs(harness, started_before)) == [_at("2026-12-01T09:30:00"), _at("2026-12-02T09:30:00")]
    assert sorted(_runs(harness, paris_daily)) == [_at("2027-03-27T08:00:00"), _at("2027-03-28T07:00:00"),
                                                   _at("2027-03-29T07:00:00")]


@pytest.mark.parametrize(("repeat", "expected"), [
    ("many", {2: 3, 3: 1, 4: 3, 5: 1}),
    ("once", {2: 3, 3: 1}),
])
def test_schedule_repeat_once_or_many_never_while_in_flight(api, harness, repeat, expected):
    ids = _profiles(harness, 3)
    cid = _create(api, _schedule(every="1d", start="2026-12-02T08:00", end="2026-12-05T12:00", repeat=repeat),
                  extra_nodes=[("w", "wait", {"amount": 36, "unit": "hours"}), AWARD],
                  edges=[("t", "out", "w"), ("w", "out", "p")])
    _launch(api, harness, cid)
    harness.machine.advance_to(_at("2026-12-02T12:00:00"))
    with harness.transaction() as s:
        ids += add_profiles(s, 1, external_id="late", email="late@example.com")
    harness.machine.advance_to(_at("2026-12-10T00:00:00"))
    assert {t.day: n for t, n in _runs(harness, cid).items()} == expected
    # many: the first three are still waiting on the 3rd (36 h), back on the 4th; the late one
    # enters on the 3rd and is in flight on the 4th. once: nobody twice.
    assert sum(_journeys(harness, cid).values()) == sum(expected.values())


def test_schedule_launch_refuses_a_schedule_whose_end_has_passed(api, harness):
    cid = _create(api, _schedule(cron="0 9 * * *", start="2026-11-01T00:00", end="2026-11-30T00:00"))
    error = _error(api.post(f"/api/campaigns/{cid}/launch"), 400)
    assert error["details"][0]["pointer"] == "/nodes/0/settings/end"
    campaign = _campaign(harness, cid)
    assert (campaign.status, campaign.next_run_at) == ("draft", None)


def test_schedule_settings_are_checked_with_node_pointers(api, harness):
    bad = {
        "cron": (_schedule(cron="0 9 * *", start="2026-12-02T00:00"), "/nodes/0/settings/cron"),
        "cron_value": (_schedule(cron="0 25 * * *", start="2026-12-02T00:00"), "/nodes/0/settings/cron"),
        "neither": (_schedule(start="2026-12-02T00:00"), "/nodes/0/settings/cron"),
        "both": (_schedule(cron="0 9 * * *", every="1d", start="2026-12-02T00:00"), "/nodes/0/settings/every"),
        "timezone": (_schedule(cron="0 9 * * *", start="2026-12-02T00:00", timezone="Europe/Pariss"),
                     "/nodes/0/settings/timezone"),
        "end": (_schedule(every="1d", start="2026-12-05T00:00", end="2026-12-02T00:00"), "/nodes/0/settings/end"),
        "start": (_schedule(every="1d", start="next monday"), "/nodes/0/settings/start"),
        "send_at": (("t", "select_segment", {"source": "all", "send_at": "tomorrow"}),
                    "/nodes/0/settings/send_at"),
        "until": (("t", "segment_entry", {"segment_id": 1, "until": "2026-13-01"}), "/nodes/0/settings/until"),
    }
    for name, (entry, pointer) in bad.items():
        document = doc([entry, AWARD], [("t", "out", "p")])
        problems = api.post("/api/campaigns/validate", json=document).get_json()["problems"]
        assert [p["pointer"] for p in problems if p["severity"] == "error"] == [pointer], name
        assert api.post("/api/campaigns", json=document).status_code == 422, name
    with harness.session() as s:
        assert s.scalar(select(Campaign.id)) is None, "nothing was stored"


def test_a_lost_schedule_job_still_runs_through_the_sweeper(api, harness, redis_conn):
    _profiles(harness, 3)
    cid = _create(api, _schedule(cron="0 9 * * *", start="2026-12-01T00:00", end="2026-12-02T23:00"))
    _launch(api, harness, cid)
    lost = list(redis_conn.scan_iter("rq:*"))
    assert lost, "the run had a job in Redis"
    redis_conn.delete(*lost)
    harness.machine.advance_to(_at("2026-12-01T09:30:00"))
    assert _runs(harness, cid) == {}, "nothing wakes without a job"

    assert harness.rt.sweep()["scheduled_entered"] == 3
    harness.machine.run_due()
    assert _runs(harness, cid) == {_at("2026-12-01T09:30:00"): 3}
    assert harness.rt.sweep()["scheduled_entered"] == 0, "one run, not one per sweep"
    assert _campaign(harness, cid).next_run_at == _at("2026-12-02T09:00:00")
    harness.machine.advance_to(_at("2026-12-05T00:00:00"))  # the sweeper asked for the next job
    assert sorted(_runs(harness, cid)) == [_at("2026-12-01T09:30:00"), _at("2026-12-02T09:00:00")]
    with harness.session() as s:
        assert set(s.scalars(select(Profile.points))) == {2}


def test_a_lost_segment_refresh_job_is_asked_for_again_by_the_sweeper(api, harness, redis_conn):
    segment_id = _segment(harness)
    ids = _profiles(harness, 2)
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    _launch(api, harness, cid)
    redis_conn.delete(*redis_conn.scan_iter("rq:*"))
    _set_tier(harness, ids[0], "gold")
    harness.machine.advance_to(_at("2026-12-01T08:30:00"))
    assert _journeys(harness, cid) == {}
    harness.rt.sweep()
    harness.machine.advance_to(_at("2026-12-01T08:35:00"))
    assert _runs(harness, cid) == {_at("2026-12-01T08:35:00"): 1}


# --------------------------------------------------------------------------- single send


def test_single_send_enrolls_once_at_its_time_not_before(api, harness):
    ids = _profiles(harness, 3)
    cid = _create(api, ("t", "select_segment", {"source": "all", "send_at": "2026-12-01T10:00:00Z"}))
    launched = _launch(api, harness, cid)
    assert (launched["entered"], launched["status"], launched["next_run_at"]) == (0, "scheduled",
                                                                                  "2026-12-01T10:00:00Z")
    assert _campaign(harness, cid).next_run_at == _at("2026-12-01T10:00:00")
    harness.rt.sweep()
    assert _campaign(harness, cid).status == "scheduled", "not finished while waiting"
    harness.machine.advance_to(_at("2026-12-01T09:59:59"))
    assert _journeys(harness, cid) == {}
    with harness.transaction() as s:  # joins before the send: in the audience at send time
        ids += add_profiles(s, 1, external_id="new", email="new@example.com")
    harness.machine.advance_to(_at("2026-12-01T10:00:00"))
    campaign = _campaign(harness, cid)
    assert (campaign.status, campaign.launched_at, campaign.next_run_at) == ("active", _at("2026-12-01T10:00:00"),
                                                                             None)
    harness.machine.advance(timedelta(days=3))
    assert _runs(harness, cid) == {_at("2026-12-01T10:00:00"): 4}
    assert _journeys(harness, cid) == {pid: 1 for pid in ids}
    harness.rt.sweep()
    assert _campaign(harness, cid).status == "finished"


def test_single_send_less_than_an_hour_ahead_is_refused_naming_the_field(api, harness):
    _profiles(harness, 2)
    cid = _create(api, ("t", "select_segment", {"source": "all", "send_at": "2026-12-01T08:59:00Z"}))
    error = _error(api.post(f"/api/campaigns/{cid}/launch"), 400)
    assert error["details"][0]["pointer"] == "/nodes/0/settings/send_at"
    assert "1 hour" in error["message"]
    campaign = _campaign(harness, cid)
    assert (campaign.status, campaign.next_run_at, campaign.launched_at) == ("draft", None, None)
    harness.machine.advance(timedelta(hours=2))
    assert _journeys(harness, cid) == {}
    assert harness.machine.next_scheduled() is None


def test_single_send_in_local_time_and_cancelled_by_stop(api, harness):
    _profiles(harness, 2)
    local = _create(api, ("t", "select_segment", {"source": "all", "send_at": "2026-12-01T12:00"}))
    cancelled = _create(api, ("t", "select_segment", {"source": "all", "send_at": "2026-12-01T11:00:00Z"}))
    _launch(api, harness, local)
    _launch(api, harness, cancelled)
    error = _error(api.post(f"/api/campaigns/{cancelled}/pause"), 409)
    assert "stop it to cancel" in error["message"]
    assert api.post(f"/api/campaigns/{cancelled}/stop").get_json()["status"] == "stopped"
    harness.machine.advance(timedelta(days=1))
    harness.rt.sweep()
    assert _journeys(harness, cancelled) == {}
    assert _campaign(harness, cancelled).status == "stopped"
    assert _runs(harness, local) == {_at("2026-12-01T12:00:00"): 2}, "no offset: the account time zone (UTC)"


def test_concurrent_profile_changes_enroll_a_newcomer_once(api, harness):
    """A profile update and an audience change racing on one customer: the second waits for
    the first and then sees the journey it started."""
    import threading

    segment_id = _segment(harness)
    ids = _profiles(harness, 2)
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    _launch(api, harness, cid)
    harness.clock.advance(timedelta(minutes=1))
    results: list[int] = []
    with harness.transaction() as first:
        first.execute(update(Profile).where(Profile.id == ids[0]).values(attributes={"tier": "gold"}))
        assert segments.profiles_changed(first, [ids[0]], harness.clock.now()) == 1

        def second() -> None:
            with harness.transaction() as s:
                results.append(segments.profiles_changed(s, [ids[0]], harness.clock.now()))

        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=0.5)
        assert racer.is_alive(), "the second refresh waits for the first"
    racer.join(timeout=10)
    assert results == [0]
    assert _journeys(harness, cid) == {ids[0]: 1}


def test_simulation_runs_schedules_on_its_virtual_clock():
    from engine.journeys.simulate import Simulation

    recurring = ("t", "schedule_trigger", {"source": "all", "every": "1d", "start": "2026-12-02T09:00",
                                           "end": "2026-12-04T10:00"})
    single = ("t", "select_segment", {"source": "all", "send_at": "2026-12-03T09:00"})
    for entry, entered in ((recurring, 15), (single, 5)):
        with Simulation(doc([entry, AWARD], [("t", "out", "p")]), start=_at("2026-12-01T08:00:00")) as sim:
            sim.add_profiles([{"email": f"c{i}@example.com"} for i in range(5)])
            result = sim.run(until=timedelta(days=10))
        assert result.nodes["p"]["entered"] == entered, entry[1]


def test_a_scheduled_send_moved_by_an_edit_runs_once_at_the_new_time(api, harness):
    ids = _profiles(harness, 2)
    cid = _create(api, ("t", "select_segment", {"source": "all", "send_at": "2026-12-01T10:00:00Z"}))
    _launch(api, harness, cid)
    too_soon = doc([("t", "select_segment", {"source": "all", "send_at": "2026-12-01T08:30:00Z"}), AWARD],
                   [("t", "out", "p")])
    refused = _error(api.put(f"/api/campaigns/{cid}", json=too_soon), 400)
    assert refused["details"][0]["pointer"] == "/nodes/0/settings/send_at"
    assert api.get(f"/api/campaigns/{cid}").get_json()["version"] == 1, "a refused edit stores nothing"
    moved = doc([("t", "select_segment", {"source": "all", "send_at": "2026-12-01T12:00:00Z"}), AWARD],
                [("t", "out", "p")])
    edited = api.put(f"/api/campaigns/{cid}", json=moved).get_json()
    assert (edited["status"], edited["next_run_at"]) == ("scheduled", "2026-12-01T12:00:00Z")
    harness.machine.advance_to(_at("2026-12-01T11:00:00"))  # the 10:00 job finds nothing due
    assert _journeys(harness, cid) == {}
    harness.machine.advance_to(_at("2026-12-02T00:00:00"))
    assert _runs(harness, cid) == {_at("2026-12-01T12:00:00"): 2}
    assert _journeys(harness, cid) == {pid: 1 for pid in ids}


def test_an_edited_recurring_schedule_runs_at_its_new_time_from_the_next_run(api, harness):
    _profiles(harness, 2)
    cid = _create(api, _schedule(cron="0 9 * * *", timezone="UTC", start="2026-12-01T00:00"))
    _launch(api, harness, cid)
    assert _campaign(harness, cid).next_run_at == _at("2026-12-01T09:00:00")
    harness.machine.advance_to(_at("2026-12-01T12:00:00"))
    edited = doc([_schedule(cron="30 18 * * *", timezone="UTC", start="2026-12-01T00:00"), AWARD], [("t", "out", "p")])
    assert api.put(f"/api/campaigns/{cid}", json=edited).get_json()["next_run_at"] == "2026-12-01T18:30:00Z"
    harness.machine.advance_to(_at("2026-12-02T20:00:00"))
    assert list(_runs(harness, cid)) == [_at("2026-12-01T09:00:00"), _at("2026-12-01T18:30:00"),
                                         _at("2026-12-02T18:30:00")]


def test_a_segment_whose_rules_broke_holds_back_neither_profile_updates_nor_refreshes(api, harness):
    broken_id, good_id = _segment(harness, name="Broken"), _segment(harness, name="Good")
    ids = _profiles(harness, 2)
    broken = _create(api, ("t", "segment_entry", {"segment_id": broken_id}))
    good = _create(api, ("t", "segment_entry", {"segment_id": good_id}))
    _launch(api, harness, broken)
    _launch(api, harness, good)
    with harness.transaction() as s:  # e.g. the audience it names was deleted
        s.get(Segment, broken_id).rules = {"match": "all", "rules": [{"audience": 999}]}
    harness.clock.advance(timedelta(minutes=1))
    assert _set_tier(harness, ids[0], "gold", notify=True) == 1
    _set_tier(harness, ids[1], "gold")
    harness.machine.advance(timedelta(minutes=10))  # a failing RQ job would raise here
    assert _journeys(harness, good) == {ids[0]: 1, ids[1]: 1}
    assert _journeys(harness, broken) == {}


def test_a_scheduled_run_whose_segment_is_gone_suspends_the_campaign_and_says_why(api, harness):
    segment_id = _segment(harness)
    _profiles(harness, 2, {0: "gold"})
    cid = _create(api, _schedule(source="segment", segment_id=segment_id, cron="0 9 * * *",
                                 start="2026-12-01T00:00"))
    _launch(api, harness, cid)
    with harness.transaction() as s:
        s.delete(s.get(Segment, segment_id))
    harness.machine.advance_to(_at("2026-12-01T09:00:00"))  # a failing RQ job would raise here
    campaign = _campaign(harness, cid)
    assert campaign.status == "suspended"
    assert f"segment {segment_id} does not exist" in campaign.status_reason
    assert _journeys(harness, cid) == {}


def test_local_times_skipped_or_repeated_by_dst_run_once():
    """02:30 Paris does not exist on 2027-03-28 (runs at 03:30 local) and happens twice on
    2027-10-31 (runs once, the first time)."""
    from zoneinfo import ZoneInfo

    def runs(start: str, end: str) -> list[datetime]:
        settings = {"cron": "30 2 * * *", "start": start, "end": end, "timezone": "Europe/Paris"}
        found, after = [], _at("2027-01-01T00:00:00")
        while (after := calendar.next_run(settings, after, ZoneInfo("UTC"))) is not None:
            found.append(after)
        return found

    assert runs("2027-03-27T00:00", "2027-03-29T23:00") == [
        _at("2027-03-27T01:30:00"), _at("2027-03-28T01:30:00"), _at("2027-03-29T00:30:00")]
    assert runs("2027-10-30T00:00", "2027-11-01T23:00") == [
        _at("2027-10-30T00:30:00"), _at("2027-10-31T00:30:00"), _at("2027-11-01T01:30:00")]


def test_editing_a_watched_segment_enrolls_its_newcomers_at_once(api, harness):
    ids = _profiles(harness, 4, {0: "gold", 1: "silver", 2: "silver"})
    segment_id = _segment(harness)
    cid = _create(api, ("t", "segment_entry", {"segment_id": segment_id}))
    _launch(api, harness, cid)
    harness.clock.advance(timedelta(minutes=1))
    silver_too = {"match": "any", "rules": [{"field": "attributes.tier", "op": "eq", "value": "gold"},
                                            {"field": "attributes.tier", "op": "eq", "value": "silver"}]}
    assert api.put(f"/api/segments/{segment_id}", json={"rules": silver_too}).status_code == 200
    harness.machine.run_due()
    assert _journeys(harness, cid) == {ids[1]: 1, ids[2]: 1}, "the new members enter without waiting 5 minutes"
