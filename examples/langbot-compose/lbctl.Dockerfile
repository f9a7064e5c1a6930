# lbctl with the plugins' packages and their dependency wheels baked in, for the compose file beside it: its
# `wheelhouse` service serves the wheels to LangBot's plugin runtime, its `lbctl` service provisions LangBot.
# Built by `docker compose build` (context: the repository root, which .dockerignore keeps free of .env files,
# data/, virtualenvs and caches).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# The Python index for lbctl itself and for the plugins' dependencies (pip reads PIP_INDEX_URL).
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_NO_CACHE_DIR=1
COPY . /src
RUN pip install --no-cache-dir /src
COPY examples/ /etc/lbctl/

# The marketplace the packages come from (lbctl reads LBCTL_INDEX_URL): the one LangBot uses (SPACE__URL).
ARG LBCTL_INDEX_URL=https://space.langbot.app
# The Python of the image that runs the plugins, not this image's: LangBot 4.11.2's image is python:3.12.7-slim.
# Compiled dependencies are wheels for one interpreter; LangBot's runtime cannot use wheels made for another.
# LANGBOT_PLATFORM (a wheel platform tag, e.g. manylinux2014_aarch64) when LangBot runs on another platform.
ARG LANGBOT_PYTHON=3.12
ARG LANGBOT_PLATFORM=
# Every plugin of plugins.toml and, as wheels, its requirements: the marketplace and the Python index are used
# here, at build time. At `up`, LangBot's runtime downloads the marketplace plugins itself (from SPACE__URL) and
# installs their dependencies from the wheelhouse service only.
RUN lbctl download langbot-team/GoogleSearch==0.1.0 /etc/lbctl/lbctl-examples-dice-0.1.0.lbpkg \
        -d /opt/wheelhouse --with-deps --python-version "$LANGBOT_PYTHON" \
        ${LANGBOT_PLATFORM:+--platform "$LANGBOT_PLATFORM"}
