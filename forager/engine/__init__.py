"""The edge to the container engine: the Docker adapter (`docker_engine`) and the process helpers every layer
may use (`processes`). A leaf: it imports nothing else of forager, and this file imports neither, so the store
can use `processes` without loading Docker."""
