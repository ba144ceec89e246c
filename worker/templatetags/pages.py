"""The subscriber pages wear their newsletter's theme (the same checked values as the email)."""

from django import template

from worker import render
from worker.models import Newsletter

register = template.Library()


def _newsletter(context) -> Newsletter | None:
    """The page's newsletter: the subscribe page names it, confirm/unsubscribe have a subscription,
    preferences a list of them (the first one's look is used)."""
    if isinstance(newsletter := context.get("newsletter"), Newsletter):
        return newsletter
    if (subscription := context.get("subscription")) is not None:
        return subscription.newsletter
    subscriptions = context.get("subscriptions") or []
    return subscriptions[0].newsletter if subscriptions else None


@register.simple_tag(takes_context=True)
def page_look(context) -> dict:
    """{"newsletter", "theme"}: the default theme when there is no newsletter (a bad link) or its theme
    does not validate (the page must still work; the desk reports the theme error)."""
    newsletter = _newsletter(context)
    try:
        theme = render.theme_for(newsletter) if newsletter is not None else dict(render.DEFAULT_THEME)
    except render.ThemeError:
        theme = dict(render.DEFAULT_THEME)
    return {"newsletter": newsletter, "theme": theme}
