"""The four pipeline steps as plain Python: no Prefect, no HTTP, no tracking tables.

Each step package exposes one entry function that takes its inputs and an output directory and
returns a JSON-serialisable result; ``flows/`` wraps them into Prefect tasks.
"""
