"""Every error a client can see, each with its AWS error code and HTTP status.

The hierarchy::

    PertinentError                      (code, status; never raised itself)
    ├── InvalidInputException           400  bad field, bad combination, wrong state of data
    ├── ResourceNotFoundException       400 control plane / 404 runtime and events
    ├── ResourceAlreadyExistsException  400
    ├── ResourceInUseException          400 control plane / 409 events
    ├── LimitExceededException          400  quotas (botocore retries this code as throttling)
    ├── InvalidNextTokenException       400
    ├── TooManyTagsException            400
    ├── TooManyTagKeysException         400
    ├── SerializationException          400  body is not a JSON object
    ├── UnknownOperationException       400  X-Amz-Target names no operation
    ├── AccessDeniedException           403
    ├── UnrecognizedClientException     403  unknown access key
    └── InvalidSignatureException       403

The control plane (AWS JSON 1.1) answers every modeled error with HTTP 400, as the
API reference pages do; the runtime and events services (REST-JSON) use the status
their model gives each error. ``status_for(service)`` picks the right one.
"""

from __future__ import annotations

from typing import ClassVar


class PertinentError(Exception):
    """Base of every client-visible error."""

    code: ClassVar[str] = "InternalFailure"
    status: ClassVar[int] = 500
    # Status on the REST-JSON services (runtime, events) where it differs from 400.
    rest_status: ClassVar[int | None] = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def status_for(self, service: str) -> int:
        if service != "personalize" and self.rest_status is not None:
            return self.rest_status
        return self.status


class InvalidInputException(PertinentError):
    code = "InvalidInputException"
    status = 400


class ResourceNotFoundException(PertinentError):
    code = "ResourceNotFoundException"
    status = 400
    rest_status = 404


class ResourceAlreadyExistsException(PertinentError):
    code = "ResourceAlreadyExistsException"
    status = 400


class ResourceInUseException(PertinentError):
    code = "ResourceInUseException"
    status = 400
    rest_status = 409


class LimitExceededException(PertinentError):
    code = "LimitExceededException"
    status = 400


class InvalidNextTokenException(PertinentError):
    code = "InvalidNextTokenException"
    status = 400


class TooManyTagsException(PertinentError):
    code = "TooManyTagsException"
    status = 400


class TooManyTagKeysException(PertinentError):
    code = "TooManyTagKeysException"
    status = 400


class SerializationException(PertinentError):
    code = "SerializationException"
    status = 400


class UnknownOperationException(PertinentError):
    code = "UnknownOperationException"
    status = 400


class AccessDeniedException(PertinentError):
    code = "AccessDeniedException"
    status = 403


class UnrecognizedClientException(PertinentError):
    code = "UnrecognizedClientException"
    status = 403


class InvalidSignatureException(PertinentError):
    code = "InvalidSignatureException"
    status = 403


def not_found(kind: str, arn: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The {kind} {arn} does not exist.")
