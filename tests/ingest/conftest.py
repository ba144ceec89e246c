"""What the ingest tests share: fetches allowed to the local test servers, with a short deadline."""

import pytest


@pytest.fixture
def allow_local(settings):
    settings.NEWSDIGEST_FETCH_ALLOW = ["127.0.0.1"]
    settings.NEWSDIGEST_FETCH_TIMEOUT = 2.0
