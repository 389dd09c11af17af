# The llmmetrics demo app: `llmmetrics demo` serving /metrics and calling its embedded fake LLM endpoint
# for both SDKs (the anthropic extra), or the real OpenAI API when OPENAI_API_KEY is set, exporting trace
# records to Loki.
FROM python:3.12.8-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY llmmetrics ./llmmetrics
RUN pip install '.[anthropic,report]' \
    && useradd --system --uid 10001 --home-dir /app llmmetrics \
    && mkdir -p /app/data \
    && chown llmmetrics /app/data

USER llmmetrics
WORKDIR /app/data
EXPOSE 8000
CMD ["llmmetrics", "demo", "--host", "0.0.0.0", "--port", "8000"]
