"""The click sender's thread outlives a batch it cannot send."""

from worker import clicks


def test_a_batch_for_an_unparsable_redis_url_is_logged_not_raised(settings, caplog):
    settings.REDIS_URL = "not-a-redis-url"
    clicks._sender.send(['{"link": 1}'])
    assert "1 clicks not counted" in caplog.text


def test_the_sender_sends_again_once_the_url_is_fixed(settings, redis_url):
    settings.REDIS_URL = "not-a-redis-url"
    clicks._sender.send(['{"link": 1}'])
    settings.REDIS_URL = redis_url
    clicks._redis_client().delete(clicks.BUFFER_KEY)
    clicks._sender.send(['{"link": 2}'])
    assert clicks._redis_client().lrange(clicks.BUFFER_KEY, 0, -1) == [b'{"link": 2}']
