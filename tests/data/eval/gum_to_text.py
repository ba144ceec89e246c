"""Rebuild the article text of real_news.jsonl from the GUM corpus (how the set was made).

GUM (https://github.com/amir-zeldes/gum) ships Wikinews news stories and interviews as CoNLL-U
with the original sentence text (`# text =`) and the page layout (`# newpar_block =`: heading,
paragraph, figure caption, interview turn). This script lays each document out as a scraped news
page would read: paragraphs separated by blank lines, photo captions and the dateline kept in
place (they are real-world noise the engine must ignore), interview turns prefixed by the
speaker's name. Gold actors and reference summaries are not taken from GUM: they were written by
hand for this set (see README.md beside this file).

Usage: python gum_to_text.py GUM_news_x.conllu [...] > texts.jsonl
"""

import json
import re
import sys


def _speaker(block: str) -> str | None:
    match = re.search(r'sp who:::"#([^"]+)"', block)
    if not match:
        return None
    # "#DavidShankbone" -> "David Shankbone"; the page prints the speaker's name before each turn.
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", match.group(1))
    return re.sub(r"\bMc ", "Mc", spaced)


def convert(path: str) -> dict:
    meta: dict[str, str] = {}
    paragraphs: list[list[str]] = []
    kinds: list[str] = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("# meta::"):
            key, _, value = line[len("# meta::"):].partition(" = ")
            meta[key.strip()] = value.strip()
        elif line.startswith("# newpar_block = "):
            block = line.split(" = ", 1)[1].strip()
            kind = block.split()[0]
            paragraphs.append([])
            kinds.append(kind)
            if speaker := _speaker(block):
                paragraphs[-1].append(f"{speaker}:")
        elif line.startswith("# newpar") and not line.startswith("# newpar_block"):
            continue
        elif line.startswith("# text = "):
            if not paragraphs:
                paragraphs.append([])
                kinds.append("p")
            paragraphs[-1].append(line[len("# text = "):].strip())
    # The first heading is the title; later headings ("Sources", section heads) stay in the text.
    body = []
    title_taken = False
    for kind, sentences in zip(kinds, paragraphs, strict=True):
        if kind == "head" and not title_taken:
            title_taken = True
            continue
        if sentences:
            body.append(" ".join(sentences))
    doc_id = open(path, encoding="utf-8").readline().split("=", 1)[1].strip()
    return {
        "id": doc_id,
        "title": meta.get("title", ""),
        "text": "\n\n".join(body),
        "source_url": meta.get("sourceURL", ""),
        "date": meta.get("dateCreated", ""),
        "licence": "CC BY 2.5 (Wikinews), via the GUM corpus",
    }


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(json.dumps(convert(name), ensure_ascii=False))
