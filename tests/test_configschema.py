import datetime
import io
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbctl import configschema as cs
from lbctl.errors import ConfigInvalidError, ExitCode

FIXTURE_SCHEMA = (
    {"name": "greeting", "type": "string", "description": {"en_US": "Text prefix"}, "default": "hi", "required": True},
    {"name": "count", "type": "integer", "default": 1, "required": False},
    {"name": "mode", "type": "select", "default": "a", "required": True,
     "options": [{"name": "a", "label": {"en_US": "A"}}, {"name": "b", "label": {"en_US": "B"}}]},
)


def item(kind, **fields):
    return {"name": "k", "type": kind, **fields}


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("integer", "42", 42),
    ("integer", " -7 ", -7),
    ("float", "1.5", 1.5),
    ("float", "3", 3.0),
    ("number", "-2e3", -2000.0),
    ("int", "4", 4),
    ("bool", "false", False),
    ("bool", "Yes", True),
    ("boolean", "TRUE", True),
    ("boolean", "yes", True),
    ("boolean", "0", False),
    ("boolean", "No", False),
    ("string", " as given ", " as given "),
    ("text", "a\nb", "a\nb"),
    ("secret", "s3cr3t", "s3cr3t"),
    ("some-future-type", "x", "x"),
    ("some-future-type", "5", 5),
    ("some-future-type", "true", True),
    ("some-future-type", "2.5", 2.5),
    ("some-future-type", '{"a": [1, "b"]}', {"a": [1, "b"]}),
    ("some-future-type", "007", "007"),
    ("some-future-type", "NaN", "NaN"),
    ("some-future-type", '"quoted"', "quoted"),
    (None, "[1]", [1]),
    ("array[string]", "a, b ,c,", ["a", "b", "c"]),
    ("array[string]", '["a, b", "c"]', ["a, b", "c"]),
    ("array[string]", "", []),
    ("prompt-editor", "You are kind.", "You are kind."),
    ("prompt-editor", '[{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]',
     [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]),
    ("json", '{"a": [1, null]}', {"a": [1, None]}),
    ("json", '"text"', "text"),
    ("llm-model-selector", "uuid-1", "uuid-1"),
    ("select-llm-model", "uuid-1", "uuid-1"),
    ("bot-selector", '{"id": 1}', {"id": 1}),
    ("knowledge-base-multi-selector", "kb1,kb2", ["kb1", "kb2"]),
    ("select-knowledge-bases", '["kb1"]', ["kb1"]),
    ("tools-selector", "t1", ["t1"]),
    ("model-fallback-selector", "m1", {"primary": "m1", "fallbacks": []}),
    ("model-fallback-selector", '{"primary": "m1", "fallbacks": ["m2"]}', {"primary": "m1", "fallbacks": ["m2"]}),
    ("file", '{"file_key": "f", "mimetype": "image/png"}', {"file_key": "f", "mimetype": "image/png"}),
    ("array[file]", '[{"file_key": "f", "mimetype": "text/plain"}]', [{"file_key": "f", "mimetype": "text/plain"}]),
])
def test_convert_accepts(kind, raw, expected):
    value = cs.convert(item(kind), raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("kind", "raw"), [
    ("integer", "1.5"), ("integer", "true"), ("integer", ""), ("integer", "1e3"), ("integer", "9" * 5000),
    ("float", "abc"), ("float", "nan"), ("float", "inf"), ("float", "1e999"), ("float", "true"),
    ("boolean", "maybe"), ("boolean", ""), ("bool", "off"), ("int", "4.5"),
    ("array[string]", '["a", 1]'), ("array[string]", "[not json"),
    ("prompt-editor", '[{"role": "robot", "content": "x"}]'), ("prompt-editor", "[1]"),
    ("json", "not json"), ("json", "NaN"),
    ("tools-selector", "[1, 2]"),
    ("some-future-type", "null"), ("some-future-type", '{"a": [1, null]}'),
    ("model-fallback-selector", '{"fallbacks": []}'),
    ("file", "./picture.png"), ("file", '{"file_key": "f"}'), ("array[file]", '{"file_key": "f", "mimetype": "x"}'),
])
def test_convert_rejects(kind, raw):
    with pytest.raises(ConfigInvalidError) as info:
        cs.convert(item(kind), raw)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.message.startswith("k: expected ") and "\n" not in info.value.message


def test_file_error_says_to_upload():
    with pytest.raises(ConfigInvalidError) as info:
        cs.convert({"name": "avatar", "type": "file"}, "me.png")
    assert "avatar=@path" in info.value.hint


def test_select_options_and_allow_custom():
    mode = FIXTURE_SCHEMA[2]
    assert cs.convert(mode, "b") == "b"
    with pytest.raises(ConfigInvalidError, match="mode: expected one of a, b, got 'c'"):
        cs.convert(mode, "c")
    assert cs.convert({**mode, "allow_custom": True}, "c") == "c"


@pytest.mark.parametrize("kind", sorted(cs.DISPLAY_ONLY))
def test_display_only_cannot_be_set(kind):
    with pytest.raises(ConfigInvalidError, match="display-only"):
        cs.convert(item(kind), "x")
    with pytest.raises(ConfigInvalidError, match="display-only"):
        cs.validate_value(item(kind), "x")


def test_aliases_are_normalised():
    assert cs.type_of({"type": "int"}) == "integer"
    assert cs.type_of({"type": "bool"}) == "boolean"
    assert cs.type_of({"type": "number"}) == "float"
    assert cs.type_of({"type": "select-llm-model"}) == "llm-model-selector"
    assert cs.type_of({"type": "select-knowledge-bases"}) == "knowledge-base-multi-selector"
    assert cs.type_of({}) == "unknown"


def test_secret_value_is_not_echoed_in_errors():
    with pytest.raises(ConfigInvalidError) as info:
        cs.convert({"name": "api_key", "type": "integer"}, "sk-live-123")
    assert "sk-live-123" not in info.value.message


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("integer", 3.0, 3),
    ("float", 2, 2.0),
    ("json", {"a": None}, {"a": None}),
    ("select", "anything", "anything"),
    ("unknown", None, None),
    ("int", 4, 4),
    ("int", 4.0, 4),
    ("bool", False, False),
    ("number", 2, 2.0),
    ("some-future-type", "s", "s"),
    ("some-future-type", 5, 5),
    ("some-future-type", 2.5, 2.5),
    ("some-future-type", True, True),
    ("some-future-type", ["a", 1, {"b": None}], ["a", 1, {"b": None}]),
    ("some-future-type", {"t": {"u": [True]}}, {"t": {"u": [True]}}),
    (None, {"x": 1}, {"x": 1}),
])
def test_validate_value_converts_losslessly(kind, value, expected):
    result = cs.validate_value(item(kind), value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("kind", "value"), [
    ("integer", True), ("integer", 1.5), ("integer", "1"),
    ("float", False), ("float", "1.5"), ("float", math.inf), ("float", 2**60 + 1),
    ("boolean", 1), ("string", 5), ("array[string]", "a,b"), ("json", {1: "x"}),
    ("int", "4"), ("int", True), ("bool", "false"), ("bool", 0), ("number", "1.5"),
    ("some-future-type", math.nan), ("some-future-type", datetime.date(2025, 1, 1)),
    ("some-future-type", {"when": datetime.time(1, 2)}), ("some-future-type", {1: "x"}),
])
def test_validate_value_rejects(kind, value):
    with pytest.raises(ConfigInvalidError):
        cs.validate_value(item(kind), value)


def test_validate_mapping_and_unknown_keys():
    assert cs.validate(FIXTURE_SCHEMA, {"count": 2.0, "mode": "a"}) == {"count": 2, "mode": "a"}
    with pytest.raises(ConfigInvalidError, match="colour: not a config key") as info:
        cs.validate(FIXTURE_SCHEMA, {"colour": "red"})
    assert "--force" in info.value.hint
    assert cs.validate(FIXTURE_SCHEMA, {"colour": "red"}, force=True) == {"colour": "red"}


def test_defaults_and_missing_required():
    schema = FIXTURE_SCHEMA + (
        {"name": "hook", "type": "webhook-url", "default": "x", "required": True},
        {"name": "tags", "type": "array[string]", "required": True},
    )
    assert cs.defaults(schema) == {"greeting": "hi", "count": 1, "mode": "a"}
    assert cs.missing_required(schema, {"greeting": "", "tags": []}) == ["greeting", "mode", "tags"]
    assert cs.missing_required(schema, {"greeting": "x", "mode": "a", "tags": ["t"], "count": None}) == []


SECRET = ["api_key", "apiKey", "APIKey", "OPENAI_API_KEY", "x-api-key", "key", "secret_key", "access_key_id",
          "private_key", "bot_token", "AccessToken", "token_limit", "client_secret", "appSecret", "db_password",
          "passwd", "Authorization", "dsn", "openai_api_key", "access-key", "token_count", "__system.token"]
NOT_SECRET = ["max_tokens", "tokens", "pwd", "ssh-key", "primary_key_field", "keyword", "login_cookie", "cookies",
              "webhook_url", "greeting", "monkey", "keys"]


@pytest.mark.parametrize("name", SECRET)
def test_secret_names(name):
    assert cs.is_secret_key(name)


@pytest.mark.parametrize("name", NOT_SECRET)
def test_innocent_names(name):
    assert not cs.is_secret_key(name)


def test_is_secret_by_type_or_name():
    assert cs.is_secret({"name": "greeting", "type": "secret"})
    assert cs.is_secret({"name": "bot_token", "type": "string"})
    assert not cs.is_secret({"name": "greeting", "type": "string"})


def test_mask_recurses_and_keeps_empty_leaves():
    schema = ({"name": "pass_phrase", "type": "secret"},)
    values = {
        "provider": {"name": "openai", "api_key": "sk", "extra": [{"token": "t"}, {"token": ""}]},
        "credentials": {"user": "u", "pw": None, "list": ["a", 1, ""], "empty": {}},
        "pass_phrase": "hunter2",
        "greeting": "hi",
    }
    assert cs.mask(schema, values) == {
        "provider": {"name": "openai", "api_key": "***", "extra": [{"token": "***"}, {"token": ""}]},
        "credentials": {"user": "***", "pw": None, "list": ["***", "***", ""], "empty": {}},
        "pass_phrase": "***",
        "greeting": "hi",
    }
    assert values["provider"]["api_key"] == "sk"


def test_rows():
    schema = FIXTURE_SCHEMA + (
        {"name": "api_key", "type": "string", "default": "demo", "required": True},
        {"name": "hook", "type": "webhook-url"},
    )
    values = {"count": 3, "api_key": "sk", "legacy": "x"}
    got = cs.rows(schema, values)
    assert [r["name"] for r in got] == ["greeting", "count", "mode", "api_key", "legacy"]
    # Nothing stored: the effective value is the default, which fills a required item (as LangBot counts it).
    assert got[0] == {"name": "greeting", "type": "string", "required": True, "default": "hi", "value": "hi",
                      "default_used": True, "secret": False, "missing": False, "in_schema": True}
    assert (got[1]["value"], got[1]["default_used"]) == (3, False)
    assert (got[3]["value"], got[3]["default"], got[3]["secret"], got[3]["missing"]) == ("***", "***", True, False)
    assert got[4] == {"name": "legacy", "type": None, "required": False, "default": None, "value": "x",
                      "default_used": False, "secret": False, "missing": False, "in_schema": False}
    no_default = cs.rows(({"name": "token", "type": "string", "required": True},), {})[0]
    assert (no_default["value"], no_default["default_used"], no_default["missing"]) == (None, False, True)
    assert cs.rows(schema, values, reveal=True)[3]["value"] == "sk"


def test_toml_round_trip_and_header():
    schema = FIXTURE_SCHEMA + ({"name": "api_key", "type": "string"}, {"name": "extra", "type": "json"})
    values = {"mode": "b", "greeting": "hé\n\"x\"", "count": None, "api_key": "sk", "extra": {"a": [1, 2]}}
    text = cs.to_toml(schema, values, include_secrets=False)
    assert "# greeting: string, required. Text prefix. Default: \"hi\"" in text
    assert "# mode: select (a, b), required" in text
    assert "# api_key: string. Value secret, left out" in text
    assert "sk" not in text and "count =" not in text
    assert text.index("greeting =") < text.index("mode =")
    assert cs.from_toml(text) == {"greeting": "hé\n\"x\"", "mode": "b", "extra": {"a": [1, 2]}}
    full = cs.from_toml(cs.to_toml(schema, values, include_secrets=True))
    assert full == {k: v for k, v in values.items() if v is not None}


def test_toml_leaves_out_nested_secrets_and_nulls():
    schema = ({"name": "provider", "type": "json"}, {"name": "raw", "type": "json"})
    values = {"provider": {"url": "u", "token": "t"}, "raw": [1, None], "bot_token": "b"}
    text = cs.to_toml(schema, values, include_secrets=False)
    assert cs.from_toml(text) == {"provider": {"url": "u"}}
    assert cs.toml_omitted(schema, values, include_secrets=False) == ["raw", "bot_token"]
    assert cs.toml_omitted(schema, values, include_secrets=True) == ["raw"]
    assert "# bot_token: not in the schema; secret, left out" in text


def test_header_survives_hostile_descriptions():
    schema = ({"name": "a\nb", "type": "string", "description": "line1\nline2\x00\x7f"},)
    assert cs.from_toml(cs.to_toml(schema, {"a\nb": "v"}, include_secrets=True)) == {"a\nb": "v"}


def test_from_toml_reports_the_line():
    with pytest.raises(ConfigInvalidError, match=r"invalid TOML: .*line 2"):
        cs.from_toml('a = 1\nb = \n')


def test_merge_schema_change():
    old = {"greeting": "hello", "legacy": 1, "count": None}
    new_schema = FIXTURE_SCHEMA + ({"name": "colour", "type": "string", "default": "red"},)
    values, added, dropped = cs.merge_schema_change(old, new_schema)
    assert values == {"greeting": "hello", "legacy": 1, "count": 1, "mode": "a", "colour": "red"}
    assert (added, dropped) == (["count", "mode", "colour"], ["legacy"])
    values, added, _ = cs.merge_schema_change(old, new_schema, old_schema=FIXTURE_SCHEMA)
    assert added == ["colour"] and "mode" not in values


ROUND_TRIP_SCHEMA = (
    {"name": "i", "type": "integer"}, {"name": "f", "type": "number"}, {"name": "b", "type": "boolean"},
    {"name": "i2", "type": "int"}, {"name": "b2", "type": "bool"}, {"name": "odd", "type": "colour-picker"},
    {"name": "odd_text", "type": "colour-picker", "default": "red"},
    {"name": "s", "type": "string"}, {"name": "api_key", "type": "secret"},
    {"name": "sel", "type": "select", "options": [{"name": "x"}, {"name": "y"}], "allow_custom": True},
    {"name": "tags", "type": "array[string]"}, {"name": "prompt", "type": "prompt-editor"},
    {"name": "j", "type": "json"}, {"name": "llm", "type": "llm-model-selector"},
    {"name": "kbs", "type": "knowledge-base-multi-selector"}, {"name": "fb", "type": "model-fallback-selector"},
    {"name": "file", "type": "file"},
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
raw_strings = st.one_of(
    st.text(), st.integers().map(str), st.floats().map(repr), st.sampled_from(["yes", "No", "1", "0"]),
    st.lists(st.text(max_size=6), max_size=4).map(",".join),
    json_values.map(json.dumps),
)


@given(st.lists(st.tuples(st.sampled_from(ROUND_TRIP_SCHEMA), raw_strings), max_size=8))
def test_converted_values_survive_toml(pairs):
    values = {}
    for entry, raw in pairs:
        try:
            values[entry["name"]] = cs.convert(entry, raw)
        except ConfigInvalidError:
            pass
    text = cs.to_toml(ROUND_TRIP_SCHEMA, values, include_secrets=True)
    left_out = cs.toml_omitted(ROUND_TRIP_SCHEMA, values, include_secrets=True)
    expected = {k: v for k, v in values.items() if v is not None and k not in left_out}
    assert cs.validate(ROUND_TRIP_SCHEMA, cs.from_toml(text)) == expected


@pytest.mark.parametrize(("kind", "default"), [
    ("integer", ""), ("select", ""), ("boolean", "no"), ("string", 10), ("array[string]", [1, 2]),
])
def test_a_plugins_own_default_passes_whatever_its_declared_type(kind, default):
    entry = item(kind, default=default, options=[{"name": "a"}])
    assert cs.validate_value(entry, default) == default
    assert type(cs.validate_value(entry, default)) is type(default)
    with pytest.raises(ConfigInvalidError):
        cs.validate_value({**entry, "default": None}, default)


@pytest.mark.parametrize(("kind", "default", "other"), [
    ("string", 1, True), ("string", True, 1), ("string", 1, 1.0), ("string", {"a": 1}, {"a": True}),
])
def test_only_the_exact_default_is_excused(kind, default, other):
    with pytest.raises(ConfigInvalidError):
        cs.validate_value(item(kind, default=default), other)


LIMIT = cs.MAX_VALUE_BYTES


@pytest.mark.parametrize("kind", ["string", "text", "secret", "json", "some-future-type", None])
def test_values_up_to_one_mib_are_kept(kind):
    assert LIMIT == 1024 * 1024
    value = "x" * LIMIT
    assert cs.validate_value(item(kind), value) == value
    raw = json.dumps(value[2:]) if kind == "json" else value
    assert cs.convert(item(kind, default=""), raw) == (value[2:] if kind == "json" else value)


@pytest.mark.parametrize(("kind", "value"), [
    ("string", "x" * (LIMIT + 1)),
    ("string", "é" * (LIMIT // 2 + 1)),  # fewer characters than the limit, more bytes
    ("secret", "s" * (LIMIT + 1)),
    ("array[string]", ["abcdefgh"] * (LIMIT // 10)),
    ("json", {"a": "x" * LIMIT}),
    ("some-future-type", "y" * (3 * LIMIT)),
    ("some-future-type", list(range(LIMIT // 2))),
    ("some-future-type", {"t": {"u": "z" * LIMIT}}),
    ("integer", "9" * (LIMIT + 1)),
])
def test_values_over_one_mib_are_refused(kind, value):
    with pytest.raises(ConfigInvalidError) as info:
        cs.validate_value(item(kind), value)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert info.value.message == "k: the value is larger than 1 MiB, the limit for a config value"


@pytest.mark.parametrize("kind", ["string", "integer", "json", "array[string]", "prompt-editor", "some-future-type"])
def test_convert_refuses_a_huge_string_before_parsing_it(kind):
    with pytest.raises(ConfigInvalidError, match="larger than 1 MiB"):
        cs.convert(item(kind), "[" + "1," * LIMIT + "1]")


def test_unknown_keys_stored_with_force_are_limited_too():
    assert cs.validate((), {"extra": "x" * LIMIT}, force=True) == {"extra": "x" * LIMIT}
    with pytest.raises(ConfigInvalidError, match="^extra: the value is larger than 1 MiB"):
        cs.validate((), {"extra": ["x" * LIMIT]}, force=True)


class EndlessStream(io.TextIOBase):
    """stdin that never ends: reading all of it would never return."""

    def __init__(self) -> None:
        self.served = 0

    def read(self, size: int | None = -1) -> str:
        assert size is not None and size >= 0, "the whole stream was asked for"
        self.served += size
        return "v" * size


def test_read_value_stops_just_past_the_limit():
    stream = EndlessStream()
    with pytest.raises(ConfigInvalidError, match="^The value read from stdin is larger than 1 MiB"):
        cs.read_value(stream)
    assert stream.served <= LIMIT + 2


@pytest.mark.parametrize("text", ["", "short\n", "x" * LIMIT, "x" * LIMIT + "\n", "x" * (LIMIT + 1)])
def test_read_value_returns_what_fits(text):
    assert cs.read_value(io.StringIO(text)) == text


@pytest.mark.parametrize("text", ["x" * (LIMIT + 2), "x" * LIMIT + "\nmore", "x" * (5 * LIMIT)])
def test_read_value_never_truncates_silently(text):
    with pytest.raises(ConfigInvalidError):
        cs.read_value(io.StringIO(text))
