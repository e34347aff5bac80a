"""Turning what a chat model says into what we asked for.

Models wrap answers in reasoning blocks (``<think>...</think>``), code fences and polite prose; these
helpers peel that off. They never guess content: a reply with no JSON in it is a ``ValueError``, which
the client turns into one re-ask and then an ``LLMError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def strip_think(text: str) -> str:
    """The reply without reasoning blocks.

    An unclosed ``<think>`` means the answer never came (the reply was cut), so nothing is left; a
    lone ``</think>`` (servers that put the opening tag in the prompt) drops everything before it.
    """
    text = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        text = text[closes[-1].end() :]
    opened = _THINK_OPEN.search(text)
    if opened:
        text = text[: opened.start()]
    return text.strip()


def parse_json_reply(text: str) -> Any:
    """The JSON object or array a reply carries: bare, fenced, or after leading prose."""
    body = strip_think(text)
    if not body:
        raise ValueError("the reply is empty (or only a reasoning block)")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    for fenced in _FENCE.findall(body):
        try:
            return json.loads(fenced.strip())
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", body):
        try:
            value, _ = decoder.raw_decode(body, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise ValueError("the reply holds no JSON object or array")
