"""The ingest stage: articles in from files, URLs, feeds and the sources API, clean and deduplicated.

fetch.py     the one safe HTTP fetch (public addresses only, size and time limits)
feeds.py     RSS/Atom/JSON feeds: polling, conditional requests, entries to articles
cleaning.py  bytes to text: encodings, HTML to text, whitespace and control characters
dedup.py     near-duplicate detection (MinHash/LSH) and story clusters
articles.py  one article in: extract, clean, hash, store, dedupe, queue its summary
"""
