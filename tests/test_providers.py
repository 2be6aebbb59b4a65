"""Each provider kind against its real stand-in server on 127.0.0.1: what arrives, how errors
map to final or transient results, crash recovery (`accepted`), and that secrets never leak
into reprs, results or logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator

from engine.messaging import outbox_refs
from engine.messaging.channels import (
    OutgoingMessage,
    SendResult,
    TransientError,
    provider_kinds,
)
from engine.messaging.channels.push import UNREGISTERED, FCMPush
from engine.messaging.channels.sendgrid import HTML_TAG, TEXT_TAG, SendGridEmail
from engine.messaging.channels.sms import TwilioSMS
from engine.messaging.channels.smtp import SMTPEmail
from engine.messaging.channels.webapi import WebhookCall
from tests.standins import (
    FCMStandIn,
    SendGridStandIn,
    SMTPStandIn,
    TwilioStandIn,
    WebhookStandIn,
    free_port,
)


def emails(count: int, start: int = 1, **content: str) -> list[OutgoingMessage]:
    return [OutgoingMessage(outbox_id=i, profile_id=i, to=f"user{i}@example.com", category="welcome",
                            content={"subject": f"Hello {i}", "preheader": f"Preview {i}",
                                     "html": f"<html><body><p>Hi user {i}</p></body></html>",
                                     "text": f"Hi user {i}", **content})
            for i in range(start, start + count)]


def by_id(results: list[SendResult]) -> dict[int, SendResult]:
    assert len({r.outbox_id for r in results}) == len(results)
    return {r.outbox_id: r for r in results}


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ---------------------------------------------------------------------------------------------
# registry and schemas


def test_kinds_register_with_form_ready_schemas() -> None:
    expected = {"sendgrid": ("email", SendGridEmail), "smtp": ("email", SMTPEmail), "twilio": ("sms", TwilioSMS),
                "fcm": ("push", FCMPush), "webhook": ("webapi", WebhookCall)}
    for kind, (channel, cls) in expected.items():
        assert provider_kinds.get(kind) is cls
        assert cls.channel == channel and cls.label
        for schema in (cls.settings_schema, cls.secrets_schema):
            Draft202012Validator.check_schema(schema)
            assert schema.get("title")
            assert all(prop.get("title") for prop in schema["properties"].values()), (kind, schema)
        assert not set(cls.settings_schema["properties"]) & set(cls.secrets_schema["properties"])
    assert SendGridEmail.max_batch == 1000 and SMTPEmail.max_batch == 100


def test_accepted_is_unknown_where_the_provider_cannot_tell() -> None:
    for cls in (SMTPEmail, TwilioSMS, FCMPush, WebhookCall):
        assert cls({}, {}).accepted("any") is None


# ---------------------------------------------------------------------------------------------
# SendGrid


@pytest.fixture
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


def sg_provider(standin: SendGridStandIn, **settings: str) -> SendGridEmail:
    return SendGridEmail(standin.settings(**settings), standin.secrets())


def test_sendgrid_one_request_carries_every_recipients_own_content(sendgrid: SendGridStandIn) -> None:
    results = sg_provider(sendgrid, reply_to="help@example.com").send(emails(3), "batch-1")

    assert all(r.ok for r in results) and sorted(by_id(results)) == [1, 2, 3]
    assert len(sendgrid.mail_requests) == 1 and sendgrid.batch_sizes == [3]
    body = sendgrid.mail_requests[0].json()
    assert body["content"] == [{"type": "text/plain", "value": TEXT_TAG}, {"type": "text/html", "value": HTML_TAG}]
    assert body["categories"] == ["welcome"]
    assert body["from"] == {"email": "news@example.com", "name": "Campaign Canvas"}

    deliveries = {d["to"]: d for d in sendgrid.deliveries}
    assert sorted(deliveries) == ["user1@example.com", "user2@example.com", "user3@example.com"]
    two = deliveries["user2@example.com"]
    assert two["subject"] == "Hello 2"
    assert two["text"] == "Hi user 2"
    assert two["html"].startswith("<html><body><span style=\"display:none")
    assert "Preview 2</span><p>Hi user 2</p>" in two["html"]
    assert two["custom_args"] == {"cc_outbox_id": "2", "cc_sig": outbox_refs.sign(2, outbox_refs.key()),
                                  "cc_batch": "batch-1"}
    assert two["categories"] == ["welcome"] and two["reply_to"] == "help@example.com"
    assert by_id(results)[2].provider_message_id == f"{two['message_id']}:2"


def test_sendgrid_2500_messages_arrive_as_1000_1000_500(sendgrid: SendGridStandIn) -> None:
    provider = sg_provider(sendgrid)
    messages = emails(2500)
    results = [r for n, chunk in enumerate(chunks(messages, provider.max_batch))
               for r in provider.send(chunk, f"batch-{n}")]

    assert len(results) == 2500 and all(r.ok for r in results)
    assert sendgrid.batch_sizes == [1000, 1000, 500]
    assert [len(r.json()["personalizations"]) for r in sendgrid.mail_requests] == [1000, 1000, 500]
    deliveries = sendgrid.deliveries
    assert len(deliveries) == 2500
    for d in deliveries[::97]:
        n = int(d["custom_args"]["cc_outbox_id"])
        assert d["to"] == f"user{n}@example.com" and d["text"] == f"Hi user {n}" and f"Hi user {n}<" in d["html"]
        assert d["custom_args"]["cc_batch"] == f"batch-{(n - 1) // 1000}"


def test_sendgrid_oversized_substitutions_go_alone_with_literal_content(sendgrid: SendGridStandIn) -> None:
    messages = emails(3)
    big = "<p>" + "x" * 12_000 + "</p>"
    messages[1].content["html"] = big

    results = sg_provider(sendgrid).send(messages, "batch-big")

    assert all(r.ok for r in results) and len(results) == 3
    assert sendgrid.batch_sizes == [2, 1]
    alone = sendgrid.mail_requests[1].json()
    assert "substitutions" not in alone["personalizations"][0]
    assert big in alone["content"][1]["value"]
    deliveries = {d["to"]: d for d in sendgrid.deliveries}
    assert big in deliveries["user2@example.com"]["html"]
    assert deliveries["user3@example.com"]["text"] == "Hi user 3"


def test_sendgrid_groups_by_category_and_fails_unsendable_messages_up_front(sendgrid: SendGridStandIn) -> None:
    messages = emails(4)
    messages[1].category = "promo"
    messages[2].to = "not-an-address"
    messages[3].content["subject"] = ""

    results = by_id(sg_provider(sendgrid).send(messages, "b"))

    assert results[1].ok and results[2].ok
    assert not results[3].ok and not results[3].transient and "not an email address" in results[3].error
    assert not results[4].ok and results[4].error == "empty subject"
    assert sorted(sendgrid.batch_sizes) == [1, 1]
    assert {d["to"]: d["categories"] for d in sendgrid.deliveries} == {
        "user1@example.com": ["welcome"], "user2@example.com": ["promo"]}


@pytest.mark.parametrize("status", [500, 429, 503])
def test_sendgrid_5xx_and_429_raise_transient(sendgrid: SendGridStandIn, status: int) -> None:
    sendgrid.fail_next(1, status)
    with pytest.raises(TransientError, match=str(status)):
        sg_provider(sendgrid).send(emails(3), "b")
    assert sendgrid.deliveries == []
    assert all(r.ok for r in sg_provider(sendgrid).send(emails(3), "b"))  # the retry goes through


def test_sendgrid_unreachable_is_transient(sendgrid: SendGridStandIn) -> None:
    """Nothing left the building: retrying is safe."""
    with pytest.raises(TransientError, match="unreachable"):
        sg_provider(sendgrid, host=f"http://127.0.0.1:{free_port()}").send(emails(2), "b")


def test_sendgrid_lost_answer_is_unknown_not_retried(sendgrid: SendGridStandIn) -> None:
    """The request went out and no answer came: it may have been accepted, so the results say
    `unknown` (recovery asks SendGrid) instead of `transient` (a blind retry could send twice)."""
    sendgrid.disconnect_next(1)
    results = sg_provider(sendgrid).send(emails(2), "b")
    assert [(r.ok, r.unknown, r.transient) for r in results] == [(False, True, False)] * 2


def test_sendgrid_timeout_is_unknown_and_the_message_was_in_fact_accepted() -> None:
    with SendGridStandIn(delay=2) as slow:
        results = SendGridEmail(slow.settings(timeout=0.3), slow.secrets()).send(emails(1), "b")
        assert [(r.ok, r.unknown, r.transient) for r in results] == [(False, True, False)]
        assert len(slow.deliveries) == 1, "which is why a retry would have sent it twice"


def test_sendgrid_4xx_is_a_final_failure_per_message(sendgrid: SendGridStandIn) -> None:
    sendgrid.fail_next(1, 400, body={"errors": [{"message": "The from address does not match a verified "
                                                            "Sender Identity.", "field": "from", "help": None}]})
    results = sg_provider(sendgrid).send(emails(3), "b")
    assert len(results) == 3
    assert all(not r.ok and not r.transient for r in results)
    assert "verified Sender Identity" in results[0].error and "400" in results[0].error

    wrong_key = SendGridEmail(sendgrid.settings(), {"api_key": "SG.wrong"}).send(emails(1), "b")
    assert not wrong_key[0].ok and not wrong_key[0].transient and "401" in wrong_key[0].error


def test_sendgrid_a_refused_address_fails_alone_and_the_rest_is_resent(sendgrid: SendGridStandIn) -> None:
    messages = emails(4)
    messages[1].to = "broken@nodot"  # passes our check, SendGrid refuses it (and the whole request)

    results = by_id(sg_provider(sendgrid).send(messages, "b"))

    assert not results[2].ok and not results[2].transient and "valid address" in results[2].error
    assert all(results[i].ok for i in (1, 3, 4))
    assert [r.status for r in sendgrid.mail_requests] == [400, 202]
    assert sorted(d["to"] for d in sendgrid.deliveries) == ["user1@example.com", "user3@example.com",
                                                            "user4@example.com"]


def test_sendgrid_accepted_reports_exactly_the_batchs_outbox_ids(sendgrid: SendGridStandIn) -> None:
    provider = sg_provider(sendgrid)
    provider.send(emails(5, start=1), "batch-a")
    provider.send(emails(3, start=100), "batch-b")

    assert provider.accepted("batch-a") == {1, 2, 3, 4, 5}
    assert provider.accepted("batch-b") == {100, 101, 102}
    assert provider.accepted("batch-none") == set()
    query = sendgrid.requests[-1]
    assert query.path == "/v3/messages" and query.query["limit"] == ["1000"]
    assert query.query["query"] == ["unique_args['cc_batch']=\"batch-none\""]


def test_sendgrid_accepted_after_an_answer_lost_in_flight(sendgrid: SendGridStandIn) -> None:
    """SendGrid took the request but the client heard a 500: the retry must not resend."""
    provider = sg_provider(sendgrid)
    sendgrid.fail_next(1, 500, path="/v3/mail/send", accept=True)
    with pytest.raises(TransientError):
        provider.send(emails(3), "batch-lost")
    assert provider.accepted("batch-lost") == {1, 2, 3} == sendgrid.accepted_ids("batch-lost")


def test_sendgrid_accepted_is_none_when_the_activity_api_fails(sendgrid: SendGridStandIn) -> None:
    provider = sg_provider(sendgrid)
    provider.send(emails(2), "batch-a")
    sendgrid.fail_next(1, 403, path="/v3/messages")
    assert provider.accepted("batch-a") is None
    sendgrid.fail_next(1, 200, path="/v3/messages", body={"messages": [{"msg_id": "x", "to_email": "a@b.c"}]})
    assert provider.accepted("batch-a") is None  # listed without our args: cannot tell
    assert SendGridEmail(sendgrid.settings(host=f"http://127.0.0.1:{free_port()}"),
                         sendgrid.secrets()).accepted("batch-a") is None


def test_sendgrid_delay_holds_the_answer_after_accepting() -> None:
    with SendGridStandIn(delay=0.5) as slow:
        provider = SendGridEmail(slow.settings(timeout=0.1), slow.secrets())
        assert all(r.unknown for r in provider.send(emails(2), "batch-slow"))
        assert slow.wait_for_requests(1)
        slow.delay = 0
        assert provider.accepted("batch-slow") == {1, 2}


# ---------------------------------------------------------------------------------------------
# SMTP


@pytest.fixture
def smtp() -> Iterator[SMTPStandIn]:
    with SMTPStandIn() as standin:
        yield standin


def test_smtp_one_connection_per_batch_multipart_with_outbox_header(smtp: SMTPStandIn) -> None:
    results = SMTPEmail(smtp.settings(reply_to="help@example.com"), {}).send(emails(3), "batch-1")

    assert all(r.ok for r in results) and len(results) == 3
    assert smtp.connections == 1
    got = {m["outbox_id"]: m for m in smtp.messages}
    assert sorted(got) == [1, 2, 3]
    two = got[2]
    assert two["rcpt_tos"] == ["user2@example.com"] and two["mail_from"] == "news@example.com"
    assert two["subject"] == "Hello 2" and two["to"] == "user2@example.com"
    assert two["text"].strip() == "Hi user 2"
    assert "Preview 2</span><p>Hi user 2</p>" in two["html"]
    assert two["headers"]["Content-Type"].startswith("multipart/alternative")
    assert two["headers"]["From"] == "Campaign Canvas <news@example.com>"
    assert two["headers"]["Reply-To"] == "help@example.com"
    assert two["headers"]["X-CC-Batch"] == "batch-1"
    assert by_id(results)[2].provider_message_id == two["message_id"]


def test_smtp_permanent_and_temporary_recipient_refusals(smtp: SMTPStandIn) -> None:
    smtp.reject("user2@example.com", 550, "5.1.1 User unknown")
    smtp.fail_next(1, 451, stage="rcpt")  # hits user1's RCPT

    results = by_id(SMTPEmail(smtp.settings(), {}).send(emails(3), "b"))

    assert results[1].transient and not results[1].ok and "451" in results[1].error
    assert not results[2].ok and not results[2].transient and "550" in results[2].error
    assert results[3].ok
    assert [m["outbox_id"] for m in smtp.messages] == [3]


def test_smtp_data_refusal_and_bad_headers_fail_only_that_message(smtp: SMTPStandIn) -> None:
    messages = emails(3)
    messages[0].content["subject"] = "Hello\r\nBcc: everyone@example.com"
    smtp.fail_next(1, 554, stage="data")  # hits user2's DATA

    results = by_id(SMTPEmail(smtp.settings(), {}).send(messages, "b"))

    assert not results[1].ok and not results[1].transient and "cannot build" in results[1].error
    assert not results[2].ok and not results[2].transient and "554" in results[2].error
    assert results[3].ok and [m["outbox_id"] for m in smtp.messages] == [3]


def test_smtp_unreachable_or_all_temporary_raises_transient(smtp: SMTPStandIn) -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        SMTPEmail({**smtp.settings(), "port": free_port(), "timeout": 2}, {}).send(emails(2), "b")
    smtp.fail_next(2, 421, stage="mail", text="4.7.0 Too many messages, slow down")
    with pytest.raises(TransientError, match="421"):
        SMTPEmail(smtp.settings(), {}).send(emails(2), "b")


def test_smtp_auth_and_a_wrong_password_is_final() -> None:
    with SMTPStandIn(users={"mailer": "s3cret-smtp-pw"}, require_auth=True) as server:
        ok = SMTPEmail(server.settings(username="mailer"), {"password": "s3cret-smtp-pw"}).send(emails(2), "b")
        assert all(r.ok for r in ok) and len(server.messages) == 2
        bad = SMTPEmail(server.settings(username="mailer"), {"password": "nope"}).send(emails(2), "b")
        assert all(not r.ok and not r.transient and "535" in r.error for r in bad)


def test_smtp_text_only_and_html_only(smtp: SMTPStandIn) -> None:
    text_only, html_only = emails(2)
    text_only.content.update(html="", preheader="")
    html_only.content.update(text="")
    assert all(r.ok for r in SMTPEmail(smtp.settings(), {}).send([text_only, html_only], "b"))
    got = {m["outbox_id"]: m for m in smtp.messages}
    assert got[1]["html"] is None and got[1]["text"].strip() == "Hi user 1"
    assert got[2]["text"] is None and "Hi user 2" in got[2]["html"]


# ---------------------------------------------------------------------------------------------
# Twilio


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as standin:
        yield standin


def sms(count: int, start: int = 1) -> list[OutgoingMessage]:
    return [OutgoingMessage(outbox_id=i, profile_id=i, to=f"+1555000{i:04d}", content={"body": f"Code {i}"})
            for i in range(start, start + count)]


def test_twilio_posts_each_message_and_keeps_the_sid(twilio: TwilioStandIn) -> None:
    provider = TwilioSMS(twilio.settings(status_callback="https://cc.example.com/hooks/twilio"), twilio.secrets())
    results = by_id(provider.send(sms(3), "b"))

    assert all(r.ok for r in results.values())
    assert [(m["to"], m["from"], m["body"]) for m in twilio.messages] == [
        ("+15550000001", "+15550001111", "Code 1"), ("+15550000002", "+15550001111", "Code 2"),
        ("+15550000003", "+15550001111", "Code 3")]
    assert {m["status_callback"] for m in twilio.messages} == {"https://cc.example.com/hooks/twilio"}
    assert [results[i].provider_message_id for i in (1, 2, 3)] == [m["sid"] for m in twilio.messages]
    assert twilio.requests[0].form() == {"To": "+15550000001", "From": "+15550001111", "Body": "Code 1",
                                         "StatusCallback": "https://cc.example.com/hooks/twilio"}


def test_twilio_error_mapping(twilio: TwilioStandIn) -> None:
    provider = TwilioSMS(twilio.settings(), twilio.secrets())
    for status in (500, 429):
        twilio.fail_next(1, status)
        with pytest.raises(TransientError, match=str(status)):
            provider.send(sms(2), "b")
    twilio.disconnect_next(1)  # no answer for the first: unknown; the second is not attempted
    results = provider.send(sms(2), "b")
    assert [(r.unknown, r.transient) for r in results] == [(True, False), (False, True)]
    assert twilio.messages == []

    messages = sms(4)
    messages[0].to = "12345"
    twilio.reject("+15550000002")
    results = by_id(provider.send(messages, "b"))
    assert not results[1].ok and not results[1].transient and "21211" in results[1].error
    assert not results[2].ok and not results[2].transient and "21610" in results[2].error
    assert results[3].ok and results[4].ok


def test_twilio_a_transient_failure_mid_batch_stops_the_batch(twilio: TwilioStandIn) -> None:
    twilio.fail_next(1, 429, after=1)  # the first goes through, the second is rate limited
    results = by_id(TwilioSMS(twilio.settings(), twilio.secrets()).send(sms(4), "b"))

    assert results[1].ok
    assert all(results[i].transient and not results[i].ok for i in (2, 3, 4))
    assert "429" in results[2].error and "not attempted" in results[3].error
    assert len(twilio.requests) == 2 and len(twilio.messages) == 1


def test_twilio_wrong_token_is_final(twilio: TwilioStandIn) -> None:
    results = TwilioSMS(twilio.settings(), {"auth_token": "wrong"}).send(sms(1), "b")
    assert not results[0].ok and not results[0].transient and "20003" in results[0].error


# ---------------------------------------------------------------------------------------------
# FCM


@pytest.fixture
def fcm() -> Iterator[FCMStandIn]:
    with FCMStandIn() as standin:
        yield standin


def pushes(count: int, start: int = 1) -> list[OutgoingMessage]:
    return [OutgoingMessage(outbox_id=i, profile_id=i, to=f"token-{i}",
                            content={"title": f"Hi {i}", "body": "Your cart misses you", "image": "",
                                     "data": {"cart": i, "deep_link": "app://cart", "items": [1, 2]}})
            for i in range(start, start + count)]


def test_fcm_sends_v1_messages(fcm: FCMStandIn) -> None:
    results = by_id(FCMPush(fcm.settings(), fcm.secrets()).send(pushes(2), "b"))

    assert all(r.ok for r in results.values())
    first = fcm.messages[0]
    assert first["token"] == "token-1"
    assert first["notification"] == {"title": "Hi 1", "body": "Your cart misses you"}
    assert first["data"] == {"cart": "1", "deep_link": "app://cart", "items": "[1, 2]"}
    assert results[1].provider_message_id == first["name"]
    assert fcm.requests[0].path == f"/v1/projects/{fcm.project_id}/messages:send"


def test_fcm_error_mapping(fcm: FCMStandIn) -> None:
    provider = FCMPush(fcm.settings(), fcm.secrets())
    fcm.unregister("token-2")
    results = by_id(provider.send(pushes(3), "b"))
    assert results[1].ok and results[3].ok
    assert not results[2].ok and not results[2].transient and results[2].error == UNREGISTERED

    for status in (500, 429, 503):
        fcm.fail_next(1, status)
        with pytest.raises(TransientError):
            provider.send(pushes(2), "b")

    fcm.fail_next(1, 400)
    results = by_id(provider.send(pushes(1), "b"))
    assert not results[1].ok and not results[1].transient and "INVALID_ARGUMENT" in results[1].error
    wrong = FCMPush(fcm.settings(), {"server_key": "nope"}).send(pushes(1), "b")
    assert not wrong[0].ok and not wrong[0].transient and "401" in wrong[0].error


# ---------------------------------------------------------------------------------------------
# webhook


@pytest.fixture
def webhook() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as standin:
        yield standin


def calls(count: int, start: int = 1) -> list[OutgoingMessage]:
    return [OutgoingMessage(outbox_id=i, profile_id=i, to="", content={"body": {"profile": i, "event": "welcome"}})
            for i in range(start, start + count)]


def test_webhook_sends_json_with_idempotency_key(webhook: WebhookStandIn) -> None:
    provider = WebhookCall(webhook.settings(method="PUT", headers={"X-Source": "cc"}),
                           {"bearer_token": "hook-s3cret", "secret_headers": {"X-Api-Key": "key-s3cret"}})
    results = by_id(provider.send(calls(2), "b"))

    assert all(r.ok for r in results.values())
    first = webhook.calls[0]
    assert first.method == "PUT" and first.path == "/hook"
    assert first.json() == {"profile": 1, "event": "welcome"}
    assert first.header("Idempotency-Key") == "cc-1"
    assert first.header("Authorization") == "Bearer hook-s3cret"
    assert first.header("X-Api-Key") == "key-s3cret" and first.header("X-Source") == "cc"


def test_webhook_error_mapping_and_receiver_dedupe(webhook: WebhookStandIn) -> None:
    provider = WebhookCall(webhook.settings(), {})
    webhook.fail_next(1, 500, accept=True)  # processed, but the answer says 500
    with pytest.raises(TransientError):
        provider.send(calls(1), "b")
    assert all(r.ok for r in provider.send(calls(1), "b"))  # the retry carries the same key
    assert len(webhook.calls) == 1 and len(webhook.requests) == 2

    webhook.disconnect_next(1)  # no answer: it may have been processed, so no blind retry
    assert [(r.ok, r.unknown) for r in provider.send(calls(1, start=5), "b")] == [(False, True)]

    webhook.status = 404
    results = provider.send(calls(2, start=10), "b")
    assert all(not r.ok and not r.transient and "404" in r.error for r in results)


# ---------------------------------------------------------------------------------------------
# secrets never leak


def test_secrets_never_appear_in_reprs_results_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sg_key, tw_token, fcm_key, hook_token, hook_key, smtp_pw = (
        "SG.very-secret-sendgrid-key", "very-secret-twilio-token", "very-secret-fcm-key",
        "very-secret-hook-token", "very-secret-hook-header", "very-secret-smtp-password")
    secrets = (sg_key, tw_token, fcm_key, hook_token, hook_key, smtp_pw)
    seen: list[str] = []

    with SendGridStandIn(api_key=sg_key) as sg, TwilioStandIn(auth_token=tw_token) as tw, \
            FCMStandIn(server_key=fcm_key) as fc, WebhookStandIn() as wh, \
            SMTPStandIn(users={"mailer": smtp_pw}) as sm:
        providers = [
            (SendGridEmail(sg.settings(), {"api_key": sg_key}), emails(2), sg),
            (TwilioSMS(tw.settings(), {"auth_token": tw_token}), sms(2), tw),
            (FCMPush(fc.settings(), {"server_key": fcm_key}), pushes(2), fc),
            (WebhookCall(wh.settings(), {"bearer_token": hook_token, "secret_headers": {"X-Key": hook_key}}),
             calls(2), wh),
            (SMTPEmail(sm.settings(username="mailer"), {"password": smtp_pw}), emails(2), sm),
        ]
        for provider, messages, standin in providers:
            seen += [repr(provider), str(provider)]
            seen += [repr(r) for r in provider.send(messages, "ok-batch")]
            if not isinstance(standin, SMTPStandIn):
                standin.fail_next(1, 400)
                seen += [repr(r) for r in provider.send(messages[:1], "bad-batch")]
                standin.fail_next(1, 500)
                with pytest.raises(TransientError) as raised:
                    provider.send(messages[:1], "bad-batch")
                seen.append(str(raised.value))
            seen.append(repr(provider.accepted("ok-batch")))
        sg.fail_next(1, 403, path="/v3/messages")
        providers[0][0].accepted("ok-batch")

    assert "Bearer [redacted]" in caplog.text  # the SDK did log its headers, redacted
    assert "PAYLOAD" not in caplog.text
    everything = "\n".join(seen) + caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for secret in secrets:
        assert secret not in everything


def test_smtp_auth_required_without_credentials_is_final() -> None:
    with SMTPStandIn(users={"mailer": "pw"}, require_auth=True) as server:
        results = SMTPEmail(server.settings(), {}).send(emails(1), "b")
        assert not results[0].ok and not results[0].transient and "530" in results[0].error
        assert server.messages == []
