"""Config types as real plugins write them (issue 12 item 1) and the 1 MiB value limit (issue 11
item 11), through the real CLI: spec §4 "Configuration of plugins".

Four plugins of our own, built as real .lbpkg files, declare between them every config type that
real plugins use, spelled the way they spell it (`int`, `bool`, `number`, the selector aliases,
types lbctl does not know, an item with no type, defaults of another type than declared). Each
test drives freeze -> sync -> config export -> import -> edit over them.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import Run, tree_snapshot
from pkgfactory import make_lbpkg

LIMIT = 1024 * 1024

NUMBERS = "typesmith/numbers"
TEXTS = "typesmith/texts"
SELECTORS = "typesmith/selectors"
ODDITIES = "typesmith/oddities"

# The `spec.config` of each plugin, written as a plugin author writes manifest.yaml.
MANIFESTS = {
    NUMBERS: """
- {name: min_text_length, type: int, label: {en_US: Min length}, default: 4}
- {name: cooldown_seconds, type: int, required: false, default: 60}
- {name: timeout, type: int, default: "30"}
- {name: max_profile_traits, type: integer, default: 20}
- {name: temperature, type: float, default: 0.7}
- {name: top_p, type: number, default: 1}
- {name: weight, type: number}
- {name: enable_private, type: bool, default: true}
- {name: case_sensitive, type: bool, required: false, default: false}
- {name: silent_mode, type: boolean, default: false}
""",
    TEXTS: """
- {name: greeting, type: string, default: hi, required: true}
- {name: admin_id, type: string, default: '', required: true}
- {name: notes, type: text}
- {name: api_key, type: secret}
- name: language
  type: select
  default: zh_Hans
  options: [{name: en_US, label: {en_US: English}}, {name: zh_Hans, label: {en_US: Chinese}},
            {name: ja_JP, label: {en_US: Japanese}}]
- {name: voice, type: select, default: '', options: [{name: alloy}, {name: echo}]}
- {name: persona, type: select, allow_custom: true, options: [{name: plain}]}
- {name: trigger_words, type: "array[string]", default: []}
- {name: system_prompt, type: prompt-editor, default: [{role: system, content: You are kind.}]}
- {name: extra, type: json, default: {depth: 1}}
""",
    SELECTORS: """
- {name: model, type: llm-model-selector, default: '', required: true}
- {name: legacy_model, type: select-llm-model}
- {name: embedding, type: embedding-model-selector}
- {name: rerank, type: rerank-model-selector}
- {name: fallback, type: model-fallback-selector}
- {name: kb, type: knowledge-base-selector}
- {name: kbs, type: knowledge-base-multi-selector, default: []}
- {name: legacy_kbs, type: select-knowledge-bases}
- {name: bot, type: bot-selector}
- {name: peer, type: plugin-selector, scopes: [Tool]}
- {name: tools, type: tools-selector}
- {name: rich_tools, type: rich-tools-selector}
- {name: resources, type: resources-selector}
- {name: avatar, type: file, accept: image/*}
- {name: attachments, type: "array[file]"}
- {name: hook, type: webhook-url}
- {name: embed, type: embed-code}
- {name: login, type: qr-code-login}
- {name: export_link, type: download-link}
""",
    ODDITIES: """
- {name: colour, type: color-picker, default: '#ff0000'}
- {name: threshold, type: slider, default: 5}
- {name: ratio, type: range, default: 0.5}
- {name: toggle, type: switch, default: true}
- {name: chips, type: tag-list, default: [a, b]}
- {name: mapping, type: key-value, default: {x: '1', nested: {enabled: true}}}
- {name: rows, type: table-editor, default: [{name: a, size: 1}, {name: b, size: 2.5}]}
- {name: blob, type: something-new}
- {name: untyped, default: plain}
""",
}
SCHEMAS = {pid: yaml.safe_load(text) for pid, text in MANIFESTS.items()}

# What `lbctl install` stores: every declared default, exactly as declared.
DEFAULTS = {
    NUMBERS: {"min_text_length": 4, "cooldown_seconds": 60, "timeout": "30", "max_profile_traits": 20,
              "temperature": 0.7, "top_p": 1, "enable_private": True, "case_sensitive": False,
              "silent_mode": False},
    TEXTS: {"greeting": "hi", "admin_id": "", "language": "zh_Hans", "voice": "", "trigger_words": [],
            "system_prompt": [{"role": "system", "content": "You are kind."}], "extra": {"depth": 1}},
    SELECTORS: {"model": "", "kbs": []},
    ODDITIES: {"colour": "#ff0000", "threshold": 5, "ratio": 0.5, "toggle": True, "chips": ["a", "b"],
               "mapping": {"x": "1", "nested": {"enabled": True}},
               "rows": [{"name": "a", "size": 1}, {"name": "b", "size": 2.5}], "untyped": "plain"},
}

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
RESOURCES = [{"server": "fs", "uri": "file:///srv/doc.md"}]
# `config set` strings and the value each must be stored as (compared with its JSON type).
ASSIGNMENTS = {
    NUMBERS: [
        ("min_text_length", "8", 8), ("cooldown_seconds", "0", 0), ("timeout", "45", 45),
        ("max_profile_traits", " 25 ", 25), ("temperature", "1.25", 1.25), ("top_p", "1", 1.0),
        ("weight", "-2e3", -2000.0), ("enable_private", "false", False), ("case_sensitive", "yes", True),
        ("silent_mode", "1", True),
    ],
    TEXTS: [
        ("greeting", "hello, world", "hello, world"), ("admin_id", "10001", "10001"),
        ("notes", "line 1\nline 2", "line 1\nline 2"), ("api_key", "sk-typesmith-0001", "sk-typesmith-0001"),
        ("language", "ja_JP", "ja_JP"), ("voice", "echo", "echo"), ("persona", "pirate", "pirate"),
        ("trigger_words", "help, urgent", ["help", "urgent"]), ("system_prompt", json.dumps(PROMPT), PROMPT),
        ("extra", '{"depth": 2, "tags": ["a"], "on": true, "ratio": 0.5}',
         {"depth": 2, "tags": ["a"], "on": True, "ratio": 0.5}),
    ],
    SELECTORS: [
        ("model", "uuid-llm-1", "uuid-llm-1"), ("legacy_model", "uuid-llm-2", "uuid-llm-2"),
        ("embedding", "uuid-emb", "uuid-emb"), ("rerank", "uuid-rr", "uuid-rr"),
        ("fallback", "uuid-llm-1", {"primary": "uuid-llm-1", "fallbacks": []}), ("kb", "kb-1", "kb-1"),
        ("kbs", "kb-1,kb-2", ["kb-1", "kb-2"]), ("legacy_kbs", '["kb-3"]', ["kb-3"]), ("bot", "bot-1", "bot-1"),
        ("peer", "acme/other", "acme/other"), ("tools", "search,calc", ["search", "calc"]),
        ("rich_tools", "search", ["search"]), ("resources", json.dumps(RESOURCES), RESOURCES),
        ("avatar", '{"file_key": "k1", "mimetype": "image/png"}', {"file_key": "k1", "mimetype": "image/png"}),
        ("attachments", '[{"file_key": "k2", "mimetype": "text/plain"}]',
         [{"file_key": "k2", "mimetype": "text/plain"}]),
    ],
    ODDITIES: [
        ("colour", "123456", "123456"), ("threshold", "7", 7), ("ratio", "0.25", 0.25), ("toggle", "false", False),
        ("chips", '["x", 2]', ["x", 2]), ("mapping", '{"k": {"deep": [1, 2.5, true]}}', {"k": {"deep": [1, 2.5, True]}}),
        ("rows", '[{"name": "c", "size": 3}]', [{"name": "c", "size": 3}]), ("blob", "not json at all", "not json at all"),
        ("untyped", "42", "42"),
    ],
}
SET_VALUES = {pid: {**DEFAULTS[pid], **{k: v for k, _, v in rows}} for pid, rows in ASSIGNMENTS.items()}

# `config edit` changes one or two values of each plugin, of the hardest kinds.
EDITS = {
    NUMBERS: {"min_text_length": 16, "enable_private": True},
    TEXTS: {"trigger_words": ["a"], "extra": {"list": [{"x": 1}, {"x": 2}]}},
    SELECTORS: {"kbs": ["kb-9"], "fallback": {"primary": "m", "fallbacks": ["n"], "reasoning": "low"}},
    ODDITIES: {"mapping": {"k": "v"}, "rows": [], "threshold": 7.5, "blob": {"now": ["a", "table"]}},
}


def exact(value) -> str:
    """Equality that tells 1 from 1.0 from true, as JSON and TOML do."""
    return json.dumps(value, sort_keys=True)


def ok(run: Run, code: int = 0) -> Run:
    assert run.exit_code == code, run.output
    return run


@pytest.fixture
def packages(tmp_path) -> list[Path]:
    directory = tmp_path / "packages"
    directory.mkdir()
    paths = []
    for pid, schema in SCHEMAS.items():
        author, name = pid.split("/")
        path = directory / f"{author}-{name}-1.0.0.lbpkg"
        path.write_bytes(make_lbpkg(author, name, "1.0.0", config=schema))
        paths.append(path)
    return paths


@pytest.fixture
def installed(lbctl, packages) -> list[Path]:
    ok(lbctl("install", *packages))
    return packages


def config_of(lbctl, pid: str, home: Path | None = None) -> dict:
    where = ("--home", home) if home else ()
    return ok(lbctl("config", "export", pid, "--include-secrets", "--json", *where)).json["data"]["config"]


def all_config(lbctl, home: Path | None = None) -> str:
    return exact({pid: config_of(lbctl, pid, home) for pid in SCHEMAS})


def set_everything(lbctl) -> None:
    for pid, rows in ASSIGNMENTS.items():
        ok(lbctl("config", "set", pid, *(f"{key}={raw}" for key, raw, _ in rows)))


def freeze_and_sync(lbctl, tmp_path: Path, name: str) -> Path:
    frozen = ok(lbctl("freeze", "--with-config", "--include-secrets")).stdout
    file = tmp_path / f"{name}.toml"
    file.write_text(frozen, encoding="utf-8")
    other = tmp_path / name
    run = ok(lbctl("sync", file, "--home", other, "--json"))
    assert {(a["id"], a["action"], a["status"]) for a in run.json["data"]["actions"]} >= {
        (pid, "install", "done") for pid in SCHEMAS}
    return other


def export_and_import(lbctl, tmp_path: Path, packages: list[Path], source: Path) -> Path:
    target = tmp_path / "imported"
    ok(lbctl("install", *packages, "--home", target))
    for pid in SCHEMAS:
        text = ok(lbctl("config", "export", pid, "--include-secrets", "--home", source)).stdout
        file = tmp_path / f"{pid.replace('/', '-')}.toml"
        file.write_text(text, encoding="utf-8")
        ok(lbctl("config", "import", pid, file, "--replace", "--home", target))
    return target


def rewriting_editor(tmp_path: Path, monkeypatch, changes: dict) -> None:
    """$VISUAL rewrites the whole TOML it is shown (comments gone) with `changes` applied."""
    script = tmp_path / "rewrite.py"
    script.write_text(
        "import json, sys, tomllib, tomli_w\n"
        "path = sys.argv[1]\n"
        "data = tomllib.load(open(path, 'rb'))\n"
        f"data.update(json.loads({json.dumps(changes)!r}))\n"
        "open(path, 'w', encoding='utf-8').write(tomli_w.dumps(data))\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("VISUAL", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")


def edit_everything(lbctl, tmp_path: Path, monkeypatch, home: Path) -> None:
    for pid, changes in EDITS.items():
        rewriting_editor(tmp_path, monkeypatch, changes)
        ok(lbctl("config", "edit", pid, "--home", home))


# --- the whole chain ---------------------------------------------------------------------------


def test_defaults_as_real_plugins_declare_them_survive_freeze_sync_export_import_edit(
        lbctl, installed, tmp_path, monkeypatch):
    assert all_config(lbctl) == exact(DEFAULTS)

    synced = freeze_and_sync(lbctl, tmp_path, "synced")
    assert all_config(lbctl, synced) == exact(DEFAULTS)

    imported = export_and_import(lbctl, tmp_path, installed, synced)
    assert all_config(lbctl, imported) == exact(DEFAULTS)

    edit_everything(lbctl, tmp_path, monkeypatch, imported)
    assert all_config(lbctl, imported) == exact({pid: {**DEFAULTS[pid], **EDITS[pid]} for pid in SCHEMAS})


def test_values_of_every_type_survive_freeze_sync_export_import_edit(lbctl, installed, tmp_path, monkeypatch):
    set_everything(lbctl)
    assert all_config(lbctl) == exact(SET_VALUES)

    synced = freeze_and_sync(lbctl, tmp_path, "synced")
    assert all_config(lbctl, synced) == exact(SET_VALUES)

    imported = export_and_import(lbctl, tmp_path, installed, synced)
    assert all_config(lbctl, imported) == exact(SET_VALUES)

    edit_everything(lbctl, tmp_path, monkeypatch, imported)
    expected = {pid: {**SET_VALUES[pid], **EDITS[pid]} for pid in SCHEMAS}
    assert all_config(lbctl, imported) == exact(expected)

    monkeypatch.setenv("LBCTL_HOME", str(imported))
    assert all_config(lbctl, freeze_and_sync(lbctl, tmp_path, "again")) == exact(expected)


def test_a_second_sync_of_the_frozen_file_changes_nothing(lbctl, installed, tmp_path, home):
    set_everything(lbctl)
    synced = freeze_and_sync(lbctl, tmp_path, "synced")
    before = tree_snapshot(synced)

    run = ok(lbctl("sync", tmp_path / "synced.toml", "--home", synced, "--json"))

    assert run.json["data"]["actions"] == [], run.output
    assert tree_snapshot(synced) == before


def test_one_plugin_with_int_and_bool_does_not_fail_a_sync_of_many(lbctl, tmp_path, packages):
    others = [tmp_path / f"acme-p{n}-1.0.0.lbpkg" for n in range(6)]
    for n, path in enumerate(others):
        path.write_bytes(make_lbpkg("acme", f"p{n}", "1.0.0"))
    ok(lbctl("install", *others, packages[0]))
    file = tmp_path / "many.toml"
    file.write_text(ok(lbctl("freeze", "--with-config")).stdout, encoding="utf-8")

    run = ok(lbctl("sync", file, "--home", tmp_path / "many", "--json"))

    done = {a["id"] for a in run.json["data"]["actions"] if a["status"] == "done"}
    assert done >= {NUMBERS, *(f"acme/p{n}" for n in range(6))}
    assert exact(config_of(lbctl, NUMBERS, tmp_path / "many")) == exact(DEFAULTS[NUMBERS])


# --- conversions on the command line --------------------------------------------------------------


@pytest.mark.parametrize(("key", "raw", "expected"), [
    ("enable_private", "false", False), ("enable_private", "No", False), ("enable_private", "0", False),
    ("case_sensitive", "true", True), ("min_text_length", "-3", -3), ("top_p", "2", 2.0),
])
def test_set_converts_int_bool_and_number(lbctl, installed, key, raw, expected):
    ok(lbctl("config", "set", NUMBERS, f"{key}={raw}"))
    value = ok(lbctl("config", "get", NUMBERS, key, "--json")).json["data"]["value"]
    assert exact(value) == exact(expected)


@pytest.mark.parametrize(("key", "raw"), [
    ("min_text_length", "four"), ("min_text_length", "4.5"), ("enable_private", "maybe"), ("top_p", "high"),
])
def test_set_refuses_what_int_bool_and_number_cannot_hold(lbctl, installed, home, key, raw):
    before = tree_snapshot(home)
    run = ok(lbctl("config", "set", NUMBERS, f"{key}={raw}"), 2)
    assert run.stderr.startswith(f"error: {key}: expected "), run.output
    assert tree_snapshot(home) == before


@pytest.mark.parametrize(("key", "raw", "expected"), [
    ("colour", "123", "123"),                 # the plugin's default is a string: kept as given
    ("colour", '{"r": 1}', '{"r": 1}'),
    ("threshold", "9", 9),                    # otherwise JSON when it parses ...
    ("threshold", "9.5", 9.5),
    ("toggle", "true", True),
    ("chips", "[]", []),
    ("mapping", '{"a": {"b": 1}}', {"a": {"b": 1}}),
    ("blob", '"007"', "007"),                 # ... so a JSON string forces a string
    ("blob", "007", "007"),                   # ... else the text as given
    ("blob", "yes", "yes"),
    ("untyped", "[1]", "[1]"),
])
def test_set_of_an_unknown_type(lbctl, installed, key, raw, expected):
    ok(lbctl("config", "set", ODDITIES, f"{key}={raw}"))
    value = ok(lbctl("config", "get", ODDITIES, key, "--json")).json["data"]["value"]
    assert exact(value) == exact(expected)


@pytest.mark.parametrize("raw", ["null", '{"a": {"b": null}}', "[1, null]"])
def test_set_of_an_unknown_type_refuses_a_null_which_toml_cannot_hold(lbctl, installed, home, raw):
    before = tree_snapshot(home)
    run = ok(lbctl("config", "set", ODDITIES, f"mapping={raw}"), 2)
    assert run.stderr.startswith("error: mapping: expected a string, number, boolean, list or table"), run.output
    assert tree_snapshot(home) == before


def test_freeze_leaves_out_a_json_value_holding_a_null_and_says_so(lbctl, installed, tmp_path):
    ok(lbctl("config", "set", TEXTS, 'extra={"a": [1, null]}', "greeting=kept"))

    run = ok(lbctl("freeze", "--with-config"))

    [entry] = [p for p in tomllib.loads(run.stdout)["plugin"] if p["id"] == TEXTS]
    assert "extra" not in entry["config"] and entry["config"]["greeting"] == "kept"
    assert "extra" in run.stderr, run.output


def test_show_names_the_types_as_resolved_and_as_declared(lbctl, installed):
    rows = {r["name"]: r for r in ok(lbctl("config", "show", NUMBERS, "--json")).json["data"]["config"]}
    assert {k: rows[k]["type"] for k in ("min_text_length", "top_p", "enable_private")} == {
        "min_text_length": "integer", "top_p": "float", "enable_private": "boolean"}
    odd = {r["name"]: r for r in ok(lbctl("config", "show", ODDITIES, "--json")).json["data"]["config"]}
    assert (odd["colour"]["type"], odd["rows"]["type"], odd["untyped"]["type"]) == ("color-picker", "table-editor",
                                                                                     "unknown")
    assert exact(odd["rows"]["value"]) == exact(DEFAULTS[ODDITIES]["rows"])


def test_import_keeps_any_toml_value_for_an_unknown_type(lbctl, installed, tmp_path):
    file = tmp_path / "odd.toml"
    file.write_text('blob = [1, "two", 3.5, true, {x = [{y = "z"}]}]\nthreshold = "soft"\n'
                    "[mapping]\nk = 1\n[mapping.deep]\nlist = []\n", encoding="utf-8")
    ok(lbctl("config", "import", ODDITIES, file))
    config = config_of(lbctl, ODDITIES)
    assert exact([config["blob"], config["threshold"], config["mapping"]]) == exact(
        [[1, "two", 3.5, True, {"x": [{"y": "z"}]}], "soft", {"k": 1, "deep": {"list": []}}])


def test_import_refuses_a_toml_date_for_an_unknown_type(lbctl, installed, home, tmp_path):
    file = tmp_path / "odd.toml"
    file.write_text("blob = 2025-01-01\n", encoding="utf-8")
    before = tree_snapshot(home)
    run = ok(lbctl("config", "import", ODDITIES, file), 2)
    assert "blob: expected a string, number, boolean, list or table" in run.stderr, run.output
    assert tree_snapshot(home) == before


# --- the 1 MiB limit -------------------------------------------------------------------------------


def refused(lbctl, home: Path, *args, stdin: str = "") -> Run:
    before = tree_snapshot(home)
    run = ok(lbctl(*args, input=stdin), 2)
    assert "larger than 1 MiB" in run.stderr, run.output
    assert run.stdout == ""
    assert tree_snapshot(home) == before
    return run


def test_a_value_of_exactly_one_mib_is_kept_through_freeze_and_sync(lbctl, installed, tmp_path):
    value = "x" * LIMIT
    ok(lbctl("config", "set", TEXTS, "notes=-", input=value + "\n"))
    synced = freeze_and_sync(lbctl, tmp_path, "synced")
    assert config_of(lbctl, TEXTS, synced)["notes"] == value


@pytest.mark.parametrize(("pid", "key"), [(TEXTS, "notes"), (ODDITIES, "blob"), (TEXTS, "trigger_words")])
def test_set_refuses_a_value_over_one_mib(lbctl, installed, home, pid, key):
    refused(lbctl, home, "config", "set", pid, f"{key}={'y' * (LIMIT + 1)}")


def test_set_counts_bytes_not_characters(lbctl, installed, home):
    refused(lbctl, home, "config", "set", TEXTS, f"notes={'é' * (LIMIT // 2 + 1)}")


def test_set_force_of_an_unknown_key_is_limited_too(lbctl, installed, home):
    refused(lbctl, home, "config", "set", TEXTS, f"not_in_schema={'y' * (LIMIT + 1)}", "--force")


@pytest.mark.parametrize("extra", [(), ("--force",)])
def test_stdin_value_over_one_mib_is_refused(lbctl, installed, home, extra):
    key = "not_in_schema" if extra else "notes"
    refused(lbctl, home, "config", "set", TEXTS, f"{key}=-", *extra, stdin="z" * (LIMIT + 1) + "\n")


class EndlessStdin(io.TextIOBase):
    """A stdin that never ends (`yes | lbctl config set ID KEY=-`): reading all of it never returns."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        assert size is not None and size >= 0, "lbctl asked for the whole of an endless stdin"
        self.served += size
        return "y" * size


def run_with_stdin(stream, *args) -> Run:
    from lbctl.cli import run

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, stream
    try:
        code = run([str(a) for a in args])
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return Run(code, out.getvalue(), err.getvalue())


def test_reading_stdin_stops_at_the_limit(installed, home):
    stream = EndlessStdin()
    before = tree_snapshot(home)

    run = run_with_stdin(stream, "config", "set", TEXTS, "notes=-")

    assert run.exit_code == 2, run.output
    assert "larger than 1 MiB" in run.stderr
    assert stream.served <= LIMIT + 2
    assert tree_snapshot(home) == before


@pytest.mark.parametrize(("pid", "template", "size", "extra"), [
    (TEXTS, 'notes = "{}"', LIMIT + 1, ()),
    (ODDITIES, 'blob = ["{}"]', LIMIT, ()),
    (ODDITIES, '[mapping]\nk = "{}"', LIMIT, ()),
    (TEXTS, 'not_in_schema = "{}"', LIMIT + 1, ("--force",)),
])
def test_import_refuses_a_value_over_one_mib(lbctl, installed, home, tmp_path, pid, template, size, extra):
    file = tmp_path / "big.toml"
    file.write_text(template.format("x" * size) + "\n", encoding="utf-8")
    refused(lbctl, home, "config", "import", pid, file, *extra)


def test_edit_refuses_a_value_over_one_mib(lbctl, installed, home, tmp_path, monkeypatch):
    rewriting_editor(tmp_path, monkeypatch, {"rows": [{"name": "x" * LIMIT}]})
    refused(lbctl, home, "config", "edit", ODDITIES)


def test_sync_refuses_a_value_over_one_mib_in_the_plugins_file(lbctl, installed, home, tmp_path):
    frozen = ok(lbctl("freeze", "--with-config")).stdout
    file = tmp_path / "big.toml"
    file.write_text(frozen.replace('greeting = "hi"', f'greeting = "{"x" * (LIMIT + 1)}"'), encoding="utf-8")
    assert file.stat().st_size > LIMIT

    run = refused(lbctl, home, "sync", file)

    assert "greeting" in run.stderr, run.output
