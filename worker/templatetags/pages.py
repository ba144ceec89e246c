"""The subscriber pages wear their newsletter's theme (the same checked values as the email)."""

from django import template

from worker import render
from worker.models import Newsletter

register = template.Library()


@register.simple_tag
def page_theme(newsletter: Newsletter | None) -> dict[str, str]:
    """The newsletter's theme; the default one when there is no newsletter (a bad link) or its theme
    does not validate (the page must still work; the desk reports the theme error)."""
    if newsletter is None or newsletter == "":
        return dict(render.DEFAULT_THEME)
    try:
        return render.theme_for(newsletter)
    except render.ThemeError:
        return dict(render.DEFAULT_THEME)
