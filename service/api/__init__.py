"""The REST API (FastAPI, served by uvicorn): create, run, watch, cancel and clean up pipeline tasks.

Parts: ``main`` builds the app and serves it; ``routes/`` has one router per resource; ``deps``
the Annotated dependencies (connection, settings, Prefect, task id, API key); ``schemas`` request
and response shapes; ``envelope`` and ``errors`` the answer format and failure mapping (never a
traceback); ``requests`` checks input; ``lifecycle`` creates, starts, cancels and deletes tasks;
``runs`` talks to Prefect; ``files`` is the only file-system access; ``cleanup`` is shared by
DELETE and the retention flow; ``views`` shapes rows for answers; ``pool`` holds the connections.
Importing this package imports neither FastAPI nor Prefect (the retention flow uses ``cleanup``).
"""
