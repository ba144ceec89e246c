"""JSON mode with the schema attached, the step between json_schema and plain json_object.

llama-cpp-python's server refuses `json_schema` but turns `{"type": "json_object", "schema": ...}`
into a grammar; servers that validate the request strictly refuse the extra key. Fake servers are
scripted here to answer the way each kind does (the real one: tests/test_llm_real_server.py).
"""

import pytest

from tests.helpers.fake_openai import (
    ARTICLE,
    ARTICLE_TITLE,
    Reply,
    answer,
    canned_summary,
    error,
)
from worker.summarize import llm_client
from worker.summarize.engines import OpenAICompatibleEngine
from worker.summarize.errors import EngineError, EngineTransientError


def summarize():
    return OpenAICompatibleEngine().summarize(ARTICLE_TITLE, ARTICLE)


def llama_cpp_python(body: dict) -> Reply:
    """llama-cpp-python 0.3.x: json_schema is a 500 from its request validation; the rest is served."""
    if (body.get("response_format") or {}).get("type") == "json_schema":
        return error(500, "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
                          "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]")
    return answer(canned_summary())


def strict_validator(body: dict) -> Reply:
    """A server that knows json_object but rejects any key it does not know beside it (and json_schema)."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return error(400, "response_format type 'json_schema' is not supported", param="response_format")
    if set(response_format) - {"type"}:
        return error(400, "Additional properties are not allowed ('schema' was unexpected) - 'response_format'",
                     param="response_format")
    return answer(canned_summary())


def no_structured_output(body: dict) -> Reply:
    if body.get("response_format"):
        return error(400, f"response_format {body['response_format']['type']} is not supported")
    return answer(canned_summary())


def sent(server) -> list[dict | None]:
    return [r.get("response_format") for r in server.requests]


def test_a_server_refusing_json_schema_gets_json_mode_with_the_schema_attached(fake_openai):
    fake_openai.handler = llama_cpp_python
    result = summarize()
    refused, accepted = sent(fake_openai)
    assert refused["type"] == "json_schema"
    assert accepted["type"] == "json_object" and set(accepted) == {"type", "schema"}
    assert accepted["schema"]["required"] == refused["json_schema"]["schema"]["required"]
    actors = accepted["schema"]["properties"]["key_actors"]
    assert actors["minItems"] == 1  # a grammar's cheapest path is []
    # Every string and list is bounded, so a small model cannot run on until the token limit cuts the JSON.
    assert actors["maxItems"] and accepted["schema"]["properties"]["summary"]["maxLength"]
    # The schema is in the prompt too: a server may take json_object and ignore the schema beside it.
    assert '"key_actors"' in fake_openai.requests[1]["messages"][0]["content"]
    assert result.mode == "json_object_schema" and result.requests == 2 and not result.repaired


def test_the_schema_mode_is_remembered_for_the_server(fake_openai):
    fake_openai.handler = llama_cpp_python
    summarize()
    summarize()
    assert [f["type"] for f in sent(fake_openai)] == ["json_schema", "json_object", "json_object"]
    assert "schema" in sent(fake_openai)[2]
    assert llm_client.response_mode("fake-model") == "json_object_schema"


def test_a_server_refusing_the_attached_schema_steps_down_to_plain_json_mode(fake_openai):
    fake_openai.handler = strict_validator
    result = summarize()
    assert sent(fake_openai)[1:] == [{"type": "json_object", "schema": sent(fake_openai)[1]["schema"]},
                                     {"type": "json_object"}]
    assert result.mode == "json_object" and result.requests == 3
    summarize()
    assert sent(fake_openai)[3] == {"type": "json_object"}  # remembered: no more probing


def test_a_third_refusal_in_one_article_takes_an_attempt_so_the_worst_case_stays(fake_openai, settings):
    # Two refusals per article are free; a server refusing all three structured modes costs the
    # article one attempt, so the longest an article can take does not grow with the modes.
    retries, timeout = settings.NEWSDIGEST_LLM_MAX_RETRIES, settings.NEWSDIGEST_LLM_TIMEOUT
    longest_sleep = max(settings.NEWSDIGEST_LLM_BACKOFF_MAX, settings.NEWSDIGEST_LLM_MAX_RETRY_AFTER)
    assert llm_client.worst_case_seconds() == (retries + 4) * timeout + (retries + 1) * longest_sleep
    fake_openai.handler = no_structured_output
    result = summarize()
    assert sent(fake_openai)[-1] is None and result.mode == "prompt" and result.requests == 4
    settings.NEWSDIGEST_LLM_MAX_RETRIES = 0
    llm_client._local_modes.clear()
    with pytest.raises(EngineTransientError, match="gave up after 3 requests: HTTP 400: response_format json_object"):
        summarize()
    assert llm_client.response_mode("fake-model") == "prompt"  # the next article asks the right way


def test_an_operator_can_force_the_schema_mode_and_a_refusal_is_then_an_error(fake_openai, settings):
    settings.NEWSDIGEST_LLM_RESPONSE_FORMAT = "json_object_schema"
    fake_openai.handler = llama_cpp_python
    assert summarize().mode == "json_object_schema"
    assert sent(fake_openai)[0]["type"] == "json_object" and sent(fake_openai)[0]["schema"]["required"]
    fake_openai.handler = strict_validator
    with pytest.raises(EngineError, match="refused response_format json_object_schema.*'schema' was unexpected"):
        summarize()
    assert len(fake_openai.requests) == 2
