FROM python:3.11-slim
# Static files are collected at build time into /app/static (outside the /data volume, so a mount
# cannot hide them); WhiteNoise serves them under gunicorn. `digest screenshot` is not in the image
# (no Playwright/Chromium): it says so in one line and points to `digest preview`.
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NEWSDIGEST_VAR_DIR=/data NEWSDIGEST_STATIC_ROOT=/app/static
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY templates ./templates
COPY prompts ./prompts
RUN pip install -e . \
    && SECRET_KEY=collectstatic-only NEWSDIGEST_VAR_DIR=/tmp/build newsdigest collectstatic --noinput -v0 \
    && rm -rf /tmp/build \
    && useradd --create-home newsdigest && mkdir -p /data && chown newsdigest /data
USER newsdigest
EXPOSE 8000
CMD ["gunicorn", "worker.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
