FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NEWSDIGEST_VAR_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY templates ./templates
COPY prompts ./prompts
RUN pip install -e . && useradd --create-home newsdigest && mkdir -p /data && chown newsdigest /data
USER newsdigest
EXPOSE 8000
CMD ["gunicorn", "worker.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
