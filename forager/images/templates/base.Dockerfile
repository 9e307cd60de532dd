# forager base layer: an OS with Python ${python}, git and a virtualenv. Needs no network.
# Rendered by forager/build/render.py; ${base_image} is FORAGER_BASE_IMAGE with {python} filled in.
FROM ${base_image}
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$$PATH
# The official python images have no git; the offline bootstrap base already has it.
RUN command -v git >/dev/null || (apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*)
RUN python3 -m venv /opt/venv && git config --system user.email forager@localhost \
    && git config --system user.name forager && git config --system --add safe.directory '*'
