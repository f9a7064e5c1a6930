"""Naming targets and keeping their secrets (spec §8 "Naming a target", "Every command and `--target`", labels;
§4 freeze): the key order and its validation, no credentials in URLs, a 0600 freeze with secrets, the user
config and credentials file under a lock, every command honouring or refusing `--target`, and labels.

The real LangBot checks of the same behaviours are in tests/test_targets_langbot.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURE_ID, REPO, tree_snapshot
from langbot_harness import free_port
from pkgfactory import make_lbpkg

SECRET = "pw-Zq81s3cr3t"


def down_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def config(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


def credentials(tmp_path: Path) -> Path:
    return tmp_path / "credentials.toml"


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


# --- 1. the key order ------------------------------------------------------------------------------------


def key_from(lbctl, name: str) -> str:
    """Where `target show` says the key of `name` comes from (the target is down: only the source matters)."""
    run = lbctl("target", "show", name, "--json")
    return run.json["data"]["target"]["api_key"]


def test_a_named_targets_own_key_comes_before_the_generic_variables(lbctl, tmp_path, monkeypatch):
    for name in ("own", "bare", "named"):
        assert lbctl("target", "add", name, down_url()).exit_code == 0
    assert lbctl("target", "add", "byvar", down_url(), "--api-key-env", "BYVAR_KEY").exit_code == 0
    assert lbctl("target", "login", "own", input="lbk_own\n").exit_code == 0
    assert lbctl("target", "login", "byvar", input="lbk_stored\n").exit_code == 0
    monkeypatch.setenv("LANGBOT_API_KEY", "lbk_other_instance")

    assert key_from(lbctl, "own") == "target login"
    assert key_from(lbctl, "byvar") == "target login"
    monkeypatch.setenv("BYVAR_KEY", "lbk_byvar")
    assert key_from(lbctl, "byvar") == "$BYVAR_KEY"
    assert key_from(lbctl, "named") == "$LANGBOT_API_KEY"
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_lbctl")
    assert key_from(lbctl, "named") == "$LBCTL_API_KEY"
    assert key_from(lbctl, "own") == "target login"
    listed = {t["name"]: t["api_key"] for t in lbctl("target", "list", "--json").json["data"]["targets"]}
    assert listed == {"local": None, "own": "target login", "byvar": "$BYVAR_KEY",
                      "bare": "$LBCTL_API_KEY", "named": "$LBCTL_API_KEY"}


def test_a_target_naming_its_own_variable_never_gets_another_instances_key(lbctl, monkeypatch):
    assert lbctl("target", "add", "eu", down_url(), "--api-key-env", "EU_KEY").exit_code == 0
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_of_another_instance")

    run = lbctl("--target", "eu", "list", "--json")

    assert run.exit_code == 3, run.output
    message = run.json["errors"][0]["message"]
    assert "$EU_KEY is not set" in message and "lbctl target login eu" in message
    assert key_from(lbctl, "eu") == "$EU_KEY (not set)"


# --- 2. keys validated where they are read ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["lbk_KEY\r", "lbk_KÉY", "lbk KEY", "lbk_\x1b[31m", "k" * 5000])
def test_an_unusable_key_in_the_environment_is_exit_3_naming_its_source_never_the_key(lbctl, monkeypatch, key):
    monkeypatch.setenv("LBCTL_API_KEY", key)
    for args in (("--target", down_url(), "list", "--json"), ("--target", down_url(), "list")):
        run = lbctl(*args)
        assert run.exit_code == 3, run.output
        assert "$LBCTL_API_KEY" in run.stdout + run.stderr
        assert key.strip() not in run.stdout + run.stderr and "KÉY" not in run.stdout + run.stderr


@pytest.mark.parametrize("key", ["lbk_KÉY", "lbk KEY", "lbk_\x07bell"])
def test_target_login_refuses_an_unusable_key_and_stores_nothing(lbctl, tmp_path, key):
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0

    run = lbctl("target", "login", "prod", "--json", input=key + "\n")

    assert run.exit_code == 3, run.output
    assert key not in run.stdout + run.stderr and "target login" in run.json["errors"][0]["message"]
    assert not credentials(tmp_path).exists()


def test_an_unusable_key_in_the_credentials_file_is_exit_3_naming_the_file(lbctl, tmp_path):
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0
    credentials(tmp_path).write_text('[prod]\napi_key = "lbk_\\u00e9t\\u00e9"\n')
    credentials(tmp_path).chmod(0o600)

    run = lbctl("--target", "prod", "list", "--json")

    assert run.exit_code == 3, run.output
    assert str(credentials(tmp_path)) in run.json["errors"][0]["message"] and "été" not in run.stdout
    shown = lbctl("target", "list", "--json").json["data"]["targets"][1]["api_key"]
    assert shown.startswith("unusable key in ") and "été" not in shown


def test_a_key_from_target_login_is_stripped_of_surrounding_whitespace(lbctl, tmp_path):
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0
    assert lbctl("target", "login", "prod", input="  lbk_key \r\n").exit_code == 0
    assert 'api_key = "lbk_key"' in credentials(tmp_path).read_text()
    assert stat.S_IMODE(credentials(tmp_path).stat().st_mode) == 0o600


# --- 3. no credentials in URLs ---------------------------------------------------------------------------


def test_target_add_refuses_a_url_with_credentials_and_never_prints_them(lbctl, tmp_path):
    for url in (f"http://admin:{SECRET}@127.0.0.1:5300", f"https://{SECRET}@lb.example/", f"ftp://u:{SECRET}@x"):
        run = lbctl("target", "add", "c", url)
        assert run.exit_code == 2, run.output
        assert SECRET not in run.stdout + run.stderr and "target login" in run.stderr
    assert not config(tmp_path).exists()
    assert lbctl("target", "add", "c", "http://127.0.0.1:5300/path@v2").exit_code == 0  # an @ in the path is fine


@pytest.mark.parametrize("args", [
    ("--target", f"http://admin:{SECRET}@127.0.0.1:5300", "list"),
    ("--index-url", f"http://admin:{SECRET}@127.0.0.1:5300", "market", "search", "x"),
    ("--index-url", f"http://admin:{SECRET}@127.0.0.1:5300", "--json", "install", "a/b"),
])
def test_a_target_or_index_url_with_credentials_is_exit_2_without_printing_them(lbctl, args):
    run = lbctl(*args)
    assert run.exit_code == 2, run.output
    assert SECRET not in run.stdout + run.stderr


def test_a_config_file_url_with_credentials_is_masked_and_refused(lbctl, tmp_path, monkeypatch):
    config(tmp_path).write_text(f'[targets.old]\nurl = "http://admin:{SECRET}@127.0.0.1:5300"\n')
    listed = lbctl("target", "list")
    assert listed.exit_code == 0 and SECRET not in listed.stdout and "holds credentials" in listed.stdout
    run = lbctl("--target", "old", "list")
    assert run.exit_code == 2 and SECRET not in run.stdout + run.stderr
    monkeypatch.setenv("LBCTL_INDEX_URL", f"http://u:{SECRET}@127.0.0.1:1")
    run = lbctl("list")
    assert run.exit_code == 2 and SECRET not in run.stdout + run.stderr


# --- 4. freeze --include-secrets > FILE is 0600 ----------------------------------------------------------


@pytest.mark.parametrize("command, cases", [
    (["freeze"], [("secrets.toml", ["--include-secrets", "--with-config"]),
                  ("secrets.json", ["--include-secrets", "--with-config", "--json"]), ("plain.toml", ["--with-config"])]),
    (["config", "export", "acme/vault"], [("secret.toml", ["--include-secrets"]), ("plain.toml", [])]),
])
def test_secrets_into_a_redirected_file_make_it_owner_only_first(lbctl, tmp_path, command, cases):
    schema = [{"name": "token", "type": "string", "required": False, "default": ""}]
    pkg = tmp_path / "vault.lbpkg"
    pkg.write_bytes(make_lbpkg("acme", "vault", "1.0.0", config=schema))
    assert lbctl("install", pkg).exit_code == 0
    assert lbctl("config", "set", "acme/vault", f"token={SECRET}").exit_code == 0
    old = os.umask(0o022)
    try:
        for name, args in cases:
            out = tmp_path / name
            with open(out, "w") as stdout:
                assert stat.S_IMODE(os.fstat(stdout.fileno()).st_mode) == 0o644
                done = subprocess.run([sys.executable, "-m", "lbctl", *command, *args], stdout=stdout,
                                      stderr=subprocess.PIPE, env=subprocess_env(), timeout=60)
            assert done.returncode == 0, done.stderr
            mode = stat.S_IMODE(out.stat().st_mode)
            secret = "--include-secrets" in args
            assert (SECRET in out.read_text(), mode) == ((True, 0o600) if secret else (False, 0o644)), name
    finally:
        os.umask(old)
    piped = subprocess.run([sys.executable, "-m", "lbctl", *command, *cases[0][1]],
                           capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert piped.returncode == 0 and SECRET in piped.stdout  # a pipe is not a file: nothing to chmod


# --- 5. parallel target add / target login keep everything -----------------------------------------------


def test_forty_parallel_target_adds_and_logins_keep_every_target_and_key(tmp_path):
    """20 `target add` and 20 `target login` at once, as separate processes: each writes its own entry
    into the config or the credentials file; a read-modify-write without the lock loses most of them."""
    config(tmp_path).write_text("".join(f'[targets.l{i}]\nurl = "http://127.0.0.1:{5400 + i}"\n' for i in range(20)))
    env = subprocess_env()
    command = [sys.executable, "-m", "lbctl", "target"]
    procs = []
    for i in range(20):
        procs.append(subprocess.Popen([*command, "add", f"a{i}", f"http://127.0.0.1:{5300 + i}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        procs.append(subprocess.Popen([*command, "login", f"l{i}"], env=env, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        procs[-1].stdin.write(f"lbk_key_{i}\n".encode())
        procs[-1].stdin.close()
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert [code for code, _ in outcomes] == [0] * 40, outcomes

    from lbctl.tomlio import loads

    targets = loads(config(tmp_path).read_text())["targets"]
    keys = loads(credentials(tmp_path).read_text())
    assert sorted(targets) == sorted([f"a{i}" for i in range(20)] + [f"l{i}" for i in range(20)])
    assert {name: entry["api_key"] for name, entry in keys.items()} == {f"l{i}": f"lbk_key_{i}" for i in range(20)}
    assert stat.S_IMODE(credentials(tmp_path).stat().st_mode) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- 6. every command honours --target or refuses it -----------------------------------------------------

ACTS, REFUSES, IGNORES = "acts", "refuses", "ignores"
# Every command of the application: what it does when --target names a LangBot instance, and the arguments to try
# it with. ACTS: it works on that target (here: it reaches for it and finds it down, exit 7, or doctor's exit 1);
# REFUSES: exit 6 naming it, before any request; IGNORES: not about installed plugins (README "--target on every
# command"), works as without --target. None: not run (it would serve until stopped).
COMMANDS: dict[str, tuple[str, list[str] | None]] = {
    "install": (ACTS, ["{pkg}"]), "uninstall": (ACTS, ["hello"]), "remove": (ACTS, ["hello"]),
    "list": (ACTS, []), "ls": (ACTS, []), "show": (ACTS, ["hello"]), "inspect": (IGNORES, ["{pkg}"]),
    "enable": (REFUSES, ["hello"]), "disable": (REFUSES, ["hello"]), "outdated": (ACTS, []),
    "update": (ACTS, ["hello"]), "upgrade": (ACTS, ["--all"]), "download": (ACTS, [FIXTURE_ID, "-d", "{dir}"]),
    "pin": (ACTS, ["hello"]), "unpin": (ACTS, ["hello"]), "rollback": (ACTS, ["hello"]), "freeze": (ACTS, []),
    "sync": (ACTS, ["{file}"]), "verify": (REFUSES, []), "logs": (ACTS, ["hello"]), "restart": (ACTS, ["hello"]),
    "tools": (ACTS, []), "commands": (ACTS, []), "call-tool": (ACTS, ["hello", "echo_tool"]),
    "run-command": (ACTS, ["hello", "hi"]), "help": (IGNORES, ["exit-codes"]), "config-path": (IGNORES, []),
    "doctor": (ACTS, []), "completion": (IGNORES, ["bash"]),
    "market search": (ACTS, ["x"]), "market show": (ACTS, [FIXTURE_ID]),
    "config show": (ACTS, ["hello"]), "config get": (ACTS, ["hello", "greeting"]),
    "config set": (ACTS, ["hello", "greeting=hey"]), "config unset": (ACTS, ["hello", "greeting"]),
    "config edit": (ACTS, ["hello"]), "config export": (ACTS, ["hello"]), "config import": (ACTS, ["hello", "{file}"]),
    "cache dir": (IGNORES, []), "cache list": (IGNORES, []), "cache clear": (IGNORES, []),
    "runtime serve": (REFUSES, []), "runtime status": (REFUSES, []), "deps download": (REFUSES, ["-d", "{dir}"]),
    "index serve": (IGNORES, None),
    "target add": (IGNORES, ["other", "http://127.0.0.1:5300"]), "target list": (IGNORES, []),
    "target show": (ACTS, []), "target remove": (IGNORES, ["prod"]), "target use": (IGNORES, ["local"]),
    "target login": (IGNORES, ["prod"]), "target label": (IGNORES, ["prod", "env=prod"]),
}
# Spec §8: these act on installed plugins, so they may never ignore --target.
ABOUT_PLUGINS = ("list", "show", "config ", "freeze", "sync", "verify", "outdated", "update", "uninstall", "pin",
                 "rollback", "deps ", "doctor", "logs", "restart", "tools", "commands", "call-tool", "run-command",
                 "enable", "disable", "runtime ")


def registered_commands() -> set[str]:
    import typer

    from lbctl.cli.app import _register, app

    _register()
    found: set[str] = set()

    def walk(command, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            if getattr(sub, "commands", None) is not None:
                walk(sub, f"{prefix}{name} ")
            else:
                found.add(f"{prefix}{name}")

    walk(typer.main.get_command(app), "")
    return found


def test_the_table_covers_every_registered_command():
    found = registered_commands()
    assert set(COMMANDS) == found, (f"add to COMMANDS (and, if it ignores --target, to the README): "
                                    f"{sorted(found - set(COMMANDS))}; gone: {sorted(set(COMMANDS) - found)}")
    for name, (mode, _) in COMMANDS.items():
        if name.startswith(ABOUT_PLUGINS) or name in ("remove", "ls", "upgrade"):
            assert mode != IGNORES, f"{name} acts on installed plugins: it must honour --target or refuse it"


@pytest.fixture
def prod(lbctl, tmp_path, fixture_lbpkg, monkeypatch):
    """A local environment holding the test plugin (so an answer about it would succeed), and a target `prod`
    that is down; `{pkg}`, `{file}` and `{dir}` in arguments are the package, a plugins file and a directory."""
    assert lbctl("install", fixture_lbpkg, "--no-start").exit_code == 0
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(f'[[plugin]]\nid = "{FIXTURE_ID}"\n')
    return {"{pkg}": str(fixture_lbpkg), "{file}": str(plugins), "{dir}": str(tmp_path / "out")}


def _argv(name: str, args: list[str], values: dict) -> list[str]:
    return [*name.split(" "), *(values.get(a, a) for a in args)]


@pytest.mark.parametrize("name", sorted(n for n, (mode, _) in COMMANDS.items() if mode != IGNORES))
@pytest.mark.parametrize("how", [("--target", "prod"), ("--target", "env=prod")], ids=["name", "selector"])
def test_every_command_about_plugins_acts_on_the_named_target_or_refuses_it(lbctl, prod, home, name, how):
    mode, args = COMMANDS[name]
    if how[1] == "env=prod":
        assert lbctl("target", "label", "prod", "env=prod").exit_code == 0
    before = tree_snapshot(home)

    run = lbctl(*how, *_argv(name, args, prod), "--json", input="lbk_x\n")

    doc = run.json
    said = json.dumps(doc["errors"]) + json.dumps(doc["data"])
    assert "prod" in said, run.output
    if mode == REFUSES:
        assert run.exit_code == 6, run.output
        assert "prod" in doc["errors"][0]["message"]
    elif name == "doctor":
        assert run.exit_code == 1 and any(c["name"] == "reachable" and not c["ok"] for c in doc["data"]["checks"])
    else:
        assert run.exit_code == 7, run.output  # it reached for prod, which is down
    assert tree_snapshot(home) == before  # and did nothing locally instead


@pytest.mark.parametrize("name", sorted(n for n, (mode, args) in COMMANDS.items() if mode == IGNORES and args is not None))
def test_commands_not_about_installed_plugins_work_whatever_the_target(lbctl, prod, name):
    run = lbctl("--target", "prod", *_argv(name, COMMANDS[name][1], prod), input="lbk_x\n")
    assert run.exit_code == 0, run.output


def test_the_readme_says_which_commands_ignore_target():
    readme = (REPO / "README.md").read_text()
    start = readme.index("- **`--target` on every command**")
    paragraph = readme[start:readme.index("\n- ", start + 1)]
    for name, (mode, _) in COMMANDS.items():
        words = name.split(" ")
        if mode in (IGNORES, REFUSES):
            assert f"`{words[0]}" in paragraph and words[-1] in paragraph, f"README: say what {name} does with --target"


def test_verify_and_deps_download_refuse_another_target_before_reading_anything(lbctl, prod):
    for args in (("verify",), ("deps", "download", "-d", prod["{dir}"])):
        run = lbctl("--target", "local,prod", *args)
        assert run.exit_code == 6 and "cannot act on prod" in run.stderr, run.output
        assert lbctl("--target", "local", *args).exit_code == 0


# --- 7. labels and selectors -----------------------------------------------------------------------------


def fleet(lbctl) -> dict[str, str]:
    urls = {name: down_url() for name in ("eu1", "eu2", "us1", "dev")}
    labels = {"eu1": ["env=prod", "region=eu"], "eu2": ["env=prod", "region=eu"], "us1": ["env=prod", "region=us"],
              "dev": ["env=dev", "region=eu"]}
    for name, url in urls.items():
        flags = [f for label in labels[name] for f in ("--label", label)]
        assert lbctl("target", "add", name, url, *flags).exit_code == 0
    return urls


def selected(lbctl, *how: str) -> list[str]:
    """The targets a fleet `list` worked on (each is down: exit 7)."""
    run = lbctl(*how, "list", "--json")
    assert run.exit_code == 7, run.output
    return [t["target"] for t in run.json["data"]["targets"]]


def test_a_selector_picks_every_target_whose_labels_all_match(lbctl, monkeypatch):
    fleet(lbctl)
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    assert selected(lbctl, "--target", "env=prod") == ["eu1", "eu2", "us1"]
    assert selected(lbctl, "--target", "env=prod,region=eu") == ["eu1", "eu2"]
    assert selected(lbctl, "--target", "region=eu", "--target", "us1") == ["dev", "eu1", "eu2", "us1"]
    assert selected(lbctl, "--target", "eu1,us1") == ["eu1", "us1"]
    monkeypatch.setenv("LBCTL_TARGET", "env=prod,region=us")
    run = lbctl("list", "--json")
    assert run.exit_code == 7 and "us1" in run.json["errors"][0]["message"]  # one target: its error, no fleet


def test_a_selector_matching_nothing_is_exit_5_and_a_bad_one_exit_2(lbctl):
    fleet(lbctl)
    nothing = lbctl("--target", "env=staging", "list", "--json")
    assert nothing.exit_code == 5 and "env=staging" in nothing.json["errors"][0]["message"]
    assert lbctl("--target", "env=prod,region=mars", "list").exit_code == 5
    for bad in ("env=prod,eu1", "env=-x", "=prod", "env=a b"):
        run = lbctl("--target", bad, "list")
        assert run.exit_code == 2, (bad, run.output)


def test_target_list_shows_labels_and_target_label_sets_and_removes_them(lbctl, tmp_path):
    fleet(lbctl)
    table = lbctl("target", "list")
    assert "LABELS" in table.stdout and "env=prod,region=eu" in table.stdout
    assert lbctl("target", "label", "dev", "env=staging", "tier=web").stdout == \
        "labels of dev: env=staging, region=eu, tier=web\n"
    run = lbctl("target", "label", "dev", "region-", "tier-", "--json")
    assert run.json["data"]["labels"] == {"env": "staging"}
    assert lbctl("target", "label", "dev", "env-").stdout == "labels of dev: no labels\n"
    assert "[targets.dev.labels]" not in config(tmp_path).read_text()
    before = config(tmp_path).read_bytes()
    assert lbctl("target", "label", "dev", "bad key=x").exit_code == 2
    assert lbctl("target", "label", "nope", "a=b").exit_code == 5
    assert config(tmp_path).read_bytes() == before


def test_a_selector_with_a_one_target_command_takes_its_single_match_or_says_how_many(lbctl, monkeypatch):
    fleet(lbctl)
    monkeypatch.setenv("LBCTL_API_KEY", "lbk_test")
    one = lbctl("--target", "region=us", "show", "x", "--json")
    assert one.exit_code == 7 and "us1" in one.json["errors"][0]["message"]
    many = lbctl("--target", "env=prod", "show", "x")
    assert many.exit_code == 2 and "names 3 (eu1, eu2, us1)" in many.stderr


# --- 8. small things -------------------------------------------------------------------------------------


def test_target_add_says_added_updated_or_unchanged(lbctl, tmp_path):
    assert lbctl("target", "add", "prod", "http://127.0.0.1:5300").stdout == "added target prod (http://127.0.0.1:5300)\n"
    assert lbctl("target", "add", "prod", "http://127.0.0.1:5300/").stdout == \
        "target prod is unchanged (http://127.0.0.1:5300)\n"
    run = lbctl("target", "add", "prod", "http://127.0.0.1:5301", "--json")
    assert run.json["data"]["change"] == "updated" and "updated target prod" in run.json["data"]["message"]
    assert lbctl("target", "add", "prod", "http://127.0.0.1:5301", "--label", "env=prod").stdout == \
        "updated target prod (http://127.0.0.1:5301): labels changed\n"


def test_an_empty_key_at_target_login_is_one_line_with_the_fix(lbctl):
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0
    run = lbctl("target", "login", "prod", input="\n")
    assert run.exit_code == 3 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "lbctl target login prod" in run.stderr, run.output


def test_an_unknown_target_name_is_exit_5_everywhere(lbctl):
    assert lbctl("target", "add", "prod", down_url()).exit_code == 0
    for args in (("-t", "prdo", "list"), ("--target", "prdo", "show", "x"), ("target", "use", "prdo"),
                 ("target", "show", "prdo"), ("target", "remove", "prdo"), ("target", "login", "prdo")):
        run = lbctl(*args, input="lbk_x\n")
        assert run.exit_code == 5, (args, run.output)


def test_a_fleet_reads_the_credentials_file_once_not_once_per_target(lbctl, tmp_path, monkeypatch):
    """1,000 named targets with stored logins: `target list` took 42 s when each target parsed the whole file."""
    from lbctl import userconfig

    config(tmp_path).write_text("".join(f'[targets.t{i}]\nurl = "http://127.0.0.1:{2000 + i}"\n' for i in range(300)))
    credentials(tmp_path).write_text("".join(f'[t{i}]\napi_key = "lbk_{i:040d}"\n' for i in range(300)))
    credentials(tmp_path).chmod(0o600)
    reads = []
    real_read = userconfig.read
    monkeypatch.setattr(userconfig, "read", lambda path: reads.append(path) or real_read(path))

    run = lbctl("target", "list", "--json")

    assert run.exit_code == 0 and {t["api_key"] for t in run.json["data"]["targets"][1:]} == {"target login"}
    assert reads.count(credentials(tmp_path)) <= 1, len(reads)


def test_target_remove_with_an_unreadable_credentials_file_removes_nothing(lbctl, tmp_path):
    """The login goes first: a broken credentials file stops `target remove` before the target is gone, so no key
    is left behind under a name that no longer exists."""
    assert lbctl("target", "add", "prod", "http://127.0.0.1:9").exit_code == 0
    assert lbctl("target", "login", "prod", input=f"{SECRET}\n").exit_code == 0
    os.mkfifo(tmp_path / "fifo")
    credentials(tmp_path).unlink()
    credentials(tmp_path).symlink_to(tmp_path / "fifo")

    run = lbctl("target", "remove", "prod")

    assert run.exit_code == 6, run.output
    assert "[targets.prod]" in config(tmp_path).read_text()
