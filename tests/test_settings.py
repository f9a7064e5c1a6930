"""Global settings (spec §3): flag, then environment variable, then the user config file, then the default."""

from __future__ import annotations

from conftest import FIXTURE_ID


def test_config_path_prints_the_user_config_file(lbctl, tmp_path):
    run = lbctl("config-path")
    assert run.exit_code == 0 and run.stdout.strip() == str(tmp_path / "config.toml")


def test_precedence_flag_env_file_default(lbctl, tmp_path, monkeypatch, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("list").stdout.startswith(FIXTURE_ID)  # default output: plain lines when piped

    (tmp_path / "config.toml").write_text('output = "json"\n')
    assert lbctl("list").json["data"]["plugins"][0]["id"] == FIXTURE_ID  # the file

    monkeypatch.setenv("LBCTL_OUTPUT", "table")
    assert lbctl("list").stdout.startswith(FIXTURE_ID)  # the variable beats the file

    assert lbctl("list", "-o", "json").json["command"] == "list"  # the flag beats the variable


def test_config_file_keys_are_named_like_the_long_options(lbctl, tmp_path, monkeypatch, fixture_lbpkg):
    monkeypatch.delenv("LBCTL_HOME")
    other = tmp_path / "from-config"
    (tmp_path / "config.toml").write_text(f'home = "{other}"\nlock-timeout = 2\n')
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert (other / "state.json").exists()


def test_broken_config_file_is_one_clear_error(lbctl, tmp_path):
    (tmp_path / "config.toml").write_text("output = [\n")
    run = lbctl("list", "--json")
    assert run.exit_code == 2
    assert "config file" in run.json["errors"][0]["message"]


def test_bad_output_value_is_bad_input(lbctl):
    run = lbctl("list", "-o", "yaml")
    assert run.exit_code == 2 and "output format" in run.stderr


def test_lbctl_yes_answers_confirmations(lbctl, monkeypatch, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    assert lbctl("uninstall", FIXTURE_ID, "--purge").exit_code == 2  # not a terminal, no --yes
    monkeypatch.setenv("LBCTL_YES", "1")
    run = lbctl("uninstall", FIXTURE_ID, "--purge", "--json")
    assert run.exit_code == 0, run.output
    assert [a["action"] for a in run.json["data"]["actions"]] == ["uninstall", "purge"]


def test_quiet_drops_narration_but_not_data(lbctl, tmp_path, fixture_lbpkg):
    empty = tmp_path / "plugins.toml"
    empty.write_text("")
    assert lbctl("sync", empty).stderr == "Nothing to do.\n"
    assert lbctl("sync", empty, "-q").stderr == ""
    run = lbctl("install", fixture_lbpkg, "-q", "--no-progress")
    assert run.exit_code == 0 and run.stdout.startswith("installed ") and run.stderr == ""
