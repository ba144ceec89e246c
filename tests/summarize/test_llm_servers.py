"""Capability detection against fake servers scripted to fail the way real ones do."""

import json

import pytest

from tests.helpers.fake_openai import (
    ARTICLE,
    ARTICLE_TITLE,
    answer,
    canned_summary,
    completion,
    error,
)
from worker.summarize import llm_client
from worker.summarize.engines import OpenAICompatibleEngine
from worker.summarize.errors import EngineError


def llama_cpp_python_refusal():
    """What llama-cpp-python's server (0.3.x) answers to response_format json_schema: HTTP 500 with
    pydantic's validation message in the error body."""
    return error(500, "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
                      "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]")


def summarize():
    return OpenAICompatibleEngine().summarize(ARTICLE_TITLE, ARTICLE)


def formats(server) -> list[str | None]:
    return [(r.get("response_format") or {}).get("type") for r in server.requests]


def test_a_500_naming_the_response_format_steps_down_to_json_mode(fake_openai):
    fake_openai.push(llama_cpp_python_refusal(), answer(canned_summary()))
    result = summarize()
    assert formats(fake_openai) == ["json_schema", "json_object"]
    assert result.mode == "json_object_schema" and result.requests == 2


def test_a_422_naming_the_response_format_steps_down_to_json_mode(fake_openai):
    fake_openai.push(error(422, "response_format: unsupported type json_schema"), answer(canned_summary()))
    assert summarize().mode == "json_object_schema"


def test_a_plain_500_is_retried_not_taken_for_a_refusal(fake_openai):
    fake_openai.push(error(500, "model crashed"), answer(canned_summary()))
    result = summarize()
    assert formats(fake_openai) == ["json_schema", "json_schema"]
    assert result.mode == "json_schema"


def test_a_server_refusing_json_mode_too_gets_the_schema_in_the_prompt_only(fake_openai):
    fake_openai.push(llama_cpp_python_refusal(), error(400, "response_format json_object is not supported"),
                     error(400, "response_format json_object is not supported"), answer(canned_summary()))
    result = summarize()
    assert formats(fake_openai) == ["json_schema", "json_object", "json_object", None]
    assert '"key_actors"' in fake_openai.requests[3]["messages"][0]["content"]
    assert result.mode == "prompt"


def test_the_detected_mode_is_remembered_per_server_and_model(fake_openai):
    fake_openai.push(llama_cpp_python_refusal(), answer(canned_summary()), answer(canned_summary()))
    summarize()
    summarize()
    assert formats(fake_openai) == ["json_schema", "json_object", "json_object"]
    # Another model on the same server is probed for itself.
    fake_openai.push(answer(canned_summary()))
    OpenAICompatibleEngine(model="other-model").summarize(ARTICLE_TITLE, ARTICLE)
    assert formats(fake_openai)[-1] == "json_schema"


@pytest.mark.parametrize("forced", ["json_object", "prompt"])
def test_an_operator_can_force_the_mode(fake_openai, settings, forced):
    settings.NEWSDIGEST_LLM_RESPONSE_FORMAT = forced
    fake_openai.push(answer(canned_summary()))
    assert summarize().mode == forced
    assert formats(fake_openai) == [None if forced == "prompt" else forced]


def test_a_forced_mode_the_server_refuses_fails_with_the_reason_instead_of_stepping_down(fake_openai, settings):
    settings.NEWSDIGEST_LLM_RESPONSE_FORMAT = "json_schema"
    fake_openai.push(llama_cpp_python_refusal())
    with pytest.raises(EngineError, match="refused response_format json_schema.*Input should be"):
        summarize()
    assert len(fake_openai.requests) == 1


def test_json_in_prose_is_extracted(fake_openai):
    fake_openai.push(completion("Sure! Here is the summary you asked for:\n" + json.dumps(canned_summary())
                                + "\nLet me know if you need anything else."))
    result = summarize()
    assert result.summary.headline == canned_summary()["headline"] and not result.repaired


def test_json_in_a_fenced_block_inside_prose_is_extracted(fake_openai):
    fake_openai.push(completion("Summary:\n```json\n" + json.dumps(canned_summary()) + "\n```\nDone."))
    assert summarize().summary.key_actors


def test_prose_without_json_gets_one_repair_round(fake_openai):
    fake_openai.push(completion("The article is about fighting in the Panjshir valley."),
                     answer(canned_summary()))
    result = summarize()
    assert result.repaired and result.requests == 2
    assert "not valid JSON" in fake_openai.requests[1]["messages"][-1]["content"]


def test_prose_twice_fails_the_article_with_the_reason(fake_openai):
    fake_openai.push(completion("No JSON here."), completion("Still no JSON."))
    with pytest.raises(EngineError, match="no usable answer after a repair round"):
        summarize()


def test_tokens_spent_on_a_failed_article_travel_with_the_error(fake_openai):
    fake_openai.push(completion("No JSON here.", usage=(300, 20)), completion("Still none.", usage=(350, 25)))
    with pytest.raises(EngineError) as failure:
        summarize()
    assert (failure.value.prompt_tokens, failure.value.completion_tokens) == (650, 45)


def test_tokens_per_minute_are_settled_against_the_reported_usage(fake_openai, settings):
    settings.NEWSDIGEST_LLM_TPM = 6000  # 100 tokens/s
    bucket = llm_client.rate_limits()[1]
    fake_openai.push(answer(canned_summary(), usage=(40, 10)))
    summarize()
    # The request was charged its estimate (prompt + the longest answer, ~1700 tokens); once settled
    # only the 50 the server reported stay taken (plus whatever refilled meanwhile, up to capacity).
    assert bucket.capacity - 50 <= bucket._local["tokens"] <= bucket.capacity


def test_usage_above_the_estimate_is_charged_as_debt(fake_openai, settings):
    settings.NEWSDIGEST_LLM_TPM = 6000  # 100 tokens/s
    bucket = llm_client.rate_limits()[1]
    fake_openai.push(answer(canned_summary(), usage=(int(bucket.capacity) * 2, 0)))
    summarize()
    assert bucket.try_acquire(1) > 5  # in debt: the next request waits for the refill
