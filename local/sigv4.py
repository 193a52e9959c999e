"""The emulated Function URL's ``AWS_IAM`` auth type: SigV4 checked with botocore's signer.

With ``auth = "iam"``, ``llamaws serve --lambda`` plays what Lambda does in front of a
function URL whose auth type is ``AWS_IAM``: a request must carry a Signature V4
``Authorization`` header for service ``lambda`` in the emulator's region, made with
the credentials this process has (botocore's chain: in the default session, the
dummy ones the emulator sets for its own moto server). The signature is recomputed
with botocore's own :class:`botocore.auth.SigV4Auth` over the headers the caller
signed, the raw path and query, and the body's SHA-256; a request that fails is
answered 403 ``{"Message": "Forbidden"}`` before any invocation (the reason is
logged), one that passes reaches the function with the caller in
``requestContext.authorizer.iam``, the field a real function URL fills.

Not emulated: IAM policies (any signature made with the known credentials is
allowed, as for an identity with ``lambda:InvokeFunctionUrl``), credentials other
than this process's, and query-string (pre-signed URL) signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["SigV4Verifier", "SignatureRejected"]

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_UNSIGNED = {"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
_LOCAL_ACCOUNT = "000000000000"


class SignatureRejected(Exception):
    """Why a request's signature is not accepted (logged; the caller gets a plain 403)."""


@dataclass(frozen=True)
class SigV4Verifier:
    """Checks SigV4 signatures made with one set of credentials."""

    access_key: str
    secret_key: str
    token: str | None
    region: str
    service: str = "lambda"
    max_skew_seconds: float = 300.0
    """AWS refuses a signature whose ``X-Amz-Date`` is more than 5 minutes off."""
    clock: Callable[[], float] = time.time

    @classmethod
    def from_environment(cls, region: str) -> SigV4Verifier:
        """The credentials botocore finds for this process (env, profile, …)."""
        import botocore.session

        from llamaws.adapter.errors import LlamawsError

        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise LlamawsError(
                "auth = 'iam' needs AWS credentials to check signatures against",
                hint="Set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (any values locally).",
            )
        frozen = credentials.get_frozen_credentials()
        return cls(str(frozen.access_key), str(frozen.secret_key), frozen.token or None, region)

    def verify(
        self,
        method: str,
        raw_path: str,
        query_string: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> dict[str, Any]:
        """The caller (``requestContext.authorizer.iam``), or :class:`SignatureRejected`."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        joined: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        match = _AUTH_RE.match(joined.get("authorization", "").strip())
        if match is None:
            raise SignatureRejected("no 'Authorization: AWS4-HMAC-SHA256 …' header")
        access_key, date, region, service, terminator = _credential(match["credential"])
        if access_key != self.access_key:
            raise SignatureRejected(f"unknown access key {access_key!r}")
        if (region, service, terminator) != (self.region, self.service, "aws4_request"):
            raise SignatureRejected(
                f"credential scope {region}/{service}/{terminator}, expected "
                f"{self.region}/{self.service}/aws4_request"
            )
        stamp = joined.get("x-amz-date", "")
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            raise SignatureRejected("'host' and 'x-amz-date' must be signed")
        try:
            moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise SignatureRejected(f"X-Amz-Date {stamp!r} is not YYYYMMDDTHHMMSSZ") from None
        if stamp[:8] != date:
            raise SignatureRejected("the credential's date is not X-Amz-Date's")
        if abs(self.clock() - moment) > self.max_skew_seconds:
            raise SignatureRejected(f"signature expired: X-Amz-Date {stamp} is over 5 min off")
        if (self.token or None) != (joined.get("x-amz-security-token") or None):
            raise SignatureRejected("X-Amz-Security-Token does not match the credentials")
        if self.token and "x-amz-security-token" not in signed:
            raise SignatureRejected("X-Amz-Security-Token must be signed")
        missing = [name for name in signed if name not in joined]
        if missing:
            raise SignatureRejected(f"signed headers missing from the request: {missing}")
        declared = joined.get("x-amz-content-sha256")
        if (
            declared is not None
            and declared not in _UNSIGNED
            and not hmac.compare_digest(declared, hashlib.sha256(body).hexdigest())
        ):
            raise SignatureRejected("x-amz-content-sha256 is not the body's SHA-256")

        url = f"http://{joined['host']}{raw_path}" + (f"?{query_string}" if query_string else "")
        request = AWSRequest(
            method=method.upper(),
            url=url,
            headers={name: joined[name] for name in signed},
            data=body,
        )
        request.context["timestamp"] = stamp
        signer = SigV4Auth(
            Credentials(self.access_key, self.secret_key, self.token), self.service, self.region
        )
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["signature"]):
            raise SignatureRejected(
                "the signature does not match (signed headers, path, query or body differ)"
            )
        return {
            "accessKey": access_key,
            "accountId": _LOCAL_ACCOUNT,
            "callerId": access_key,
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{_LOCAL_ACCOUNT}:user/{access_key}",
            "userId": access_key,
        }


def _credential(value: str) -> tuple[str, str, str, str, str]:
    parts = value.split("/")
    if len(parts) != 5:
        raise SignatureRejected(f"malformed Credential {value!r}")
    return parts[0], parts[1], parts[2], parts[3], parts[4]
