"""Who is calling and from which region, read from the SigV4 Authorization header.

Without configured access keys any signature is accepted (as local emulators do) and
every caller is the configured account; the region comes from the credential scope
(``Credential=AKID/20240101/us-east-1/personalize/aws4_request``), so ARNs carry the
region the client was configured with.
"""

from __future__ import annotations

from pertinent.config import Settings


def credential_scope(authorization: str) -> list[str] | None:
    """The parts of the credential scope: [access key, date, region, service, terminator]."""
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return None
    value = authorization[start + len(marker) :].split(",", 1)[0].strip()
    parts = value.split("/")
    return parts if len(parts) == 5 else None


def identify(authorization: str, settings: Settings) -> tuple[str, str]:
    """(account id, region) of a request with this Authorization header."""
    scope = credential_scope(authorization)
    region = scope[2] if scope and scope[2] else settings.region
    return settings.account_id, region
