"""The `campaign-canvas` console script as a user runs it: a subprocess, exit codes and output."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.journeys.generate import profiles

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPT = Path(sys.executable).parent / "campaign-canvas"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def simulate(*args: str) -> dict:
    result = run("simulate", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def half_up(x: float) -> int:
    return int(x + 0.5)


# --------------------------------------------------------------------------- validate


def test_validate_a_good_document():
    result = run("validate", str(EXAMPLES / "welcome_series.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "welcome_series.json: valid" in result.stdout
    assert "invalid" not in result.stdout


def test_validate_prints_every_problem_with_its_pointer():
    result = run("validate", str(EXAMPLES / "broken.json"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()

    def line(pointer: str, *words: str) -> str:
        found = [x for x in lines if x.startswith("error") and f" {pointer} " in x and all(w in x for w in words)]
        assert len(found) == 1, (pointer, words, result.stdout)
        return found[0]

    line("/nodes/2/type", "node x", "send_fax")
    line("/nodes/1/settings/amount", "node w", "amount", "-1")
    line("/edges/0/source_port", "node t", "'yes'")
    line("/nodes/3", "node lonely", "cannot be reached")
    assert len([x for x in lines if x.startswith("error")]) == 4
    assert "broken.json: invalid (4 errors" in lines[-1]


@pytest.mark.parametrize("command", ["validate", "simulate"])
def test_unreadable_files_give_one_clear_line(tmp_path, command):
    missing = tmp_path / "nope.json"
    text = tmp_path / "notes.json"
    text.write_text("these are notes, not JSON\n")
    binary = tmp_path / "picture.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    surrogate = tmp_path / "half.json"
    surrogate.write_text('{"name": "x\\ud800"}')
    for path, words in [(missing, "does not exist"), (text, "is not JSON"), (binary, "is not JSON"),
                        (tmp_path, "cannot read"), (deep, "cannot be used: it is nested more than 64 levels deep"),
                        (surrogate, "cannot be used: at /name, it must not contain a lone UTF-16 surrogate")]:
        result = run(command, str(path))
        assert result.returncode != 0
        assert result.stdout == ""
        assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr  # one line, no traceback
        assert result.stderr.startswith("error: ") and str(path) in result.stderr and words in result.stderr


# --------------------------------------------------------------------------- simulate


def test_simulate_ab_winback_counts_add_up():
    out = simulate(str(EXAMPLES / "ab_winback.json"), "--profiles", "3000", "--start", "2026-12-01T08:00:00Z",
                   "--until", "30d")
    n = out["nodes"]
    free = sum(1 for p in profiles(3000, seed=7) if p["attributes"]["plan"] == "free")
    assert 0 < free < 3000

    assert n["all"]["entered"] == 3000 and n["free"]["entered"] == 3000
    assert n["free"]["left"] == {"yes": free, "no": 3000 - free}
    assert n["holdout"]["entered"] == free
    control = half_up(free * 10 / 100)  # the control group keeps exactly 10%, rounded half up
    assert n["holdout"]["left"] == {"control": control, "out": free - control}
    tested = free - control
    assert tested < 1000  # fewer than the test size: everyone is in the test, split evenly
    assert n["offer"]["entered"] == tested
    variants = n["offer"]["left"]
    assert set(variants) == {"discount", "points"}
    assert variants["discount"] + variants["points"] == tested
    assert abs(variants["discount"] - variants["points"]) <= 1
    assert n["cap"]["left"] == {"out": variants["discount"]}  # under the 5000 a day limit
    assert n["give_points"]["left"] == {"out": variants["points"]}
    assert n["until_monday"] == {"entered": tested, "waiting": 0, "left": {"out": tested}}
    assert n["engaged"]["entered"] == tested
    assert all(node["waiting"] == 0 for node in n.values())
    # released once, at the date: the last thing that happened
    assert datetime.fromisoformat(out["ended"]) == datetime(2026, 12, 7, 9, 0)
    assert datetime.fromisoformat(out["started"]) == datetime(2026, 12, 1, 8, 0)


def test_simulate_stops_before_the_wait_until_date():
    # 2026-12-01 08:00 + 6 days is 08:00 on the 7th, an hour before the release
    out = simulate(str(EXAMPLES / "ab_winback.json"), "--profiles", "300", "--start", "2026-12-01T08:00:00Z",
                   "--until", "6d")
    wait = out["nodes"]["until_monday"]
    assert wait["entered"] > 0
    assert wait["waiting"] == wait["entered"] and wait["left"] == {}
    assert "engaged" not in out["nodes"]


def test_simulate_event_triggered_welcome_series():
    out = simulate(str(EXAMPLES / "welcome_series.json"), "--profiles", "200")
    n = out["nodes"]
    vips = sum(1 for p in profiles(200, seed=7) if p["attributes"]["vip"])
    assert 0 < vips < 200
    assert n["signup"]["entered"] == 200
    assert n["vip"]["left"] == {"yes": vips, "no": 200 - vips}
    assert n["bonus"]["left"] == {"out": vips}
    assert n["join"]["entered"] == 200
    assert n["wait2d"] == {"entered": 200, "waiting": 0, "left": {"out": 200}}
    assert n["onboarding"]["entered"] == 200
    ended, started = datetime.fromisoformat(out["ended"]), datetime.fromisoformat(out["started"])
    assert ended - started == timedelta(days=2)


def test_simulate_refuses_an_invalid_document_with_every_problem():
    result = run("simulate", str(EXAMPLES / "broken.json"), "--profiles", "10")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: campaign document is invalid: 4 problems")
    details = [json.loads(line) for line in result.stderr.splitlines()[1:]]
    assert {(d["code"], d["pointer"]) for d in details} == {
        ("invalid_settings", "/nodes/1/settings/amount"), ("unknown_type", "/nodes/2/type"),
        ("unknown_port", "/edges/0/source_port"), ("unreachable", "/nodes/3")}


@pytest.mark.parametrize("option, value", [("--until", "a month"), ("--start", "yesterday")])
def test_simulate_bad_time_options_are_one_line(option, value):
    result = run("simulate", str(EXAMPLES / "welcome_series.json"), "--profiles", "5", option, value)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {option}") and value in result.stderr


# --------------------------------------------------------------------------- migrate


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path):
    from alembic.script import ScriptDirectory

    from engine.core.db import alembic_config

    database = tmp_path / "x.db"
    env = {"DATABASE_URL": f"sqlite:///{database}", "CC_INSTANCE_DIR": str(tmp_path / "instance")}
    head = ScriptDirectory.from_config(alembic_config(f"sqlite:///{database}")).get_current_head()

    def schema() -> tuple[list[str], list[tuple[str, ...]]]:
        with sqlite3.connect(database) as conn:
            tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return tables, versions

    first = run("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "database schema is current" in first.stdout
    tables, versions = schema()
    assert versions == [(head,)]
    assert {"campaigns", "campaign_versions", "enrollments", "profiles"} <= set(tables)

    second = run("migrate", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert schema() == (tables, versions)


def test_simulate_uses_the_account_time_zone():
    """"Wait until 2026-12-07 09:00" means 09:00 in the account's zone: 08:00 UTC in Paris."""
    result = run("simulate", "examples/ab_winback.json", "--profiles", "200", "--start", "2026-12-01T08:00:00Z",
                 env={"CC_ACCOUNT_TIMEZONE": "Europe/Paris"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert datetime.fromisoformat(out["ended"]) == datetime(2026, 12, 7, 8, 0)
    assert out["nodes"]["until_monday"]["waiting"] == 0
