"""Profiles over the REST API, on SQLite and PostgreSQL: bulk upsert (matched by identity,
attributes merged, all or nothing with every bad item's pointer), listing, PATCH, DELETE,
and file imports (CSV and JSON; bad rows refused by line, good rows kept; large files in
the background with progress) through the API and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.core.models import ImportJob, Profile
from tests.support import error_of, ok

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "campaign-canvas"






def count_profiles(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(Profile))


def upsert(api, *items) -> dict:
    return ok(api.post("/api/profiles", json={"profiles": list(items)}))


# --------------------------------------------------------------------------- bulk upsert


def test_bulk_upsert_creates_then_updates_and_merges_attributes(api, harness):
    first = upsert(api,
                   {"external_id": "u1", "email": "Ana@Example.com", "timezone": "Europe/Paris",
                    "attributes": {"plan": "gold", "city": "Lyon"}},
                   {"email": "bo@example.com", "attributes": {"plan": "free"}},
                   {"phone": "+33 6 12 34 56 78", "sms_opt_out": True})
    assert (first["created"], first["updated"], len(first["ids"])) == (3, 0, 3)
    ana, bo, phone = first["ids"]

    second = upsert(api,
                    {"email": "ANA@example.COM", "attributes": {"plan": "platinum", "age": 41, "city": None}},
                    {"external_id": "u2", "email": "bo@example.com", "push_tokens": ["tok-1"]},
                    {"email": "cy@example.com"})
    assert (second["created"], second["updated"]) == (1, 2)
    assert second["ids"][:2] == [ana, bo] and second["ids"][2] not in first["ids"]
    assert count_profiles(harness) == 4

    got = ok(api.get(f"/api/profiles/{ana}"))
    assert (got["external_id"], got["email"], got["timezone"]) == ("u1", "ana@example.com", "Europe/Paris")
    assert got["attributes"] == {"plan": "platinum", "age": 41}  # merged; null removed city
    got = ok(api.get(f"/api/profiles/{bo}"))
    assert (got["external_id"], got["push_tokens"], got["attributes"]) == ("u2", ["tok-1"], {"plan": "free"})
    got = ok(api.get(f"/api/profiles/{phone}"))
    assert (got["phone"], got["sms_opt_out"], got["email_opt_out"]) == ("+33612345678", True, False)  # one form


def test_items_naming_one_customer_twice_in_a_request_update_the_profile_the_first_creates(api, harness):
    result = upsert(api, {"email": "dup@example.com", "attributes": {"a": 1}},
                    {"external_id": "d1", "email": "dup@example.com", "attributes": {"b": 2}})
    assert (result["created"], result["updated"]) == (1, 1)
    assert result["ids"][0] == result["ids"][1]
    got = ok(api.get(f"/api/profiles/{result['ids'][0]}"))
    assert (got["external_id"], got["attributes"]) == ("d1", {"a": 1, "b": 2})


def test_a_bad_item_names_its_pointer_and_nothing_is_written(api, harness):
    good = [{"external_id": f"g{i}"} for i in range(10)]
    items = [*good]
    items[2] = {"email": "not-an-email"}
    items[4] = {"attributes": {"plan": "gold"}}                      # no identifier
    items[7] = {"external_id": "g7", "timezone": "Mars/Olympus"}
    items[8] = {"external_id": "g8", "colour": "red", "points": 5}  # unknown and read-only fields
    items[9] = {"phone": "call me", "email_opt_out": "yes"}
    error = error_of(api.post("/api/profiles", json={"profiles": items}), 400, "invalid_input")
    pointers = [d["pointer"] for d in error["details"]]
    assert pointers == ["/profiles/2/email", "/profiles/4", "/profiles/7/timezone", "/profiles/8/colour",
                        "/profiles/8/points", "/profiles/9/phone", "/profiles/9/email_opt_out"]
    assert "5 profiles are invalid" in error["message"]
    assert "IANA" in error["details"][2]["message"]
    assert count_profiles(harness) == 0


@pytest.mark.parametrize("body", [[], {"profiles": []}, {"profiles": {}}, {"people": []}])
def test_the_body_must_be_a_list_of_profiles(api, harness, body):
    error_of(api.post("/api/profiles", json=body), 400, "invalid_input")
    assert count_profiles(harness) == 0


def test_an_identifier_of_another_customer_refuses_the_item(api, harness):
    ids = upsert(api, {"external_id": "a", "email": "a@example.com"},
                 {"external_id": "b", "email": "b@example.com"})["ids"]
    error = error_of(api.post("/api/profiles", json={"profiles": [
        {"external_id": "new", "email": "n@example.com"},
        {"external_id": "a", "email": "b@example.com"},      # b's email on a
        {"external_id": "z", "email": "a@example.com"},      # matched by email, but a's external_id is "a"
    ]}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/profiles/1/email", "/profiles/2/external_id"]
    assert f"id {ids[1]}" in error["details"][0]["message"]
    assert count_profiles(harness) == 2
    assert ok(api.get(f"/api/profiles/{ids[0]}"))["email"] == "a@example.com"


def test_an_email_moves_to_a_profile_once_the_other_gives_it_up(api, harness):
    a, b = upsert(api, {"external_id": "a", "email": "x@example.com"}, {"external_id": "b"})["ids"]
    result = upsert(api, {"external_id": "a", "email": "a2@example.com"},
                    {"external_id": "b", "email": "x@example.com"})
    assert result == {"created": 0, "updated": 2, "ids": [a, b]}
    assert ok(api.get(f"/api/profiles/{b}"))["email"] == "x@example.com"


# --------------------------------------------------------------------------- list, patch, delete


def test_list_searches_identifier_prefixes_and_pages(api):
    upsert(api, *[{"external_id": f"cust-{i:03}", "email": f"user{i}@example.com"} for i in range(45)],
           {"phone": "+4915112345678"})
    page = ok(api.get("/api/profiles?limit=20&offset=40"))
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (46, 6, 20, 40)
    assert ok(api.get("/api/profiles?q=cust-01"))["total"] == 10
    assert ok(api.get("/api/profiles?q=USER4"))["total"] == 6       # user4, user40..44: emails are lowercase
    assert [p["phone"] for p in ok(api.get("/api/profiles?q=%2B49"))["items"]] == ["+4915112345678"]
    assert ok(api.get("/api/profiles?q=nobody"))["total"] == 0
    error_of(api.get("/api/profiles?offset=-1"), 400, "invalid_input")


def test_patch_changes_given_fields_and_refuses_conflicts(api):
    a, b = upsert(api, {"external_id": "a", "email": "a@example.com", "attributes": {"x": 1, "y": 2}},
                  {"external_id": "b", "email": "b@example.com"})["ids"]
    got = ok(api.patch(f"/api/profiles/{a}", json={"external_id": "a-new", "email": None, "phone": "+1 555 0100 22",
                                                  "attributes": {"y": None, "z": "3"}, "timezone": "America/New_York"}))
    assert (got["external_id"], got["email"], got["phone"]) == ("a-new", None, "+1555010022")
    assert (got["attributes"], got["timezone"]) == ({"x": 1, "z": "3"}, "America/New_York")

    error = error_of(api.patch(f"/api/profiles/{a}", json={"email": "B@example.com", "timezone": "Nowhere"}),
                     400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/timezone"]
    error = error_of(api.patch(f"/api/profiles/{a}", json={"email": "B@example.com"}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == ["/email"]
    error = error_of(api.patch(f"/api/profiles/{b}", json={"external_id": None, "email": None}), 400, "invalid_input")
    assert [d["pointer"] for d in error["details"]] == [""]
    assert ok(api.get(f"/api/profiles/{b}"))["email"] == "b@example.com"
    error_of(api.patch("/api/profiles/999999", json={"email": "c@example.com"}), 404, "not_found")


def test_delete_removes_the_profile(api, harness):
    a, _b = upsert(api, {"external_id": "a"}, {"external_id": "b"})["ids"]
    assert ok(api.delete(f"/api/profiles/{a}")) == {"deleted": a}
    error_of(api.get(f"/api/profiles/{a}"), 404, "not_found")
    error_of(api.delete(f"/api/profiles/{a}"), 404, "not_found")
    assert count_profiles(harness) == 1


# --------------------------------------------------------------------------- imports

MIXED_CSV = """external_id,email,phone,timezone,plan,age:number,vip:boolean,attributes.zip
c1,c1@example.com,,Europe/Paris,gold,41,yes,00123
c2,not-an-email,,,free,,,
,,,,orphan,,,
c4,c4@example.com,,Mars/Base,free,,,
c5,C5@Example.com,+44 20 7946 0958,,free,3.5,no,

c6,c6@example.com,,,free,old,maybe,
"c7","c7@example.com",,,"two
lines",7,,
"""


def upload(api, text: str, filename: str = "people.csv", **kwargs):
    return api.post("/api/profiles/import", data={"file": (io.BytesIO(text.encode()), filename)},
                    content_type="multipart/form-data", **kwargs)


def test_csv_import_keeps_good_rows_and_lists_bad_ones_by_line(api, harness):
    job = ok(upload(api, MIXED_CSV), 201)
    assert (job["status"], job["filename"], job["processed_rows"], job["total_rows"]) == ("done", "people.csv", 7, 7)
    assert (job["created_rows"], job["updated_rows"], job["rejected_rows"]) == (3, 0, 4)
    assert job["rejected"] == [
        {"line": 3, "field": "email", "message": "'not-an-email' is not an email address (expected name@domain.tld)"},
        {"line": 4, "field": None, "message": "must name the customer by external_id, email or phone"},
        {"line": 5, "field": "timezone", "message": job["rejected"][2]["message"]},
        {"line": 8, "field": "age:number", "message": "'old' is not a number"},
        {"line": 8, "field": "vip:boolean", "message": "'maybe' is not true or false (true, false, yes, no, 1 or 0)"},
    ]
    assert "'Mars/Base' is not an IANA time zone" in job["rejected"][2]["message"]
    people = {p["external_id"]: p for p in ok(api.get("/api/profiles?limit=100"))["items"]}
    assert set(people) == {"c1", "c5", "c7"}
    assert people["c1"]["attributes"] == {"plan": "gold", "age": 41, "vip": True, "zip": "00123"}
    assert people["c1"]["timezone"] == "Europe/Paris"
    assert (people["c5"]["email"], people["c5"]["attributes"]) == ("c5@example.com", {"plan": "free", "age": 3.5,
                                                                                      "vip": False})
    assert people["c7"]["attributes"] == {"plan": "two\nlines", "age": 7}
    assert ok(api.get(f"/api/imports/{job['id']}")) == job

    again = ok(upload(api, "email,plan\nC1@example.com,silver\nnew@example.com,\n"), 201)
    assert (again["created_rows"], again["updated_rows"], again["rejected_rows"]) == (1, 1, 0)
    assert ok(api.get(f"/api/profiles/{people['c1']['id']}"))["attributes"]["plan"] == "silver"
    listed = ok(api.get("/api/imports"))
    assert [j["id"] for j in listed["items"]] == [again["id"], job["id"]] and listed["total"] == 2
    assert "rejected" not in listed["items"][0]


def test_import_accepts_a_csv_body_and_json_lines_and_arrays(api, harness):
    job = ok(api.post("/api/profiles/import?filename=body.csv", data="email\nx@example.com\n",
                      content_type="text/csv"), 201)
    assert (job["filename"], job["created_rows"]) == ("body.csv", 1)
    job = ok(upload(api, "\ufeffemail;score:number\ny@example.com;1,5\n", "excel.csv"), 201)  # a spreadsheet's CSV
    assert (job["created_rows"], job["rejected"]) == (0, [{"line": 2, "field": "score:number",
                                                             "message": "'1,5' is not a number"}])
    lines = '{"external_id": "j1", "attributes": {"n": 1}}\n\n[1, 2]\n{"email": "bad"}\n{not json\n'
    job = ok(upload(api, lines, "people.jsonl"), 201)
    assert (job["created_rows"], job["rejected_rows"]) == (1, 3)
    assert [(r["line"], r["field"]) for r in job["rejected"]] == [(3, None), (4, "email"), (5, None)]
    array = '[\n  {"external_id": "j2"},\n  {"external_id": "j1", "attributes": {"m": 2}},\n  {"phone": "12"}\n]\n'
    job = ok(upload(api, array, "people.json"), 201)
    assert (job["created_rows"], job["updated_rows"], job["rejected_rows"]) == (1, 1, 1)
    assert [(r["line"], r["field"]) for r in job["rejected"]] == [(4, "phone")]
    j1 = ok(api.get("/api/profiles?q=j1"))["items"][0]
    assert j1["attributes"] == {"n": 1, "m": 2}
    job = ok(upload(api, '[{"external_id": "j3"}, {"external_id"', "broken.json"), 201)
    assert (job["status"], job["created_rows"]) == ("failed", 0)
    assert "not valid JSON" in job["error"]
    assert count_profiles(harness) == 3
    assert [p["external_id"] or p["email"] for p in ok(api.get("/api/profiles"))["items"]] == ["x@example.com", "j1",
                                                                                              "j2"]


@pytest.mark.parametrize("text,filename,words", [
    ("email,plan,email\nx@example.com,a,b\n", "dup.csv", "column 3 ('email') sets the same field"),
    ("email,,plan\n", "noname.csv", "column 2 ('') has no name"),
    ("email:number\n", "typed.csv", "takes no type suffix"),
    ("", "empty.csv", "is empty"),
    ("email\n", "people.txt", "neither CSV nor JSON"),
])
def test_a_file_that_cannot_be_imported_is_refused_before_any_job(api, harness, text, filename, words):
    error = error_of(upload(api, text, filename), 400, "invalid_input")
    assert words in error["message"], error
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportJob)) == 0


def generated_csv(path: Path, rows: int, bad_every: int) -> int:
    """`rows` data rows; every `bad_every`-th has an unknown time zone. Returns how many are bad."""
    with path.open("w") as out:
        out.write("external_id,email,timezone,plan,score:number\n")
        for i in range(rows):
            zone = "Nowhere/Town" if i % bad_every == bad_every - 1 else "Europe/Berlin"
            out.write(f"x{i},x{i}@example.com,{zone},plan{i % 3},{i}\n")
    return rows // bad_every


def test_import_progress_is_visible_through_the_api_after_every_chunk(api, harness, tmp_path):
    """Deterministic: the import itself pauses after each chunk while the API is asked."""
    from engine.journeys import imports

    path = tmp_path / "steps.csv"
    generated_csv(path, 3_500, bad_every=10_000)
    job_id = imports.create_job(harness.rt.sessions, "steps.csv", 3_500)
    observed = []

    def look(_summary) -> None:
        job = ok(api.get(f"/api/imports/{job_id}"))
        observed.append((job["status"], job["processed_rows"], job["created_rows"]))

    with imports.Source(path, "csv") as source:
        imports.run(harness.rt.sessions, job_id, source, progress=look)
    assert observed == [("running", 1000, 1000), ("running", 2000, 2000), ("running", 3000, 3000),
                        ("running", 3500, 3500)]
    assert ok(api.get(f"/api/imports/{job_id}"))["status"] == "done"


def test_a_large_import_runs_in_the_background_and_reports_progress(api, harness, tmp_path):
    rows, path = 20_000, tmp_path / "big.csv"
    bad = generated_csv(path, rows, bad_every=1000)
    started = time.perf_counter()
    with path.open("rb") as file:
        response = api.post("/api/profiles/import", data={"file": (file, "big.csv")},
                            content_type="multipart/form-data")
    job = ok(response, 202)
    assert response.headers["Location"] == f"/api/imports/{job['id']}"
    assert (job["status"], job["total_rows"]) == ("running", rows)
    seen = []
    while job["status"] == "running":
        job = ok(api.get(f"/api/imports/{job['id']}"))
        seen.append(job["processed_rows"])
        assert time.perf_counter() - started < 300, job
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    database = harness.rt.engine.dialect.name
    print(f"\nimported {rows:,} rows in {elapsed:.2f}s: {rows / elapsed:,.0f} rows/s ({database})")
    assert job["status"] == "done", job
    assert (job["processed_rows"], job["total_rows"]) == (rows, rows)
    assert (job["created_rows"], job["updated_rows"], job["rejected_rows"]) == (rows - bad, 0, bad)
    assert [r["line"] for r in job["rejected"]] == [i + 2 for i in range(rows) if i % 1000 == 999]
    assert seen == sorted(seen), seen  # (how many polls land mid-import depends on the machine)
    assert all(n % 1000 == 0 for n in seen)  # progress moves a committed chunk at a time
    assert count_profiles(harness) == rows - bad
    assert ok(api.get("/api/profiles?q=x19998"))["items"][0]["attributes"] == {"plan": "plan0", "score": 19998}


def test_cli_import_profiles(harness, database_url, redis_url, tmp_path):
    path = tmp_path / "people.csv"
    bad = generated_csv(path, 2500, bad_every=500)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "CC_INSTANCE_DIR": str(tmp_path / "instance")}
    result = subprocess.run([str(SCRIPT), "import-profiles", str(path)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 1, result.stderr  # some rows were refused
    job = json.loads(result.stdout)
    assert (job["status"], job["processed_rows"], job["created_rows"], job["rejected_rows"]) == (
        "done", 2500, 2500 - bad, bad)
    progress = [line for line in result.stderr.splitlines() if " rows" in line and "created" in line]
    assert progress[0].startswith("1,000 rows (40%): ") and progress[-1].startswith("2,500 rows (100%): 2,495 created")
    assert len(progress) == 3
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(Profile)) == 2500 - bad

    clean = tmp_path / "clean.json"
    clean.write_text("\n".join(json.dumps({"email": f"x{i}@example.com", "attributes": {"vip": True}})
                               for i in range(3)) + "\n")
    result = subprocess.run([str(SCRIPT), "import-profiles", str(clean)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["updated_rows"] == 3
    missing = subprocess.run([str(SCRIPT), "import-profiles", str(tmp_path / "nope.csv")], capture_output=True,
                             text=True, timeout=300, cwd=ROOT, env=env)
    assert missing.returncode != 0 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
