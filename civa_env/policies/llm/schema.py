"""Per-resident JSON schemas of an LLM answer, and the semantic check of a parsed answer.

The schema of a resident's answer lists only what it may do now (its legal facts, from
``Batch.legal``): the primary kinds it can afford, the factories it knows, the residents it
sees as targets, gift amounts as whole numbers in ``1..floor(wealth)``, merges only with
non-allies, and messages with bounded, quote-free text. Decoding constrained by it gives an
answer the environment accepts without a flag; ``check_answer`` repeats every test in Python
for unconstrained output (and as a guard), and turns the answer into the environment's
structured action dict.

Answer layout (the ``combined`` phase has all keys; the full cycle splits them)::

    {"reflection": str, "plan": str, "messages": [{"to": name|"everyone", "text": str}],
     "primary": {"kind": "work", "factory": 1}, "secondary": {"kind": "gift",
     "target": "resident_2", "amount": 3}, "memory": str}
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

TEXT_PATTERN = "^[A-Za-z0-9 ,.;:!?'()_-]*$"  # no quotes or escapes: bounded, log-safe
_TEXT_RE = re.compile(TEXT_PATTERN)


def text_schema(max_chars: int) -> dict[str, Any]:
    """A free-text field of at most ``max_chars`` characters."""
    return {"type": "string", "maxLength": int(max_chars), "pattern": TEXT_PATTERN}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _one_of(options: list[dict[str, Any]]) -> dict[str, Any]:
    return options[0] if len(options) == 1 else {"anyOf": options}


def primary_schema(legal: Mapping[str, Any]) -> dict[str, Any]:
    """The primary kinds and factories this resident may choose."""
    factories = [int(m) for m in legal.get("factories", [])]
    simple = ["explore", "idle"] + (["upgrade_self"] if legal.get("can_upgrade") else [])
    options = [_obj({"kind": {"enum": simple}})]
    if factories:
        options.insert(0, _obj({"kind": {"const": "work"}, "factory": {"enum": factories}}))
        if legal.get("can_upgrade"):
            options.append(_obj({"kind": {"const": "upgrade_factory"},
                                 "factory": {"enum": factories}}))
    return _one_of(options)


def secondary_schema(legal: Mapping[str, Any], allies: set[str]) -> dict[str, Any]:
    """The secondary kinds and targets this resident may choose."""
    targets = list(legal.get("targets", []))
    options = [_obj({"kind": {"const": "none"}})]
    if targets:
        top = math.floor(max(float(legal.get("wealth", 0.0)), 0.0))
        if top >= 1:
            options.append(_obj({"kind": {"const": "gift"}, "target": {"enum": targets},
                                 "amount": {"type": "integer", "minimum": 1, "maximum": top}}))
        options.append(_obj({"kind": {"const": "attack"}, "target": {"enum": targets}}))
        strangers = [t for t in targets if t not in allies]
        if strangers:
            options.append(_obj({"kind": {"const": "merge"}, "target": {"enum": strangers}}))
    return _one_of(options)


def messages_schema(legal: Mapping[str, Any], message_chars: int) -> dict[str, Any]:
    """Up to ``max_messages`` messages to a seen resident or everyone."""
    chars = min(int(message_chars), int(legal.get("max_message_chars", message_chars)))
    return {"type": "array", "maxItems": int(legal.get("max_messages", 2)),
            "items": _obj({"to": {"enum": ["everyone", *legal.get("targets", [])]},
                           "text": text_schema(chars)})}


def answer_schema(keys: list[str], legal: Mapping[str, Any], allies: set[str],
                  limits: dict[str, int]) -> dict[str, Any]:
    """The schema of an answer with ``keys`` (in order); ``limits`` gives text lengths."""
    props: dict[str, Any] = {}
    for key in keys:
        if key == "primary":
            props[key] = primary_schema(legal)
        elif key == "secondary":
            props[key] = secondary_schema(legal, allies)
        elif key == "messages":
            props[key] = messages_schema(legal, limits["message_chars"])
        else:
            props[key] = text_schema(limits[f"{key}_chars"])
    return _obj(props)


def max_json_chars(schema: dict[str, Any]) -> int:
    """Longest compact JSON text the schema admits (bounds tokens: each >= 1 character)."""
    if "anyOf" in schema:
        return max(max_json_chars(s) for s in schema["anyOf"])
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema["properties"]
        return 2 + max(len(props) - 1, 0) + sum(len(json.dumps(k)) + 1 + max_json_chars(v)
                                                for k, v in props.items())
    if kind == "array":
        n = schema.get("maxItems", 8)
        return 2 + n * (max_json_chars(schema["items"]) + 1)
    if kind == "string":
        return 2 + schema.get("maxLength", 256)
    if kind == "integer":
        return max(len(str(schema.get("minimum", -10**6))), len(str(schema.get("maximum", 10**6))))
    return 32


def parse_json(text: str) -> dict[str, Any]:
    """The first JSON object in ``text``; ValueError saying what is wrong."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object found in the answer")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as err:
        raise ValueError(f"the JSON object is malformed or incomplete ({err.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value


def _text(value: Any, key: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f'"{key}" must be a string')
    if len(value) > max_chars:
        raise ValueError(f'"{key}" is longer than {max_chars} characters')
    return value


def check_answer(answer: dict[str, Any], keys: list[str], legal: Mapping[str, Any],
                 allies: set[str], limits: dict[str, int]) -> dict[str, Any]:
    """Validate a parsed answer against what the resident may do now.

    Returns the checked fields: texts as given, ``messages`` as the env's list, and for
    ``primary``/``secondary`` the env's action fields (``primary``, ``factory``,
    ``secondary``, ``target``, ``amount``). Raises ValueError naming the first problem.
    """
    missing = [k for k in keys if k not in answer]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(json.dumps(k) for k in missing)}")
    out: dict[str, Any] = {}
    targets = list(legal.get("targets", []))
    for key in keys:
        value = answer[key]
        if key == "primary":
            out.update(_check_primary(value, legal))
        elif key == "secondary":
            out.update(_check_secondary(value, legal, targets, allies))
        elif key == "messages":
            out["messages"] = _check_messages(value, legal, targets, limits["message_chars"])
        else:
            out[key] = _text(value, key, limits[f"{key}_chars"])
    return out


def _kind(value: Any, key: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ValueError(f'"{key}" must be an object with a "kind"')
    return value["kind"]


def _check_primary(value: Any, legal: Mapping[str, Any]) -> dict[str, Any]:
    kind = _kind(value, "primary")
    factories = [int(m) for m in legal.get("factories", [])]
    if kind in ("explore", "idle"):
        return {"primary": kind}
    if kind in ("upgrade_self", "upgrade_factory") and not legal.get("can_upgrade"):
        raise ValueError(f"{kind} costs more wealth than you have")
    if kind == "upgrade_self":
        return {"primary": kind}
    if kind in ("work", "upgrade_factory"):
        factory = value.get("factory")
        if isinstance(factory, bool) or not isinstance(factory, int) or factory not in factories:
            raise ValueError(f"{kind} needs a factory you know: one of {factories}")
        return {"primary": kind, "factory": factory}
    raise ValueError(f"unknown primary kind {kind!r}; use work, explore, upgrade_self, "
                     f"upgrade_factory or idle")


def _check_secondary(value: Any, legal: Mapping[str, Any], targets: list[str],
                     allies: set[str]) -> dict[str, Any]:
    kind = _kind(value, "secondary")
    if kind == "none":
        return {"secondary": "none"}
    if kind not in ("gift", "attack", "merge"):
        raise ValueError(f"unknown secondary kind {kind!r}; use none, gift, attack or merge")
    target = value.get("target")
    if target not in targets:
        raise ValueError(f"{kind} needs a target among the residents you see: "
                         f"{', '.join(targets) or 'nobody'}")
    if kind == "merge" and target in allies:
        raise ValueError(f"{target} is already your ally")
    out: dict[str, Any] = {"secondary": kind, "target": target}
    if kind == "gift":
        amount = value.get("amount")
        wealth = float(legal.get("wealth", 0.0))
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise ValueError("a gift needs a numeric amount")
        if not 0 < amount <= wealth:
            raise ValueError(f"a gift amount must be above 0 and at most your wealth "
                             f"({wealth:.1f})")
        out["amount"] = float(amount)
    return out


def _check_messages(value: Any, legal: Mapping[str, Any], targets: list[str],
                    message_chars: int) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError('"messages" must be a list')
    limit = int(legal.get("max_messages", 2))
    if len(value) > limit:
        raise ValueError(f"at most {limit} messages a day")
    chars = min(int(message_chars), int(legal.get("max_message_chars", message_chars)))
    out = []
    for k, msg in enumerate(value):
        if not isinstance(msg, dict) or set(msg) != {"to", "text"}:
            raise ValueError(f'messages[{k}] must be {{"to": ..., "text": ...}}')
        if msg["to"] != "everyone" and msg["to"] not in targets:
            raise ValueError(f'messages[{k}] is to {msg["to"]!r}: write to "everyone" or a '
                             f"resident you see")
        text = _text(msg["text"], f"messages[{k}].text", chars)
        if not _TEXT_RE.match(text):
            raise ValueError(f"messages[{k}].text may use letters, digits, spaces and "
                             f"simple punctuation only")
        out.append({"to": msg["to"], "text": text})
    return out
