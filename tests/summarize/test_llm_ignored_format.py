"""A server that takes response_format and does not apply it.

transformers serve (tests/summarize/test_llm_real_server_transformers.py) answers HTTP 200 to a
json_schema request, logs "Ignoring unsupported fields" and lets the model write whatever it likes:
no refusal to step down on. A schema the server applies makes the answer open with "{", so an answer
in prose or fences under a schema mode is the sign; the schema then goes into the prompt.
"""

import json

import pytest

from tests.helpers.fake_openai import ARTICLE, ARTICLE_TITLE, Reply, answer, canned_summary, completion
from worker.summarize import llm_client
from worker.summarize.engines import OpenAICompatibleEngine
from worker.summarize.errors import EngineError


def summarize():
    return OpenAICompatibleEngine().summarize(ARTICLE_TITLE, ARTICLE)


def ignores_response_format(body: dict) -> Reply:
    """The model only writes the JSON when the schema is in its prompt; the response_format is ignored."""
    if '"key_actors"' in body["messages"][0]["content"]:
        return answer(canned_summary())
    return completion("The article describes fighting in the Panjshir valley and who took part in it.")


def formats(server) -> list[str | None]:
    return [(r.get("response_format") or {}).get("type") for r in server.requests]


def test_an_answer_outside_the_schema_moves_the_schema_into_the_prompt(fake_openai):
    fake_openai.handler = ignores_response_format
    result = summarize()
    assert formats(fake_openai) == ["json_schema", "json_object"]
    assert result.mode == "json_object" and result.repaired and result.summary.key_actors


def test_the_next_article_asks_with_the_schema_in_the_prompt_at_once(fake_openai):
    fake_openai.handler = ignores_response_format
    summarize()
    result = summarize()
    assert formats(fake_openai)[2:] == ["json_object"] and not result.repaired
    assert llm_client.response_mode("fake-model") == "json_object"


def test_a_fenced_answer_is_read_and_the_next_request_carries_the_schema(fake_openai):
    fake_openai.push(completion("```json\n" + json.dumps(canned_summary()) + "\n```"), answer(canned_summary()))
    first = summarize()
    summarize()
    assert not first.repaired and first.summary.key_actors
    assert formats(fake_openai) == ["json_schema", "json_object"]


def test_an_answer_that_opens_the_object_keeps_json_schema(fake_openai):
    fake_openai.push(completion('{"headline": "Resistance', finish_reason="length"), answer(canned_summary()))
    summarize()
    assert formats(fake_openai) == ["json_schema", "json_schema"]
    assert llm_client.response_mode("fake-model") == "json_schema"


def test_an_empty_answer_is_no_evidence_of_an_ignored_format(fake_openai):
    fake_openai.push(completion(""), answer(canned_summary()))
    summarize()
    assert formats(fake_openai) == ["json_schema", "json_schema"]


def test_a_forced_mode_is_kept_whatever_the_server_answers(fake_openai, settings):
    settings.NEWSDIGEST_LLM_RESPONSE_FORMAT = "json_schema"
    fake_openai.handler = ignores_response_format
    with pytest.raises(EngineError, match="no usable answer"):
        summarize()
    assert formats(fake_openai) == ["json_schema", "json_schema"]
