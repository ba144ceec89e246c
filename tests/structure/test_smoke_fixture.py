import pytest
from django.core import mail

from tests.helpers.processes import free_port


def test_private_redis_answers(redis_url):
    import redis

    assert redis.Redis.from_url(redis_url).ping()


@pytest.mark.django_db
def test_smtp_fixture_records_messages(smtp):
    mail.send_mail("hi", "body", "a@example.com", ["b@example.com"])
    assert [m["Subject"] for m in smtp.messages] == ["hi"]
    assert free_port() > 0
