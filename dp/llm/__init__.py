"""Talking to language models: the chat client (``client``), reply parsing (``replies``) and the
offline glossary behind the heuristic provider (``glossary``)."""
