"""Feed bodies for the feed tests: article-length text and an RSS 2.0 document around given items."""

PARA = ("Engineers at the Riverton port said on Wednesday that the new cranes had doubled the number of containers "
        "handled each hour, and that ships now wait less than a day to unload.")


def text(seed: str, n: int = 5) -> str:
    return " ".join(f"{PARA} {seed} fact {i}." for i in range(n))


def rss2(items: list[dict]) -> bytes:
    body = "".join(
        f"<item>{'<title>' + i['title'] + '</title>' if i.get('title') else ''}"
        f"{'<link>' + i['link'] + '</link>' if i.get('link') else ''}"
        f"{'<guid>' + i['guid'] + '</guid>' if i.get('guid') else ''}"
        f"{'<pubDate>' + i['date'] + '</pubDate>' if i.get('date') else ''}"
        f"{'<description><![CDATA[' + i['html'] + ']]></description>' if i.get('html') else ''}</item>"
        for i in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Port News</title>'
            f"<link>https://port.example/</link><description>d</description>{body}</channel></rss>").encode()


XML = {"Content-Type": "application/rss+xml; charset=utf-8"}
