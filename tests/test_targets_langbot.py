"""Naming targets against the real LangBot 4.11.2 of the suite (spec §8): whose key is sent, what `target show`
says without one, and label selectors over several named targets of one real instance."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.langbot

WRONG = "lbk_key_of_another_instance"


@pytest.fixture
def server(langbot_server):
    return langbot_server[0]


def login(lbctl, name: str, key: str) -> None:
    run = lbctl("target", "login", name, input=key + "\n")
    assert run.exit_code == 0, run.output


def test_an_exported_generic_key_never_overrides_a_targets_stored_login(lbctl, server, monkeypatch):
    """The fleet case: LANGBOT_API_KEY holds one instance's key; prod has its own stored login."""
    assert lbctl("target", "add", "prod", server.url).exit_code == 0
    login(lbctl, "prod", server.api_key)
    monkeypatch.setenv("LANGBOT_API_KEY", WRONG)
    monkeypatch.setenv("LBCTL_API_KEY", WRONG)

    run = lbctl("--target", "prod", "list", "--json")

    assert run.exit_code == 0, run.output
    shown = lbctl("target", "show", "prod", "--json").json["data"]["target"]
    assert shown["authenticated"] is True and shown["api_key"] == "target login"
    bare = lbctl("--target", server.url, "list", "--json")  # a bare URL has no key of its own: the generic one
    assert bare.exit_code == 3 and WRONG not in bare.stdout


def test_each_target_of_a_fleet_sends_its_own_key(lbctl, server, monkeypatch):
    for name in ("good", "revoked"):
        assert lbctl("target", "add", name, server.url).exit_code == 0
    login(lbctl, "good", server.api_key)
    login(lbctl, "revoked", WRONG)
    monkeypatch.setenv("LANGBOT_API_KEY", server.api_key)  # would make both work if it came first

    run = lbctl("--target", "good,revoked", "list", "--json")

    by_name = {t["target"]: t for t in run.json["data"]["targets"]}
    assert (by_name["good"]["exit_code"], by_name["revoked"]["exit_code"]) == (0, 3), run.output
    assert run.exit_code == 3 and WRONG not in run.stdout


def test_the_api_key_env_variable_comes_before_the_stored_login(lbctl, server, monkeypatch):
    assert lbctl("target", "add", "prod", server.url, "--api-key-env", "PROD_KEY").exit_code == 0
    login(lbctl, "prod", WRONG)
    monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
    assert lbctl("--target", "prod", "list").exit_code == 3  # its own (stored) key, not the generic one
    monkeypatch.setenv("PROD_KEY", server.api_key)
    assert lbctl("--target", "prod", "list").exit_code == 0
    assert lbctl("target", "show", "prod", "--json").json["data"]["target"]["api_key"] == "$PROD_KEY"


def test_target_show_without_a_key_says_so_once_with_the_fix(lbctl, server):
    assert lbctl("target", "add", "prod", server.url).exit_code == 0

    run = lbctl("target", "show", "prod")

    assert run.exit_code == 3, run.output
    assert "Reachable:     yes" in run.stdout and "Authenticated: no (no API key)" in run.stdout
    errors = [line for line in run.stderr.splitlines() if line]
    assert len(errors) == 1 and "No API key for prod" in errors[0] and "lbctl target login prod" in errors[0], \
        run.output
    doctor = lbctl("--target", "prod", "doctor", "--json").json["data"]["checks"]
    assert [c["detail"] for c in doctor if c["name"] == "runtime"] == ["not checked: not authenticated"]


def test_a_selector_works_on_every_labelled_target_of_a_real_instance(lbctl, server, monkeypatch):
    monkeypatch.setenv("LBCTL_API_KEY", server.api_key)
    for name, labels in (("p1", ["env=prod", "region=eu"]), ("p2", ["env=prod", "region=us"]),
                         ("s1", ["env=staging", "region=eu"])):
        assert lbctl("target", "add", name, server.url, *[f for lb in labels for f in ("--label", lb)]).exit_code == 0

    run = lbctl("--target", "env=prod", "list", "--json")

    assert run.exit_code == 0, run.output
    assert [(t["target"], t["status"]) for t in run.json["data"]["targets"]] == [("p1", "success"), ("p2", "success")]
    one = lbctl("--target", "region=eu,env=staging", "target", "show", "--json")
    assert one.exit_code == 0 and one.json["data"]["target"]["name"] == "s1"
    assert one.json["data"]["target"]["labels"] == {"env": "staging", "region": "eu"}
    assert lbctl("--target", "env=qa", "list").exit_code == 5
