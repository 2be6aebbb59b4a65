"""Templates: merge tags rendered in a Jinja2 sandbox, and the templates API.

What a sender relies on: every merge tag reaches its field, a missing value renders its
declared default (or "") and never fails a send, HTML is escaped where it must be, and a
hostile template can neither reach Python internals or files nor hang or flood a worker:
each attempt is a TemplateError naming the field, raised within the time cap. The API
stores only valid templates and previews them with a stored customer's data.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from engine.core import templates
from engine.core.errors import InvalidInput, TemplateError
from engine.core.models import Template
from engine.core.templates import Renderer, compiling, context_for, merge_tags, validate_content
from tests.support import add_profiles, error_of

ALICE = {"external_id": "u-1", "email": "alice@example.com", "phone": "+15550001", "timezone": "Europe/Paris",
         "points": 120, "attributes": {"first_name": "Alice", "plan": "gold", "tags": ["vip", "early"],
                                       "items": "not the dict method"}}
ORDER = {"name": "order_placed", "properties": {"order_id": "A-7", "total": 19.5,
                                                "lines": [{"sku": "tea", "qty": 2}, {"sku": "cup", "qty": 1}]}}
CAMPAIGN = {"id": 7, "name": "Thank you"}


def rendered(content: dict, profile=None, event=None, campaign=None, defaults=None) -> dict:
    return Renderer(content, defaults).render(context_for(profile or {}, event, campaign))


def one(source: str, field: str = "text", **kwargs) -> str:
    return rendered({field: source}, **kwargs)[field]


# --------------------------------------------------------------------------- merge tags


def test_merge_tags_reach_every_field_from_profile_event_and_campaign():
    content = {
        "subject": "{{ profile.attributes.first_name }}, your {{ event.properties.order_id }}",
        "preheader": "{{ campaign.name }} (#{{ campaign.id }})",
        "html": "<p>{{ profile.email }} {{ profile.points }} points</p>"
                "{% for line in event.properties.lines %}<li>{{ loop.index }}. {{ line.sku }} x{{ line.qty }}</li>"
                "{% endfor %}",
        "text": "{{ profile.external_id }} {{ profile.phone }} {{ profile.timezone }} {{ event.name }} "
                "{{ '%.2f'|format(event.properties.total) }} {{ profile.attributes.tags|join(', ')|upper }}",
    }
    out = rendered(content, ALICE, ORDER, CAMPAIGN)
    assert out == {
        "subject": "Alice, your A-7",
        "preheader": "Thank you (#7)",
        "html": "<p>alice@example.com 120 points</p><li>1. tea x2</li><li>2. cup x1</li>",
        "text": "u-1 +15550001 Europe/Paris order_placed 19.50 VIP, EARLY",
    }


def test_attribute_names_are_data_not_methods():
    # `items` is a dict method in Python; in a template it is the customer's attribute
    assert one("{{ profile.attributes.items }}", profile=ALICE) == "not the dict method"
    assert one("{{ profile.attributes['first_name'] }}", profile=ALICE) == "Alice"
    assert one("{{ profile.attributes.tags.1 }}", profile=ALICE) == "early"


def test_context_for_takes_rows_and_the_enrollment_trigger_shape():
    row = SimpleNamespace(**ALICE, id=1, push_tokens=["secret-token"])
    context = context_for(row, {"event": "signup", "properties": {"source": "ad"}}, CAMPAIGN)
    assert context == {
        "profile": {"external_id": "u-1", "email": "alice@example.com", "phone": "+15550001",
                    "timezone": "Europe/Paris", "points": 120, "attributes": ALICE["attributes"]},
        "event": {"name": "signup", "properties": {"source": "ad"}},
        "campaign": {"id": 7, "name": "Thank you"},
    }
    assert context_for({}, None, None) == {"profile": {**dict.fromkeys(templates.PROFILE_FIELDS), "attributes": {}},
                                           "event": {}, "campaign": {}}


def test_jinja_statements_and_safe_filters_work():
    source = ("{% set total = event.properties.lines|sum(attribute='qty') %}{{ total }} items"
              "{% if profile.points >= 100 %}, gold{% else %}, basic{% endif %}"
              "{% for group in event.properties.lines|groupby('qty') %} [{{ group.grouper }}:"
              "{{ group.list|map(attribute='sku')|join('+') }}]{% endfor %}"
              "{% macro hi(name) %}Hi {{ name|title }}{% endmacro %} {{ hi(profile.attributes.first_name) }}")
    assert one(source, profile=ALICE, event=ORDER) == "3 items, gold [1:cup] [2:tea] Hi Alice"


# --------------------------------------------------------------------------- missing values


def test_declared_defaults_fill_absent_null_and_empty_values():
    defaults = {"profile.attributes.first_name": "there", "profile.phone": "no phone",
                "event.properties.coupon": "WELCOME", "campaign.name": "our campaign"}
    content = {"text": "Hi {{ profile.attributes.first_name }} / {{ profile.phone }} / "
                       "{{ event.properties.coupon }} / {{ campaign.name }}"}
    assert rendered(content, {}, None, None, defaults)["text"] == "Hi there / no phone / WELCOME / our campaign"
    blank = {"phone": None, "attributes": {"first_name": ""}}
    assert rendered(content, blank, None, None, defaults)["text"] == "Hi there / no phone / WELCOME / our campaign"
    # a present value wins over the default
    assert rendered(content, ALICE, ORDER, CAMPAIGN, defaults)["text"] == \
        "Hi Alice / +15550001 / WELCOME / Thank you"


def test_inline_default_filter_and_blank_without_any_default():
    assert one("Hi {{ profile.attributes.first_name | default('there') }}!") == "Hi there!"
    assert one("Hi {{ profile.phone | default('you') }}!", profile={"phone": None}) == "Hi you!"
    assert one("Hi {{ profile.attributes.first_name | d('there') }}!", profile=ALICE) == "Hi Alice!"
    assert one("[{{ profile.attributes.first_name }}][{{ profile.phone }}]") == "[][]"  # never "None"
    # the declared default wins over the inline one: it is filled in before rendering
    assert one("{{ profile.attributes.first_name | default('x') }}",
               defaults={"profile.attributes.first_name": "declared"}) == "declared"


def test_missing_values_never_fail_a_render():
    source = ("[{{ event.properties.a.b.c }}][{{ event.properties.total * 2 + 1 }}]"
              "[{% if event.properties.total > 10 %}big{% else %}small{% endif %}]"
              "[{% for x in event.properties.lines %}{{ x }}{% endfor %}]"
              "[{{ event.properties.count|int + 1 }}][{{ profile.attributes.missing_fn() }}]"
              "[{{ campaign.name|upper }}][{{ profile.attributes.tags|length }}]")
    assert one(source) == "[][][small][][1][][][0]"


# --------------------------------------------------------------------------- escaping


def test_html_is_autoescaped_and_plain_text_fields_are_not():
    hostile = {"attributes": {"first_name": "<script>alert(1)</script>"}}
    content = {"subject": "Hi {{ profile.attributes.first_name }}",
               "html": "<p>Hi {{ profile.attributes.first_name }} {{ 'a' ~ profile.attributes.first_name }}</p>",
               "text": "Hi {{ profile.attributes.first_name }}"}
    out = rendered(content, hostile)
    assert out["html"] == ("<p>Hi &lt;script&gt;alert(1)&lt;/script&gt; "
                           "a&lt;script&gt;alert(1)&lt;/script&gt;</p>")
    assert out["subject"] == "Hi <script>alert(1)</script>"
    assert out["text"] == "Hi <script>alert(1)</script>"
    assert rendered({"body": "{{ profile.attributes.first_name }}"}, hostile)["body"] == "<script>alert(1)</script>"
    # declared defaults are data too: escaped in html
    assert rendered({"html": "{{ profile.attributes.nick }}"}, {}, defaults={
        "profile.attributes.nick": "<b>"})["html"] == "&lt;b&gt;"


def test_push_data_and_web_api_bodies_keep_their_shape():
    push = {"title": "{{ campaign.name }}", "body": "Hi {{ profile.attributes.first_name }}",
            "image": "https://cdn.example.com/{{ profile.attributes.plan }}.png",
            "data": {"deep_link": "app://orders/{{ event.properties.order_id }}", "kind": "order"}}
    assert rendered(push, ALICE, ORDER, CAMPAIGN) == {
        "title": "Thank you", "body": "Hi Alice", "image": "https://cdn.example.com/gold.png",
        "data": {"deep_link": "app://orders/A-7", "kind": "order"}}
    webapi = {"body": {"user": "{{ profile.external_id }}", "points": 5, "vip": True, "note": None,
                       "lines": ["{{ event.properties.lines.0.sku }}", {"nested": "<{{ profile.email }}>"}]}}
    assert rendered(webapi, ALICE, ORDER) == {"body": {"user": "u-1", "points": 5, "vip": True, "note": None,
                                                       "lines": ["tea", {"nested": "<alice@example.com>"}]}}


# --------------------------------------------------------------------------- the sandbox

SLOW = "{% set big = ('x' * 200000)|list %}{% for i in big %}{{ big|sort|length }}{% endfor %}"

#: the time limit's message: heavy attacks may meet it before their own limit on a slow CPU
TOO_SLOW = "rendering took longer than 1 s"
ATTACKS = [
    # (template, what the message names)
    ("{{ ''.__class__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__'"),
    ("{{ profile.email.__class__.__subclasses__() }}", "'__class__'"),
    ("{{ profile['__cla' ~ 'ss__'] }}", "access to attribute '__class__' of 'dict' object is unsafe"),
    ("{{ profile|attr('__class__') }}", "'__class__'"),
    ("{{ cycler.__init__.__globals__ }}", "'__init__'"),
    ("{{ (profile|attr('__init__'))|attr('__globals__') }}", "'__init__'"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "'__globals__'"),
    ("{{ os.popen('id').read() }}", "unknown merge tag 'os'"),
    ("{{ open('/etc/passwd').read() }}", "unknown merge tag 'open'"),
    ("{{ config.items() }}", "unknown merge tag 'config'"),
    ("{{ request.environ }}", "unknown merge tag 'request'"),
    ("{{ self }}", "'self' is not available"),
    ("{{ self._TemplateReference__context }}", "'self' is not available"),
    ("{{ range(100000000)|list }}", "unknown merge tag 'range'"),
    ("{{ namespace(a=1) }}", "unknown merge tag 'namespace'"),
    ("{{ profile.email.upper() }}", "access to attribute 'upper' of 'str' object is unsafe"),
    ("{{ profile.attributes.tags.append('x') }}", "access to attribute 'append' of 'list' object is unsafe"),
    ("{{ '{0.__class__}'.format(profile) }}", "'format' of 'str'"),
    ("{% include '/etc/passwd' %}", "{% include %} is not allowed"),
    ("{% import '/etc/passwd' as secrets %}", "{% import %} is not allowed"),
    ("{% from '/etc/passwd' import root %}", "{% from ... import %} is not allowed"),
    ("{% extends '/etc/passwd' %}", "{% extends %} is not allowed"),
    ("{{ profile.email|nosuchfilter }}", "no filter named 'nosuchfilter'"),
    ("{% for i in 'x' * 400000 %}{% endfor %}", "more than 10000 loop iterations"),
    ("{% for i in ('x' * 400000)|list %}{{ i }}{% endfor %}", "more than 10000 loop iterations"),
    ("{% set l = 'x' * 90 %}{% for a in l %}{% for b in l %}{{ 'y' * 100 }}{% endfor %}{% endfor %}",
     "output longer than 500000 characters"),
    ("{% set l = 'x' * 90 %}{% macro m() %}{% for a in l %}{% for b in l %}{{ 'y' * 400 }}{% endfor %}"
     "{% endfor %}{% endmacro %}{% set discard = m() %}", "rendering built more than 5000000 characters"),
    ("{{ 'x' * 100000000 }}", "output longer than 500000 characters"),
    ("{{ 'x'|center(100000000) }}", "output longer than 500000 characters"),
    ("{% set s = 'x' * 100000 %}{{ s|list|join(s) }}", "output longer than 500000 characters"),
    ("{{ ('x' * 100000)|replace('', 'yyyyyyyyyy') }}", "output longer than 500000 characters"),
    ("{{ '%0999999999d'|format(1) }}", "format widths above 200"),
    ("{{ '%0999999999d' % 1 }}", "format widths above 200"),
    ("{{ 10 ** 100000 }}", "number too large"),
    ("{{ (9 ** 99) ** 99 }}", "number too large"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursion"),
    ("{% macro f(n) %}{% if n < 60 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
     "more than 10000 loop iterations and macro calls"),
    ("{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}"
     "{{ f('a', 60) }}", ("output longer than 500000 characters", TOO_SLOW)),
    ("{% for x in profile.attributes.tags recursive %}{{ loop([x, x]) }}{% endfor %}", "recursion"),
    ("{% set a = ['x' * 1000] %}" + "{% set a = [a, a] %}" * 40 + "{{ a }}",
     "a list or object larger than 5000000 characters"),
    ("{% set a = {'k': 'x' * 1000} %}" + "{% set a = {'l': a, 'r': a} %}" * 40 + "{{ a == a }}",
     "a list or object larger than 5000000 characters"),
    ("{% set a = ['x' * 1000] %}{{ [a] * 10000 }}", "a list or object larger than 5000000 characters"),
    ("{{ ('x' * 400000)|list|batch(1)|sum(start=[]) }}", ("rendering built more than 5000000 characters", TOO_SLOW)),
    ("{% set l = ('x' * 400000)|list %}{% for i in l %}{% set copy = l|list %}{% endfor %}",
     ("rendering built more than 5000000 characters", TOO_SLOW)),
    ("{% set l = ('x' * 400000)|list %}{% for b in [1]|batch(10000, l) %}{{ b }}{% endfor %}",
     "a list or object larger than 5000000 characters"),
    ("{% set l = ('x' * 400000)|list %}{% macro m() %}{{ varargs|length }}{% endmacro %}"
     "{{ m(l, l, l, l, l, l, l, l, l, l, l, l, l) }}", "a list or object larger than 5000000 characters"),
    ("{{ 5|round(-1000000000, 'floor') }}", "round precision must be between -20 and 20"),
    ("{{ event.properties.lines|map(attribute='__class__')|list }}", "'__class__' of 'dict' object is unsafe"),
    ("{{ event.properties.lines|sort(attribute='__globals__') }}", "'__globals__' of 'dict' object is unsafe"),
    (SLOW, "rendering took longer than 1 s"),
]


@pytest.mark.parametrize("source, fragment", ATTACKS, ids=[a[0][:60] for a in ATTACKS])
@pytest.mark.parametrize("field", ["html", "subject"])
def test_sandbox_refuses_with_a_clear_error_naming_the_field_and_never_hangs(source, fragment, field):
    started = time.thread_time()  # the render's own CPU time: what a loaded machine does not change
    with pytest.raises(TemplateError) as caught:
        rendered({field: source}, ALICE, ORDER, CAMPAIGN)
    assert time.thread_time() - started < 2
    error = caught.value
    assert error.status == 422 and error.code == "invalid_template"
    assert error.message.startswith(f"{field}: "), error.message
    # an attack that is both heavy and slow may meet either limit first, by the CPU's speed
    assert any(f in error.message for f in ((fragment,) if isinstance(fragment, str) else fragment)), error.message
    assert error.details[0]["pointer"] == f"/content/{field}" and error.details[0]["field"] == field


def test_errors_carry_the_line_at_save_time_and_at_render_time():
    with pytest.raises(TemplateError) as caught:
        Renderer({"subject": "ok", "html": "<p>\n\n{{ profile.email }\n</p>", "text": "{% if %}"})
    problems = {(p["field"], p["line"], p["code"]) for p in caught.value.details}
    assert problems == {("html", 3, "syntax_error"), ("text", 1, "syntax_error")}
    assert caught.value.message.startswith("html: ") and "(line 3)" in caught.value.message

    renderer = Renderer({"html": "a\nb\n{{ profile['__cl' ~ 'ass__'] }}"})  # only found when it runs
    with pytest.raises(TemplateError) as caught:
        renderer.render(context_for(ALICE))
    assert caught.value.details[0]["line"] == 3
    assert caught.value.message == "html: access to attribute '__class__' of 'dict' object is unsafe (line 3)"


def test_the_context_is_plain_data_whatever_the_caller_passes():
    class Sneaky(dict):
        def steal(self):  # pragma: no cover - must never run
            raise AssertionError("called")

    context = context_for({"attributes": Sneaky(first_name="Bob")})
    assert type(context["profile"]["attributes"]) is dict
    # a key lookup finds no `steal` key: blank, the method is never reached
    renderer = Renderer({"text": "[{{ profile.attributes.steal() }}]"})
    assert renderer.render({"profile": {"attributes": Sneaky(first_name="Bob")}}) == {"text": "[]"}


def test_a_renderer_compiles_each_field_once(monkeypatch):
    compiling._compile.cache_clear()
    built: list[str] = []
    real = compiling._build
    monkeypatch.setattr(compiling, "_build", lambda source, *args: built.append(args[1]) or real(source, *args))
    content = {"subject": "Hi {{ profile.attributes.first_name }}", "preheader": "plain text, nothing to compile",
               "html": "<p>{{ profile.email }}</p>", "text": "{{ profile.email }}"}
    renderer = Renderer(content)
    assert sorted(built) == ["html", "subject", "text"]
    outputs = [renderer.render(context_for({"email": f"p{i}@example.com"})) for i in range(1000)]
    assert outputs[999]["html"] == "<p>p999@example.com</p>"
    Renderer(dict(content)).render(context_for(ALICE))  # another renderer of the same content
    assert sorted(built) == ["html", "subject", "text"]


# --------------------------------------------------------------------------- validation and tags


@pytest.mark.parametrize("channel, content, pointer", [
    ("email", {"html": "<p>hi</p>"}, "/content/subject"),
    ("email", {"subject": "  ", "html": "<p>hi</p>"}, "/content/subject"),
    ("email", {"subject": "Hi"}, "/content/html"),
    ("email", {"subject": "Hi", "html": 5}, "/content/html"),
    ("email", {"subject": "Hi", "text": "x", "body": "x"}, "/content/body"),
    ("sms", {"text": "hi"}, "/content/text"),
    ("sms", {}, "/content/body"),
    ("push", {"image": "https://x/y.png"}, "/content/title"),
    ("push", {"title": "t", "data": {"n": 1}}, "/content/data/n"),
    ("push", {"title": "t", "data": ["x"]}, "/content/data"),
    ("webapi", {}, "/content/body"),
    ("fax", {"body": "x"}, "/channel"),
    ("email", ["subject"], "/content"),
])
def test_validate_content_names_the_bad_field(channel, content, pointer):
    with pytest.raises(InvalidInput) as caught:
        validate_content(channel, content)
    assert caught.value.details[0]["pointer"] == pointer


def test_validate_content_accepts_each_channel():
    validate_content("email", {"subject": "Hi {{ profile.attributes.first_name }}", "text": "x"})
    validate_content("sms", {"body": "Your code {{ event.properties.code }}"})
    validate_content("push", {"body": "b", "data": {"k": "{{ campaign.id }}"}})
    validate_content("webapi", {"body": {"list": [1, "{{ profile.email }}"]}})
    with pytest.raises(TemplateError, match=r"^body: unknown merge tag 'profle'"):
        validate_content("sms", {"body": "{{ profle.email }}"})


def test_merge_tags_offer_fixed_fields_and_known_attributes():
    tags = merge_tags("email", ["first_name", "favourite colour", "_internal", "first_name"])
    by_path = {t["path"]: t for t in tags}
    assert {"profile.email", "profile.phone", "profile.points", "event.name", "campaign.name"} <= set(by_path)
    assert by_path["profile.attributes.first_name"]["tag"] == "{{ profile.attributes.first_name }}"
    assert by_path['profile.attributes["favourite colour"]']["label"] == "favourite colour"
    assert not any("_internal" in t["path"] for t in tags)
    assert all(set(t) == {"label", "tag", "path", "group"} for t in tags)
    for tag in tags:  # every offered tag is a valid template
        validate_content("sms", {"body": tag["tag"]})
    with pytest.raises(InvalidInput):
        merge_tags("fax")


# --------------------------------------------------------------------------- the API


@pytest.fixture
def client(api):
    return api


def welcome(**changes) -> dict:
    return {"channel": "email", "name": "Welcome",
            "content": {"subject": "Welcome {{ profile.attributes.first_name }}",
                        "html": "<h1>Hi {{ profile.attributes.first_name }}</h1>{{ event.properties.coupon }}",
                        "text": "Hi {{ profile.attributes.first_name }}"},
            "defaults": {"profile.attributes.first_name": "there"}, **changes}


def stored(harness) -> int:
    with harness.session() as s:
        return s.scalar(select(func.count()).select_from(Template))




def create(client, data) -> dict:
    response = client.post("/api/templates", json=data)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_create_get_list_edit_and_delete(client, harness):
    created = create(client, welcome())
    assert created["channel"] == "email" and created["name"] == "Welcome"
    assert created["defaults"] == {"profile.attributes.first_name": "there"} and created["created_at"].endswith("Z")
    sms = create(client, {"channel": "sms", "name": "Code", "content": {"body": "{{ event.properties.code }}"}})
    assert sms["defaults"] == {}

    assert client.get(f"/api/templates/{created['id']}").get_json() == created
    assert [t["name"] for t in client.get("/api/templates").get_json()["items"]] == ["Welcome", "Code"]
    assert [t["id"] for t in client.get("/api/templates?channel=sms").get_json()["items"]] == [sms["id"]]
    assert client.get("/api/templates?channel=push").get_json()["items"] == []
    error_of(client.get("/api/templates?channel=fax"), 400, "invalid_input")

    edited = {**created, "name": "Welcome v2", "content": {**created["content"], "subject": "Hello"}}
    response = client.put(f"/api/templates/{created['id']}", json=edited)  # a GET body sent back works
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["name"] == "Welcome v2" and response.get_json()["content"]["subject"] == "Hello"
    partial = client.put(f"/api/templates/{created['id']}", json={"defaults": {}})  # omitted fields are kept
    assert partial.get_json()["name"] == "Welcome v2" and partial.get_json()["defaults"] == {}

    assert client.delete(f"/api/templates/{created['id']}").status_code == 200
    error_of(client.get(f"/api/templates/{created['id']}"), 404, "not_found")
    error_of(client.delete(f"/api/templates/{created['id']}"), 404, "not_found")
    assert stored(harness) == 1


def _with_content(**content):
    return welcome(content={**welcome()["content"], **content})


BAD_TEMPLATES = [
    # (body, status, code, pointer, line)
    (_with_content(html="<p>\n{% for x in profile.attributes.tags %}\n{{ x }\n{% endfor %}"), 422,
     "invalid_template", "/content/html", 3),
    (_with_content(subject="{{ ''.__class__.__mro__ }}"), 422, "invalid_template", "/content/subject", 1),
    (_with_content(text="{% include '/etc/passwd' %}"), 422, "invalid_template", "/content/text", 1),
    (_with_content(subject=""), 400, "invalid_input", "/content/subject", None),
    (welcome(channel="fax"), 400, "invalid_input", "/channel", None),
    (welcome(name=""), 400, "invalid_input", "/name", None),
    (welcome(defaults={"first_name": "x"}), 400, "invalid_input", "/defaults/first_name", None),
    (welcome(defaults={"profile.attributes.first_name": ["x"]}), 400, "invalid_input",
     "/defaults/profile.attributes.first_name", None),
    (welcome(colour="blue"), 400, "invalid_input", "/colour", None),
    (["not", "an", "object"], 400, "invalid_input", "", None),
]


@pytest.mark.parametrize("data, status, code, pointer, line", BAD_TEMPLATES,
                         ids=["syntax", "unsafe", "include", "no-subject", "channel", "name", "default-path",
                              "default-value", "unknown-field", "array"])
def test_bad_template_is_rejected_naming_the_field_and_stores_nothing(client, harness, data, status, code,
                                                                     pointer, line):
    error = error_of(client.post("/api/templates", json=data), status, code)
    assert error["details"][0]["pointer"] == pointer
    if line is not None:
        assert error["details"][0]["line"] == line and f"(line {line})" in error["message"]
    assert stored(harness) == 0


def test_bad_edit_keeps_the_stored_template(client, harness):
    created = create(client, welcome())
    response = client.put(f"/api/templates/{created['id']}", json={"content": {"subject": "{{ broken", "text": "x"}})
    error = error_of(response, 422, "invalid_template")
    assert error["details"][0]["pointer"] == "/content/subject" and error["details"][0]["line"] == 1
    assert client.get(f"/api/templates/{created['id']}").get_json() == created
    error_of(client.put("/api/templates/999", json=welcome()), 404, "not_found")


def test_names_are_unique_per_channel(client, harness):
    create(client, welcome())
    error = error_of(client.post("/api/templates", json=welcome()), 409, "name_taken")
    assert error["details"][0]["pointer"] == "/name"
    create(client, {"channel": "sms", "name": "Welcome", "content": {"body": "hi"}})  # another channel: fine
    other = create(client, welcome(name="Other"))
    error_of(client.put(f"/api/templates/{other['id']}", json={"name": "Welcome"}), 409, "name_taken")
    assert stored(harness) == 3


def test_preview_with_a_stored_profile_and_an_event(client, harness):
    with harness.transaction() as s:
        alice, nameless = add_profiles(s, 2, attributes=lambda i: {"first_name": "<Alice>"} if i == 0 else {})
    template = create(client, welcome())
    url = f"/api/templates/{template['id']}/preview"

    response = client.post(url, json={"profile_id": alice, "event": {"name": "signup",
                                                                      "properties": {"coupon": "WELCOME10"}}})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"channel": "email", "content": {
        "subject": "Welcome <Alice>", "html": "<h1>Hi &lt;Alice&gt;</h1>WELCOME10", "text": "Hi <Alice>"}}

    content = client.post(url, json={"profile_id": nameless}).get_json()["content"]
    assert content["subject"] == "Welcome there" and content["html"] == "<h1>Hi there</h1>"
    inline = client.post(url, json={"profile": {"attributes": {"first_name": "Zoe"}}}).get_json()["content"]
    assert inline["text"] == "Hi Zoe"

    error_of(client.post(url, json={"profile_id": 4242}), 404, "not_found")
    error_of(client.post(url, json={"profile_id": "1"}), 400, "invalid_input")
    error_of(client.post(url, json={"profile": "alice"}), 400, "invalid_input")
    error_of(client.post("/api/templates/4242/preview", json={}), 404, "not_found")


def test_preview_of_unsaved_content_stores_nothing(client, harness):
    response = client.post("/api/templates/preview", json={
        "channel": "sms", "content": {"body": "{{ profile.attributes.first_name|default('friend') }}: "
                                              "{{ event.properties.code }}"},
        "profile": {"attributes": {}}, "event": {"name": "otp", "properties": {"code": "1234"}}})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["content"] == {"body": "friend: 1234"}

    error = error_of(client.post("/api/templates/preview", json={
        "channel": "sms", "content": {"body": "line one\n{{ profile['__cl' ~ 'ass__'] }}"}}), 422, "invalid_template")
    assert error["details"][0] == {"pointer": "/content/body", "field": "body", "code": "unsafe", "line": 2,
                                   "message": "access to attribute '__class__' of 'dict' object is unsafe"}
    error_of(client.post("/api/templates/preview", json={"channel": "sms", "content": {"body": "{% for %}"}}),
             422, "invalid_template")
    assert stored(harness) == 0


def test_merge_tags_endpoint_offers_attribute_names_found_on_profiles(client, harness):
    with harness.transaction() as s:
        add_profiles(s, 3, attributes=lambda i: {"first_name": "A", f"field_{i}": 1})
    response = client.get("/api/merge-tags?channel=sms")
    assert response.status_code == 200
    paths = {t["path"] for t in response.get_json()["items"]}
    assert {"profile.email", "profile.attributes.first_name", "profile.attributes.field_0",
            "profile.attributes.field_2"} <= paths
    error_of(client.get("/api/merge-tags?channel=fax"), 400, "invalid_input")
