"""Look at a digest the way a phone and a desktop client would: headless Chromium, PNGs and layout checks."""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

WIDTHS = (375, 640)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# Per headline: is it rendered, and does it stay inside the viewport horizontally?
_HEADLINES_JS = """() => [...document.querySelectorAll('h2.nd-headline')].map(h => {
  const r = h.getBoundingClientRect(), s = getComputedStyle(h);
  return {text: h.innerText.trim(), visible: r.width > 0 && r.height > 0 && s.visibility !== 'hidden'
          && s.display !== 'none' && r.left >= 0 && r.right <= window.innerWidth + 0.5};
})"""


class ChromiumMissing(RuntimeError):
    """No headless browser at NEWSDIGEST_CHROMIUM, or no Playwright to drive it."""


@dataclass(frozen=True)
class Shot:
    width: int
    path: Path
    scroll_width: int
    headlines: int
    hidden_headlines: list[str]

    @property
    def ok(self) -> bool:
        return self.scroll_width <= self.width and not self.hidden_headlines


def chromium() -> str:
    path = settings.NEWSDIGEST_CHROMIUM
    if not Path(path).is_file():
        raise ChromiumMissing(f"no Chromium at {path} (apt-get install chromium, or set NEWSDIGEST_CHROMIUM)")
    return path


def capture(html: str, out_dir: Path, stem: str = "digest", widths: tuple[int, ...] = WIDTHS) -> list[Shot]:
    """Full-page PNG per width. Network is blocked: remote images (a logo) show their alt text, as in
    a client that does not load images."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ChromiumMissing(
            "screenshots need Playwright, which this installation (e.g. the Docker image) does not include: "
            "pip install 'newsdigest[test]' and apt-get install chromium, or use "
            "`newsdigest digest preview ID --out FILE` and open the HTML in a browser") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            for width in widths:
                page = browser.new_page(viewport={"width": width, "height": 800}, device_scale_factor=1)
                page.route("**/*", lambda route: route.abort())
                page.set_content(html, wait_until="load")
                headlines = page.evaluate(_HEADLINES_JS)
                path = out_dir / f"{stem}-{width}.png"
                page.screenshot(path=str(path), full_page=True)
                shots.append(Shot(width=width, path=path,
                                  scroll_width=page.evaluate("document.documentElement.scrollWidth"),
                                  headlines=len(headlines),
                                  hidden_headlines=[h["text"] for h in headlines if not h["visible"]]))
                page.close()
        finally:
            browser.close()
    return shots
