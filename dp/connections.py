"""Connection references: how a business-database URL reaches a flow run without its password.

Flow parameters are visible in the Prefect UI and stored in Prefect's database, so a flow receives a
*reference* and resolves it inside the run:

* ``named:<name>``: a connection configured in ``DP_CONNECTIONS`` (a JSON object name -> URL);
* ``secret:<block>``: a Prefect ``Secret`` block holding the URL;
* ``process:<token>``: a URL registered in this process (the CLI runs the flow in-process);
* a URL without a password, used as it is.

A URL with a password is refused as a reference: ``reference_for_url`` turns it into one first.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from dp.database import validate_url
from dp.settings import get_settings

_process_connections: dict[str, str] = {}


class ConnectionReferenceError(ValueError):
    """A reference that does not resolve; the message says what to configure."""


def has_password(url: str) -> bool:
    return urlsplit(url).password not in (None, "")


def reference_for_url(url: str) -> str:
    """A reference safe to put in flow parameters for a URL used by a flow in this process."""
    validate_url(url)
    if not has_password(url):
        return url
    token = secrets.token_hex(8)
    _process_connections[token] = url
    return f"process:{token}"


def resolve_connection(reference: str) -> str:
    """The URL behind a reference (see the module docstring for the forms)."""
    kind, _, rest = reference.partition(":")
    if kind == "named":
        connections = get_settings().connections
        if rest not in connections:
            raise ConnectionReferenceError(
                f"no connection named {rest!r}; add it to DP_CONNECTIONS (known: {sorted(connections) or 'none'})"
            )
        return validate_url(connections[rest].get_secret_value())
    if kind == "secret":
        from prefect.blocks.system import Secret

        try:
            return validate_url(str(Secret.load(rest).get()))
        except ValueError as exc:
            raise ConnectionReferenceError(f"cannot load Prefect Secret block {rest!r}: {exc}") from None
    if kind == "process":
        if rest not in _process_connections:
            raise ConnectionReferenceError(
                "process connection reference is not known to this process; process references only work "
                "for flows run in-process by `data-pipeline run`"
            )
        return _process_connections[rest]
    validate_url(reference)
    if has_password(reference):
        raise ConnectionReferenceError(
            "a connection with a password cannot be passed as a flow parameter; use named:<name> "
            "(DP_CONNECTIONS) or secret:<Prefect Secret block>"
        )
    return reference
