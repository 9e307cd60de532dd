# The forager worker itself (used by compose.yaml): talks to the host's Docker engine through its socket.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/forager
COPY pyproject.toml README.md ./
COPY forager ./forager
COPY images ./images
# editable: the Dockerfile templates are read from images/ beside the package
RUN pip install --no-cache-dir -e .
