"""Access control as users meet it: API keys for programs, a login for people, roles, CSRF.

Through Flask's test client (the whole app, guard included) and, for the command line,
the real console script against a real database.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from engine.core.models import ApiKey, Campaign, User
from engine.ops import auth
from tests.support import authed_client, doc
from tests.test_cli import run

DOCUMENT = doc([("all", "select_segment", {"source": "all"}), ("pts", "award_points", {"points": 1})],
               [("all", "out", "pts")], name="Points for all")


def user(harness, name: str, role: str, password: str = "correct horse") -> User:
    with harness.transaction() as s:
        return auth.create_user(s, name, password, role)


def logged_in(app, harness, role: str = "marketer"):
    """A browser-like client logged in through the login form, and its CSRF token."""
    user(harness, f"{role}-user", role)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": f"{role}-user", "password": "correct horse",
                                           "csrf_token": token, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client, client.get("/api/auth/me").get_json()["csrf_token"]


def campaigns_count(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(Campaign))


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code, body
    return body["error"]


# --------------------------------------------------------------------------- API keys


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-key", "Basic YWRtaW46YWRtaW4="])
def test_the_api_refuses_a_call_without_a_valid_key(app, harness, header):
    client = app.test_client()
    headers = {"Authorization": header} if header else {}
    error(client.get("/api/campaigns", headers=headers), 401, "unauthorized")
    error(client.post("/api/campaigns", json=DOCUMENT, headers=headers), 401, "unauthorized")
    assert campaigns_count(harness) == 0


def test_a_revoked_key_is_refused_from_then_on(app, harness, api):
    made = api.post("/api/api-keys", json={"name": "shop backend", "role": "marketer"})
    assert made.status_code == 201
    key = made.get_json()["key"]
    assert key.startswith(f"cc_{made.get_json()['prefix']}_")
    shop = app.test_client()
    shop.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert shop.post("/api/campaigns", json=DOCUMENT).status_code == 201
    listed = {k["name"]: k for k in api.get("/api/api-keys").get_json()["items"]}
    assert listed["shop backend"]["last_used_at"] is not None and "key" not in listed["shop backend"]

    assert api.delete(f"/api/api-keys/{made.get_json()['id']}").get_json()["revoked"] is True
    error(shop.get("/api/campaigns"), 401, "unauthorized")
    error(shop.post("/api/campaigns", json=DOCUMENT), 401, "unauthorized")
    assert campaigns_count(harness) == 1


def test_only_a_hash_of_a_key_is_stored(api, harness):
    key = api.post("/api/api-keys", json={"name": "ci"}).get_json()["key"]
    with harness.session() as s:
        stored = s.scalar(select(ApiKey).where(ApiKey.name == "ci"))
    assert key not in (stored.key_hash, stored.prefix) and stored.key_hash.isalnum()


def test_a_viewer_reads_but_changes_nothing(app, harness, api):
    created = api.post("/api/campaigns", json=DOCUMENT).get_json()
    viewer = authed_client(app, harness, role="viewer")
    assert viewer.get("/api/campaigns").status_code == 200
    assert viewer.get(f"/api/campaigns/{created['id']}").status_code == 200
    assert viewer.post("/api/campaigns/validate", json=DOCUMENT).status_code == 200  # changes nothing
    error(viewer.post("/api/campaigns", json=DOCUMENT), 403, "forbidden")
    error(viewer.put(f"/api/campaigns/{created['id']}", json={**DOCUMENT, "name": "Renamed"}), 403, "forbidden")
    error(viewer.post(f"/api/campaigns/{created['id']}/launch"), 403, "forbidden")
    error(viewer.post("/api/templates", json={"channel": "email", "name": "x", "content": {}}), 403, "forbidden")
    assert campaigns_count(harness) == 1
    assert api.get(f"/api/campaigns/{created['id']}").get_json()["status"] == "draft"


def test_only_admins_manage_users_and_keys(app, harness):
    marketer = authed_client(app, harness, role="marketer")
    assert marketer.post("/api/campaigns", json=DOCUMENT).status_code == 201
    error(marketer.get("/api/users"), 403, "forbidden")
    error(marketer.post("/api/api-keys", json={"name": "mine", "role": "admin"}), 403, "forbidden")
    error(marketer.post("/api/users", json={"username": "eve", "password": "12345678", "role": "admin"}),
          403, "forbidden")
    with harness.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


def test_admins_create_users_and_bad_fields_are_named(api):
    assert api.post("/api/users", json={"username": "ann", "password": "long enough", "role": "viewer"}
                    ).status_code == 201
    for body, pointer in [({"username": "bob", "password": "short"}, "/password"),
                          ({"username": "b b", "password": "long enough"}, "/username"),
                          ({"username": "bob", "password": "long enough", "role": "root"}, "/role")]:
        assert error(api.post("/api/users", json=body), 400, "invalid_input")["details"][0]["pointer"] == pointer
    error(api.post("/api/users", json={"username": "ann", "password": "long enough"}), 409, "name_taken")
    assert [u["username"] for u in api.get("/api/users").get_json()["items"]] == ["ann"]


# --------------------------------------------------------------------------- browser login


def test_the_ui_asks_for_a_login_first(app):
    client = app.test_client()
    response = client.get("/campaigns/7")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/campaigns/7")
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)


def test_login_with_a_wrong_password_fails_and_says_so(app, harness):
    user(harness, "ann", "marketer")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": "ann", "password": "wrong horse", "csrf_token": token})
    assert response.status_code == 401 and "wrong username or password" in response.get_data(as_text=True)
    error(client.get("/api/campaigns"), 401, "unauthorized")


def test_a_logged_in_marketer_changes_things_only_with_the_csrf_token(app, harness):
    client, token = logged_in(app, harness, "marketer")
    assert client.get("/api/campaigns").status_code == 200
    error(client.post("/api/campaigns", json=DOCUMENT), 403, "forbidden")
    error(client.post("/api/campaigns", json=DOCUMENT, headers={"X-CSRF-Token": "guess"}), 403, "forbidden")
    assert campaigns_count(harness) == 0
    assert client.post("/api/campaigns", json=DOCUMENT, headers={"X-CSRF-Token": token}).status_code == 201
    assert campaigns_count(harness) == 1


def test_a_logged_in_viewer_cannot_change_anything(app, harness):
    client, token = logged_in(app, harness, "viewer")
    assert client.get("/api/campaigns").status_code == 200
    error(client.post("/api/campaigns", json=DOCUMENT, headers={"X-CSRF-Token": token}), 403, "forbidden")
    assert campaigns_count(harness) == 0


def test_logging_out_and_disabling_end_the_session(app, harness, api):
    client, token = logged_in(app, harness, "marketer")
    ann = api.get("/api/users").get_json()["items"][0]
    assert api.patch(f"/api/users/{ann['id']}", json={"disabled": True}).get_json()["disabled"] is True
    error(client.get("/api/campaigns"), 401, "unauthorized")
    api.patch(f"/api/users/{ann['id']}", json={"disabled": False})
    assert client.get("/api/campaigns").status_code == 200
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": token}).status_code == 200
    error(client.get("/api/campaigns"), 401, "unauthorized")


def test_json_login_for_the_canvas_app(app, harness):
    user(harness, "ann", "admin")
    client = app.test_client()
    error(client.post("/api/auth/login", json={"username": "ann", "password": "nope nope"}), 401, "unauthorized")
    answer = client.post("/api/auth/login", json={"username": "ann", "password": "correct horse"}).get_json()
    assert answer["user"]["role"] == "admin" and answer["csrf_token"]
    me = client.get("/api/auth/me").get_json()
    assert (me["kind"], me["name"], me["csrf_token"]) == ("user", "ann", answer["csrf_token"])


def test_the_login_page_escapes_what_it_echoes_and_never_redirects_off_site(app, harness):
    user(harness, "ann", "marketer")
    client = app.test_client()
    page = client.get('/login?next=/x"><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    for target in ("//evil.example/", "https://evil.example/", "javascript:alert(1)"):
        page = client.get("/login").get_data(as_text=True)  # a login starts a new session and token
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"username": "ann", "password": "correct horse", "csrf_token": token,
                                               "next": target})
        assert response.headers["Location"] == "/", target


def test_the_login_form_itself_needs_the_csrf_token(app, harness):
    user(harness, "ann", "marketer")
    response = app.test_client().post("/login", data={"username": "ann", "password": "correct horse"})
    assert response.status_code == 403


def test_live_statistics_need_a_login_or_a_key(harness):
    from flask_socketio import SocketIOTestClient

    from server import create_app

    app, socketio = create_app(harness.rt, message_queue=False)  # the test client refuses a queue
    anonymous = SocketIOTestClient(app, socketio)
    assert not anonymous.is_connected()
    with harness.transaction() as s:
        _row, key = auth.create_api_key(s, "dashboard", "viewer")
    keyed = SocketIOTestClient(app, socketio, auth={"token": key})
    assert keyed.is_connected()
    keyed.disconnect()
    client, _token = logged_in(app, harness, "viewer")
    browser = SocketIOTestClient(app, socketio, flask_test_client=client)
    assert browser.is_connected()
    browser.disconnect()


# --------------------------------------------------------------------------- command line


def test_cli_creates_users_and_keys_that_work(app, harness, database_url, tmp_path):
    env = {"DATABASE_URL": database_url, "CC_INSTANCE_DIR": str(tmp_path), "CC_PASSWORD": "from the env"}
    made = run("create-user", "carol", "--role", "admin", env=env)
    assert made.returncode == 0 and "created admin carol" in made.stdout, made.stderr
    duplicate = run("create-user", "carol", env=env)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    keyed = run("create-api-key", "importer", "--role", "marketer", env=env)
    assert keyed.returncode == 0, keyed.stderr
    key = keyed.stdout.strip().splitlines()[-1]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    assert client.post("/api/campaigns", json=DOCUMENT).status_code == 201
    answer = client.post("/api/auth/login", json={"username": "carol", "password": "from the env"})
    assert answer.status_code == 200
