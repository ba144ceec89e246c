"""Rebuild the Global Voices article texts of real_news.jsonl (how those records were made).

The texts come from Global Voices (https://globalvoices.org, then globalvoicesonline.org), whose
posts are published under CC BY 3.0 (the page footer: "This site is licensed under a Creative
Commons Attribution 3.0 License"). The copies used are the June 2009 story pages that the Media
Cloud project keeps as crawler test fixtures (https://github.com/mediacloud/backend,
t/data/crawler_stories/gv/N.json at commit 740bdcf68: the crawled page in `content`, the post
body in `description`). Each text is laid out as the page reads: the dateline and byline from the
page header, then the post body with paragraphs, block quotes, list items and photo captions
(credits included) in place, separated by blank lines. Gold actors and reference summaries were
written by hand (see README.md beside this file).

Usage: python gv_to_text.py N.json [...] > texts.jsonl
"""

import html
import json
import re
import sys
from html.parser import HTMLParser

BLOCKS = {"p", "div", "blockquote", "li", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.current: list[str] = []
        self.skip = 0

    def _flush(self) -> None:
        text = " ".join("".join(self.current).split())
        if text:
            self.blocks.append(text)
        self.current = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in BLOCKS:
            self._flush()
        elif tag == "br":
            self.current.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1
        elif tag in BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self.skip:
            self.current.append(data)

    def close(self):
        super().close()
        self._flush()


def body_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return "\n\n".join(parser.blocks)


def convert(path: str) -> dict:
    story = json.load(open(path, encoding="utf-8"))
    page = story["content"]
    url = re.search(r'href="([^"]+)" rel="bookmark"', page).group(1)
    byline = re.search(r'<div class="post-byline-block">(.*?)</div>', page, re.S).group(1)
    dateline, author = (" ".join(html.unescape(re.sub(r"<[^>]+>", " ", part)).split())
                        for part in re.findall(r"<h[34]>(.*?)</h[34]>", byline, re.S)[:2])
    dateline = re.sub(r" ,", ",", dateline)
    slug = url.rstrip("/").rsplit("/", 1)[1]
    return {
        "id": "GV_" + slug,
        "title": html.unescape(story["title"]),
        "text": "\n\n".join([dateline, author, body_text(story["description"])]),
        "source_url": url,
        # publish_date is in the crawler's local time zone; the permalink carries the page's date.
        "date": "-".join(re.search(r"/(\d{4})/(\d{2})/(\d{2})/", url).groups()),
        "licence": "CC BY 3.0, Global Voices (https://globalvoices.org/about/global-voices-attribution-policy/); "
                   "page copy via Media Cloud test fixtures (github.com/mediacloud/backend)",
    }


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(convert(name), ensure_ascii=False))
