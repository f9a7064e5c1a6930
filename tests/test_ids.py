"""Did-you-mean for plugin ids as people type them: full ids and bare names alike (issue 19)."""

from __future__ import annotations

import pytest

from conftest import FIXTURE_ID
from lbctl.ids import suggestion


@pytest.mark.parametrize("typed", ["helo", "hello2", "Hello", "lbctl-tests/helo", "acme/hello"])
@pytest.mark.parametrize("command", [("show",), ("config", "show"), ("uninstall",), ("config", "get")])
def test_a_typo_in_a_bare_name_or_a_full_id_gets_a_did_you_mean(lbctl, fixture_lbpkg, typed, command):
    assert lbctl("install", fixture_lbpkg).exit_code == 0
    args = (*command, typed, "greeting") if command == ("config", "get") else (*command, typed)

    result = lbctl(*args)

    assert result.exit_code == 5, result.output
    assert result.stderr == f"error: {typed} is not installed\nhint: Did you mean {FIXTURE_ID}?\n"


def test_a_name_nothing_is_close_to_points_at_list(lbctl, fixture_lbpkg):
    assert lbctl("install", fixture_lbpkg).exit_code == 0

    assert lbctl("show", "zzz").stderr == "error: zzz is not installed\nhint: Run `lbctl list` to see what is.\n"


def test_a_bare_name_several_plugins_have_names_them_all():
    assert suggestion("dice", ["b/dice", "a/dice", "c/echo"]) == "Did you mean a/dice or b/dice?"
    assert suggestion("dcie", ["b/dice", "a/dice", "c/echo"]) == "Did you mean a/dice or b/dice?"
    assert suggestion("acme/ecko", ["acme/echo", "other/echo"]) == "Did you mean acme/echo?"
    assert suggestion("instal", ["install", "inspect", "list"]) == "Did you mean install?"
    assert suggestion("zzz", ["acme/echo"]) is None
