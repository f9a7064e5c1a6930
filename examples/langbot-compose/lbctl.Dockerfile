# lbctl with the plugins' packages and dependency wheels baked in, for the compose file beside it.
FROM python:3.11-slim

COPY . /src
RUN pip install --no-cache-dir /src
COPY examples/ /etc/lbctl/

# Every plugin of plugins.toml and its requirements, as wheels, at build time (the only network step); the
# wheelhouse service serves /opt/wheelhouse/wheels to LangBot's runtime.
RUN lbctl download langbot-team/GoogleSearch==0.1.0 /etc/lbctl/lbctl-examples-dice-0.1.0.lbpkg \
        -d /opt/wheelhouse --with-deps
