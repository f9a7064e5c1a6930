"""Plugin config schemas (a package's `spec.config`): convert, validate, mask and render values.

Pure functions over the raw schema items of `PackageInfo.config_schema`; every failure is a
`ConfigInvalidError` whose message names the key and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import IO, Any, Final

from lbctl.errors import ConfigInvalidError

MASK: Final = "***"
# A value's size is its UTF-8 bytes (a string) or its compact JSON encoding (anything else).
MAX_VALUE_BYTES: Final = 1 << 20
MAX_NESTING: Final = 64  # levels of lists and objects in a JSON value
ALIASES: Final = {
    "int": "integer",
    "bool": "boolean",
    "number": "float",
    "select-llm-model": "llm-model-selector",
    "select-knowledge-bases": "knowledge-base-multi-selector",
}
DISPLAY_ONLY: Final = frozenset({"webhook-url", "embed-code", "qr-code-login", "download-link"})
STRING_SELECTORS: Final = frozenset({
    "llm-model-selector", "embedding-model-selector", "rerank-model-selector",
    "knowledge-base-selector", "bot-selector", "plugin-selector",
})
LIST_SELECTORS: Final = frozenset({
    "knowledge-base-multi-selector", "tools-selector", "rich-tools-selector", "resources-selector",
})
STRING_TYPES: Final = frozenset({"string", "text", "secret", "select"})
ROLES: Final = frozenset({"system", "user", "assistant"})

# LangBot 4.11.2 `groups/plugins.py` (lbpkg-format.md §6): masking is by key name only.
_SECRET_WHOLE: Final = frozenset({
    "api_key", "apikey", "auth", "authorization", "cookie", "credentials", "database_url", "dsn",
    "key", "proxy_authorization", "set_cookie",
})
_SECRET_TOKENS: Final = frozenset({"credential", "credentials", "passwd", "password", "secret", "token"})
_KEY_COMPANIONS: Final = frozenset({
    "access", "api", "auth", "bearer", "client", "debug", "encryption", "private", "signing",
})
_BOOLEANS: Final = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT: Final = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


# --- types -------------------------------------------------------------------------------------


def type_of(item: dict) -> str:
    """The item's type with the aliases real plugins write resolved; "unknown" when absent."""
    kind = item.get("type")
    return ALIASES.get(kind, kind) if isinstance(kind, str) and kind else "unknown"


def is_known_type(item: dict) -> bool:
    """Whether lbctl knows the item's type; any other type keeps whatever JSON value it is given."""
    kind = type_of(item)
    return kind in STRING_TYPES or kind in _VALIDATORS or kind in DISPLAY_ONLY


def is_display_only(item: dict) -> bool:
    return type_of(item) in DISPLAY_ONLY


def _fail(item: dict, expected: str, got: Any = None, *, hint: str | None = None) -> ConfigInvalidError:
    message = f"{item.get('name')}: expected {expected}"
    if got is not None and not is_secret(item) and not _mentions_secret(got):
        shown = repr(got) if not isinstance(got, int) or abs(got) < 10**60 else "a huge integer"
        message += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return ConfigInvalidError(message, hint=hint)


def _mentions_secret(got: Any) -> bool:
    """Whether a rejected value may carry a nested secret (then it is not echoed in the error)."""
    text = got if isinstance(got, str) else json.dumps(got, default=str) if isinstance(got, (dict, list)) else ""
    return any(is_secret_key(word) for word in re.findall(r"[A-Za-z0-9_-]+", text))


def _check_settable(item: dict) -> None:
    if is_display_only(item):
        raise ConfigInvalidError(f"{item.get('name')}: type {type_of(item)} is display-only and cannot be set")


def _too_big(subject: str) -> ConfigInvalidError:
    return ConfigInvalidError(f"{subject} is larger than 1 MiB, the limit for a config value")


def _size(value: Any) -> int:
    """Bytes of `value` as stored; a string longer than the limit in characters is not encoded."""
    if isinstance(value, str):
        return len(value.encode("utf-8")) if len(value) <= MAX_VALUE_BYTES else MAX_VALUE_BYTES + 1
    try:
        return _size(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
    except (ValueError, RecursionError):
        return 0  # not JSON at all: the type check that follows says so


def check_size(key: Any, value: Any) -> Any:
    """`value` unchanged, or ConfigInvalidError (exit 2) when it is larger than MAX_VALUE_BYTES."""
    if _size(value) > MAX_VALUE_BYTES:
        raise _too_big(f"{key}: the value")
    return value


def read_value(stream: IO[str]) -> str:
    """Read a config value from `stream` (`KEY=-`), stopping just past the size limit so that a huge
    input is never held in memory; one trailing newline may follow a value of exactly the limit."""
    try:
        text = stream.read(MAX_VALUE_BYTES + 2)
        text.encode("utf-8")  # under a C locale Python smuggles invalid bytes in as surrogates
    except UnicodeError:
        raise ConfigInvalidError("The value read from stdin is not UTF-8 text",
                                 hint="Pass binary data as a file: KEY=@path for file items.") from None
    if len(text) > MAX_VALUE_BYTES + 1:
        raise _too_big("The value read from stdin")
    return text


# --- command-line strings ----------------------------------------------------------------------


def convert(item: dict, raw: str) -> Any:
    """Convert a command-line string to the value stored for `item`.

    `prompt-editor`: a JSON list of `{role, content}` messages, or plain text kept as given (the CLI
    contract says so, although LangBot's form stores a list). `model-fallback-selector`: a JSON object, or a plain model uuid that
    becomes `{"primary": uuid, "fallbacks": []}`. Other selectors keep the string unless it parses
    as a JSON list/object; list-valued ones also take comma-separated names. `file`/`array[file]`
    take only JSON `{file_key, mimetype}` values: uploading `KEY=@path` is the caller's job.
    A type lbctl does not know takes JSON or plain text (`_parse_unknown`). Over 1 MiB is refused.
    """
    _check_settable(item)
    check_size(item.get("name"), raw)
    parse = _PARSERS.get(type_of(item), _keep if is_known_type(item) else _parse_unknown)
    return validate_value(item, parse(item, raw))


def _keep(item: dict, raw: str) -> str:
    return raw


def _parse_unknown(item: dict, raw: str) -> Any:
    # A type lbctl does not know: the string when the plugin's default is one, else JSON when the
    # text parses (so `5`, `true`, `[1]`, `{"a": 1}` keep their kind), else the string as given.
    # A null is refused: TOML has none, so the value could not go through freeze or export.
    if isinstance(item.get("default"), str):
        return raw
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return raw
    if _has_null(value):
        raise _fail(item, "a string, number, boolean, list or table without null", raw)
    return value


def _parse_integer(item: dict, raw: str) -> int:
    text = raw.strip()
    try:
        if _INTEGER.fullmatch(text):
            return int(text)
    except ValueError:  # more digits than Python converts
        pass
    raise _fail(item, "an integer", raw)


def _parse_float(item: dict, raw: str) -> float:
    value = float(raw.strip()) if _FLOAT.fullmatch(raw.strip()) else math.nan
    if not math.isfinite(value):
        raise _fail(item, "a finite number", raw)
    return value


def _parse_boolean(item: dict, raw: str) -> bool:
    try:
        return _BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise _fail(item, "a boolean (true/false/yes/no/1/0)", raw) from None


def _parse_json(item: dict, raw: str, expected: str = "a JSON value", hint: str | None = None) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        raise _fail(item, expected, raw, hint=hint) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_list(item: dict, raw: str) -> list:
    if raw.lstrip().startswith("["):
        return _parse_json(item, raw, "a JSON list or comma-separated values")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _parse_prompt(item: dict, raw: str) -> Any:
    if raw.lstrip().startswith("["):
        return _check_prompt(item, _parse_json(item, raw, "a JSON list of {role, content} messages"))
    return raw


def _parse_selector(item: dict, raw: str) -> Any:
    if raw.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            pass
    return raw


def _parse_fallback(item: dict, raw: str) -> Any:
    if raw.lstrip().startswith("{"):
        return _parse_json(item, raw, 'a JSON object {"primary", "fallbacks"} or a model uuid')
    return {"primary": raw, "fallbacks": []}


def _parse_file(item: dict, raw: str) -> Any:
    name = item.get("name")
    return _parse_json(item, raw, "an uploaded file", hint=f"Use {name}=@path to upload a file.")


_PARSERS: dict[str, Callable[[dict, str], Any]] = {
    "integer": _parse_integer,
    "float": _parse_float,
    "boolean": _parse_boolean,
    "array[string]": _parse_list,
    "prompt-editor": _parse_prompt,
    "json": _parse_json,
    "model-fallback-selector": _parse_fallback,
    "file": _parse_file,
    "array[file]": _parse_file,
    **dict.fromkeys(STRING_SELECTORS, _parse_selector),
    **dict.fromkeys(LIST_SELECTORS, _parse_list),
}


# --- typed values ------------------------------------------------------------------------------


def validate_value(item: dict, value: Any) -> Any:
    """Check a typed value (from TOML, JSON or an editor) against `item`; returns it, converted
    where that loses nothing (an integral float for `integer`, an int for `float`). None passes."""
    _check_settable(item)
    if value is None:
        return None
    check_size(item.get("name"), value)
    if _is_own_default(item, value):
        return value
    check = _VALIDATORS.get(type_of(item), _check_string if is_known_type(item) else _check_unknown)
    return check(item, value)


def _is_own_default(item: dict, value: Any) -> bool:
    # lbctl stores a package's declared default as it stands, so it must pass even when the
    # plugin's author gave it another type (`type: integer`, `default: ""`).
    default = item.get("default")
    if default is None or not _is_json(default) or not _is_json(value):
        return False
    return json.dumps(value, sort_keys=True) == json.dumps(default, sort_keys=True)


def _check_string(item: dict, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(item, "a string", value)
    return value


def _check_integer(item: dict, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(item, "an integer", value)
    return value


def _check_float(item: dict, value: Any) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and float(value) == value:
        return float(value)
    if not isinstance(value, float) or not math.isfinite(value):
        raise _fail(item, "a finite number", value)
    return value


def _check_boolean(item: dict, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(item, "a boolean (true/false)", value)
    return value


def _check_select(item: dict, value: Any) -> str:
    names = [o["name"] for o in item.get("options") or () if isinstance(o, dict) and "name" in o]
    if not isinstance(value, str) or (names and value not in names and not item.get("allow_custom")):
        raise _fail(item, f"one of {', '.join(map(str, names))}" if names else "a string", value)
    return value


def _check_strings(item: dict, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(item, "a list of strings", value)
    return list(value)


def _check_prompt(item: dict, value: Any) -> Any:
    def ok(m: Any) -> bool:
        return isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)

    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not all(map(ok, value)):
        raise _fail(item, "a list of {role: system/user/assistant, content: string} messages", value)
    return [dict(m) for m in value]


def nesting(value: Any) -> int:
    """How deep lists and objects nest in `value`, found without recursion: a value from outside (a LangBot
    answer) nested 500 deep would exhaust the stack of every recursive walk of it (masking, copying, TOML)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            children = item.values() if isinstance(item, dict) else item
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > MAX_NESTING:  # deeper, a value could not be copied or compared without exhausting the stack
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return value is None or isinstance(value, (str, int))


def _check_unknown(item: dict, value: Any) -> Any:
    if not _is_json(value):
        raise _fail(item, "a string, number, boolean, list or table", value)
    return value


def _check_json(item: dict, value: Any) -> Any:
    if not _is_json(value):
        raise _fail(item, "a JSON value", value)
    return value


def _check_selector(item: dict, value: Any) -> Any:
    if not isinstance(value, (str, list, dict)) or not _is_json(value):
        raise _fail(item, "a string or a JSON list/object", value)
    return value


def _check_list_selector(item: dict, value: Any) -> list:
    if type_of(item) == "resources-selector":
        if not isinstance(value, list) or not _is_json(value):
            raise _fail(item, "a JSON list", value)
        return value
    return _check_strings(item, value)


def _check_fallback(item: dict, value: Any) -> dict:
    if isinstance(value, str):
        value = {"primary": value, "fallbacks": []}
    ok = (
        isinstance(value, dict) and isinstance(value.get("primary"), str)
        and isinstance(value.get("fallbacks", []), list)
        and all(isinstance(v, str) for v in value.get("fallbacks", []))
        and isinstance(value.get("reasoning", ""), str) and _is_json(value)
    )
    if not ok:
        raise _fail(item, '{"primary": string, "fallbacks": [string], "reasoning"?: string}', value)
    return value


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("file_key", "mimetype"))


def _check_file(item: dict, value: Any) -> Any:
    multiple = type_of(item) == "array[file]"
    ok = all(map(_is_file, value)) if multiple and isinstance(value, list) else not multiple and _is_file(value)
    if not ok or not _is_json(value):
        what = "a list of {file_key, mimetype}" if multiple else "{file_key, mimetype}"
        raise _fail(item, what, value, hint=f"Use {item.get('name')}=@path to upload a file.")
    return value


_VALIDATORS: dict[str, Callable[[dict, Any], Any]] = {
    "integer": _check_integer,
    "float": _check_float,
    "boolean": _check_boolean,
    "select": _check_select,
    "array[string]": _check_strings,
    "prompt-editor": _check_prompt,
    "json": _check_json,
    "model-fallback-selector": _check_fallback,
    "file": _check_file,
    "array[file]": _check_file,
    **dict.fromkeys(STRING_SELECTORS, _check_selector),
    **dict.fromkeys(LIST_SELECTORS, _check_list_selector),
}


# --- whole mappings ----------------------------------------------------------------------------


def _index(schema: Iterable[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in schema}


def validate(schema: Iterable[dict], values: dict, *, force: bool = False) -> dict:
    """Validate every value; a key the schema lacks is an error unless `force` (then kept as is)."""
    items = _index(schema)
    result = {}
    for key, value in values.items():
        if key in items:
            result[key] = validate_value(items[key], value)
        elif force:
            result[key] = check_size(key, value)
        else:
            known = ", ".join(items) or "none"
            raise ConfigInvalidError(f"{key}: not a config key of this plugin (known: {known})",
                                     hint="Use --force to store it anyway.")
    return result


def defaults(schema: Iterable[dict]) -> dict:
    return {
        item["name"]: item["default"]
        for item in schema
        if item.get("default") is not None and not is_display_only(item)
    }


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def missing_required(schema: Iterable[dict], values: dict) -> list[str]:
    return [
        item["name"]
        for item in schema
        if item.get("required") and not is_display_only(item) and _empty(values.get(item["name"]))
    ]


def merge_schema_change(
    old_values: dict, new_schema: Iterable[dict], *, old_schema: Iterable[dict] | None = None
) -> tuple[dict, list[str], list[str]]:
    """Values for a new schema: every stored value kept, defaults added for keys with no stored value
    (only for keys `old_schema` lacks, when it is given, so an unset key is not filled again).

    Returns `(values, added_keys, dropped_keys)`; dropped keys left the schema but stay stored.
    """
    new_schema = tuple(new_schema)
    old_names = _index(old_schema or ())
    added = {k: v for k, v in defaults(new_schema).items() if old_values.get(k) is None and k not in old_names}
    names = _index(new_schema)
    return {**old_values, **added}, list(added), [k for k in old_values if k not in names]


# --- secrets -----------------------------------------------------------------------------------


def _normalize_key(key: str) -> str:
    key = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return re.sub(r"[^a-zA-Z0-9]+", "_", key).strip("_").lower()


def is_secret_key(key: str) -> bool:
    """LangBot 4.11.2's exact name heuristic for secret config keys."""
    normalized = _normalize_key(str(key))
    tokens = set(normalized.split("_"))
    return (
        normalized in _SECRET_WHOLE
        or bool(tokens & _SECRET_TOKENS)
        or ("key" in tokens and bool(tokens & _KEY_COMPANIONS))
    )


def is_secret(item: dict) -> bool:
    return type_of(item) == "secret" or is_secret_key(str(item.get("name", "")))


def _mask_tree(value: Any, secret: bool) -> Any:
    if isinstance(value, dict):
        return {k: _mask_tree(v, secret or is_secret_key(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_tree(v, secret) for v in value]
    return MASK if secret and value is not None and value != "" else value


def contains_mask(value: Any) -> bool:
    """Whether a value holds a masked leaf (`***`), as a target that never reveals secrets returns them."""
    if isinstance(value, dict):
        return any(contains_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_mask(v) for v in value)
    return value == MASK


def mask_value(item: dict, value: Any) -> Any:
    """`value` with every non-empty leaf under a secret item or key replaced by "***"."""
    return _mask_tree(value, is_secret(item))


def mask(schema: Iterable[dict], values: dict) -> dict:
    items = _index(schema)
    return {k: mask_value(items.get(k, {"name": k}), v) for k, v in values.items()}


# --- config show -------------------------------------------------------------------------------


def rows(schema: Iterable[dict], values: dict, *, reveal: bool = False) -> list[dict]:
    """The `config show` rows: schema items in order (display-only ones skipped), then stored keys
    the schema lacks (`type` None, `in_schema` False). Secret values and defaults masked unless `reveal`.

    `value` is the effective value: the stored one, else the item's default (`default_used` true). A LangBot
    target stores nothing until a value is set, where lbctl stores the defaults at install: both show the same."""
    schema = tuple(schema)
    shown = [_row(item, values, reveal) for item in schema if not is_display_only(item)]
    names = _index(schema)
    return shown + [_row({"name": k, "type": None}, values, reveal, False) for k in values if k not in names]


def effective(item: dict, values: dict) -> tuple[Any, bool]:
    """The value a plugin's item has: the stored one, else its default; and whether it is the default."""
    stored = values.get(item["name"])
    if stored is None and item.get("default") is not None and not is_display_only(item):
        return item["default"], True
    return stored, False


def _row(item: dict, values: dict, reveal: bool, in_schema: bool = True) -> dict:
    def show(value: Any) -> Any:
        return value if reveal else mask_value(item, value)

    value, default_used = effective(item, values) if in_schema else (values.get(item["name"]), False)
    required = bool(item.get("required"))
    return {
        "name": item["name"],
        "type": type_of(item) if in_schema else None,
        "required": required,
        "default": show(item.get("default")),
        "value": show(value),
        "default_used": default_used,
        "secret": is_secret(item),
        "missing": required and _empty(value),
        "in_schema": in_schema,
        **({"options": _option_names(item)} if type_of(item) == "select" and _option_names(item) else {}),
    }


def _option_names(item: dict) -> list[str]:
    options = item.get("options")
    return [str(o["name"]) for o in options if isinstance(o, dict) and "name" in o] if isinstance(options, list) else []


# --- TOML --------------------------------------------------------------------------------------


def _strip_secret_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_secret_keys(v) for k, v in value.items() if not is_secret_key(k)}
    if isinstance(value, list):
        return [_strip_secret_keys(v) for v in value]
    return value


def without_secrets(schema: Iterable[dict], values: dict) -> dict:
    """`values` less secret items and less secret-named keys nested in other values."""
    items = _index(tuple(schema))
    return {k: _strip_secret_keys(v) for k, v in values.items() if not is_secret(items.get(k, {"name": k}))}


def restore_secrets(old: Any, new: Any) -> Any:
    """Put back into an edited value the nested secrets that the rendering for the editor left out."""
    if isinstance(old, dict) and isinstance(new, dict):
        kept = {k: v for k, v in old.items() if is_secret_key(k) and k not in new}
        return {**{k: restore_secrets(old.get(k), v) for k, v in new.items()}, **kept}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [restore_secrets(o, n) for o, n in zip(old, new)]
    return new


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_has_null, value.values()))
    if isinstance(value, list):
        return any(map(_has_null, value))
    return value is None


def _ordered(schema: tuple[dict, ...], values: dict) -> list[str]:
    names = [item["name"] for item in schema]
    return [k for k in names if k in values] + [k for k in values if k not in names]


def _omission(item: dict, value: Any, include_secrets: bool) -> str | None:
    if value is None:
        return None
    if not include_secrets and is_secret(item):
        return "secret, left out"
    return "holds a null, which TOML cannot express; left out" if _has_null(value) else None


def toml_omitted(schema: Iterable[dict], values: dict, *, include_secrets: bool) -> list[str]:
    """Keys with a value that `to_toml` leaves out: secrets (unless included) and values holding
    a null. A `config edit` should keep these stored values."""
    schema = tuple(schema)
    items = _index(schema)
    ordered = _ordered(schema, values)
    return [k for k in ordered if _omission(items.get(k, {"name": k}), values[k], include_secrets)]


def to_toml(schema: Iterable[dict], values: dict, *, include_secrets: bool) -> str:
    """A commented header describing each item, then the values as TOML (None values left out)."""
    from lbctl import tomlio  # imported here: tomllib costs ~3 ms that `show` does not need

    schema = tuple(schema)
    items = _index(schema)
    left_out = toml_omitted(schema, values, include_secrets=include_secrets)
    body = {
        k: values[k] if include_secrets else _strip_secret_keys(values[k])
        for k in _ordered(schema, values)
        if values[k] is not None and k not in left_out
    }
    header = ["# Plugin configuration. Lines starting with # are comments.", "#"]
    header += [_comment(i, values.get(i["name"]), include_secrets) for i in schema if not is_display_only(i)]
    header += [f"# {k}: not in the schema; {_omission({'name': k}, values[k], include_secrets)}"
               for k in left_out if k not in items]
    return "\n".join(_clean(line) for line in header) + "\n\n" + tomlio.dumps(body)


def _comment(item: dict, value: Any, include_secrets: bool) -> str:
    options = [str(o.get("name")) for o in item.get("options") or () if isinstance(o, dict)]
    line = f"# {item['name']}: {type_of(item)}" + (f" ({', '.join(options)})" if options else "")
    line += ", required" if item.get("required") else ""
    if item.get("description"):
        line = _sentence(line, _text(item["description"]))
    if item.get("default") is not None:
        line = _sentence(line, f"Default: {json.dumps(mask_value(item, item['default']), ensure_ascii=False)}")
    omission = _omission(item, value, include_secrets)
    return _sentence(line, f"Value {omission}") if omission else line


def _sentence(text: str, more: str) -> str:
    """`text` and `more` as two sentences: one full stop between them, not two (`(10 min). Default: 600`)."""
    text = text.rstrip()
    return f"{text} {more.strip()}" if text.endswith((".", "!", "?", "\u3002")) else f"{text}. {more.strip()}"


def _text(value: Any) -> str:
    """An I18nString as plain text: English when there is some."""
    if isinstance(value, dict):
        return str(value.get("en_US") or next(iter(value.values()), ""))
    return str(value)


def _clean(line: str) -> str:
    # TOML comments may not hold control characters, and a newline would end the comment.
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", line)


def from_toml(text: str) -> dict:
    from lbctl import tomlio

    try:
        return tomlio.loads(text)
    except tomlio.TOMLDecodeError as exc:
        raise ConfigInvalidError(f"invalid TOML: {exc}") from None
