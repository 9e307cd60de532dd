# The forager worker (compose.yaml's `worker`): builds images and runs sandboxes on the host's Docker engine
# through its mounted socket, keeps its store in PostgreSQL, talks to vLLM over HTTP. Needs a registry
# that has python:3.11-slim (Docker Hub or a mirror of it).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/forager
COPY pyproject.toml README.md ./
COPY forager ./forager
# a plain install: the Dockerfile templates are package data (forager/images/templates/); postgres: the store's driver
RUN pip install --no-cache-dir '.[postgres]'
WORKDIR /work
CMD ["forager", "--help"]
