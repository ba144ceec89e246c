"""What a summarize engine raises, apart from any client library: tasks, the desk and the CLI catch
these without importing the LLM client."""


class EngineError(Exception):
    """The engine could not produce a usable answer; the article is marked failed with this reason.
    The tokens the failed attempts cost (as the server reported them) travel with it."""

    prompt_tokens = 0
    completion_tokens = 0


class EngineTransientError(EngineError):
    """Rate limit, timeout, 5xx or dropped connection that outlasted every retry (or the time budget)."""


class BadAnswer(Exception):
    """An answer that a repair round may fix: not JSON, not the schema, truncated, whitespace runaway."""
