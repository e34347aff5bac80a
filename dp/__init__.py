"""Shared core of data-pipeline: settings, database access, table lists, the LLM client and the CLI.

Steps, flows and the service import from here; nothing here imports from them (except the CLI,
which is the outermost layer and wires everything together).
"""
