"""ESP tracking webhooks (bounces, complaints) through django-anymail, closed by default.

A forged event suppresses a subscriber for good, so:
- only the ESP that is configured (NEWSDIGEST_TRACKING_ESP, by default the one named by an
  `anymail.backends.<esp>.EmailBackend` EMAIL_BACKEND) has a receiver, at /anymail/<esp>/tracking/;
  with no ESP there is no tracking endpoint at all (404);
- the receiver refuses every request while ANYMAIL_WEBHOOK_SECRET (HTTP basic auth, checked by
  anymail) is unset, and anymail checks the ESP's own signature where it supports one (the key
  named in SIGNATURE_SETTINGS must then be set too);
- `newsdigest check` (a Django system check, run at every start) warns about a receiver whose
  credentials are missing.
The events themselves go to the `tracking` signal handler in worker/bounces.py.
"""

import logging
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.core import checks
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

log = logging.getLogger("newsdigest.webhooks")

# ESPs whose webhooks anymail can verify with a signature, and the ANYMAIL setting holding the key.
SIGNATURE_SETTINGS = {
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "mailersend": "MAILERSEND_SIGNING_SECRET",
}


def configured_esp() -> str:
    """The ESP whose tracking events are accepted; "" when none is configured."""
    return settings.NEWSDIGEST_TRACKING_ESP


@cache
def _anymail_views() -> dict[str, Callable]:
    from anymail import urls

    return {p.name.removesuffix("_tracking_webhook"): p.callback
            for p in urls.urlpatterns if p.name and p.name.endswith("_tracking_webhook")}


def missing_credentials(esp: str) -> list[str]:
    """The ANYMAIL_* settings the receiver of `esp` needs and does not have."""
    needed = ["WEBHOOK_SECRET"]
    if esp in SIGNATURE_SETTINGS:
        needed.append(SIGNATURE_SETTINGS[esp])
    return [f"ANYMAIL_{name}" for name in needed if not settings.ANYMAIL.get(name)]


@csrf_exempt  # server-to-server POSTs; basic auth and the ESP's signature stand in for CSRF
def tracking(request: HttpRequest, esp: str) -> HttpResponse:
    esp_name = configured_esp()
    if not esp_name or esp != esp_name or esp not in _anymail_views():
        raise Http404("no tracking webhook here")
    if missing := missing_credentials(esp):
        log.warning("refused a %s tracking webhook: %s not set", esp, ", ".join(missing))
        return HttpResponse(f"webhook credentials not configured ({', '.join(missing)})", status=403,
                            content_type="text/plain")
    return _anymail_views()[esp](request)


@checks.register(checks.Tags.security)
def check_tracking_webhook(app_configs, **kwargs) -> list[checks.CheckMessage]:
    esp = configured_esp()
    if not esp:
        return []
    if esp not in _anymail_views():
        return [checks.Error(f"NEWSDIGEST_TRACKING_ESP={esp!r} is not an ESP anymail has a tracking webhook for",
                             hint=f"choose one of {', '.join(sorted(_anymail_views()))}", id="newsdigest.E001")]
    if missing := missing_credentials(esp):
        return [checks.Warning(
            f"the {esp} tracking webhook is enabled without {', '.join(missing)}: it refuses every event "
            "(bounces and complaints are not recorded) until they are set",
            hint="set the secret here and in the ESP's webhook URL (https://user:secret@host/anymail/"
                 f"{esp}/tracking/)", id="newsdigest.W001")]
    return []
