"""Rebuild the 2019-2020 Wikinews texts of real_news.jsonl (how those records were made).

The texts come from English Wikinews (CC BY 2.5, © Wikinews contributors), as scraped into
https://github.com/vanatteveldt/wikinews (data/wikinews_2019.csv and data/wikinews_2020.csv:
url, date, title, text; the scraper keeps the dateline and the body paragraphs, not the photo
captions or the "Sources" list). Paragraphs are separated by one blank line and trailing
whitespace is dropped; nothing else is changed. Gold actors and reference summaries were written
by hand (see README.md beside this file).

Usage: python wikinews_csv_to_text.py wikinews_2019.csv "Exact title" [...] > texts.jsonl
"""

import csv
import json
import re
import sys


def record(row: dict) -> dict:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", row["text"])]
    slug = re.sub(r"[^a-z0-9]+", "_", row["title"].lower()).strip("_")
    return {
        "id": "WN_" + "_".join(slug.split("_")[:5]),
        "title": row["title"],
        "text": "\n\n".join(p for p in paragraphs if p),
        "source_url": re.sub(r"^https://en\.wikinews\.org//", "https://en.wikinews.org/", row["url"]),
        "date": row["date"],
        "licence": "CC BY 2.5, Wikinews (https://en.wikinews.org/wiki/Wikinews:Copyright); "
                   "text via github.com/vanatteveldt/wikinews",
    }


if __name__ == "__main__":
    csv.field_size_limit(10**8)
    rows = {row["title"]: row for row in csv.DictReader(open(sys.argv[1], encoding="utf-8"))}
    for title in sys.argv[2:]:
        print(json.dumps(record(rows[title]), ensure_ascii=False))
