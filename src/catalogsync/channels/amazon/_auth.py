"""
Login with Amazon (LWA): the refresh-token exchange and a per-client access-token cache.

Rule 1: SP-API needs no AWS Signature Version 4 since October 2023; an LWA access token in the
``x-amz-access-token`` header is the whole authentication.

Rule 2: the client secret, the refresh token and every access token are `Secret` values. Only
the request builder reveals them, on the wire; reprs, logs and exceptions show ``********``.

Rule 3: one cache per channel instance (not per process, unlike the common global TTL cache that
kept a single token for every seller). The token is refreshed ``skew`` seconds before it expires
on the injected clock, under a lock, so concurrent pushes make a single exchange.
"""

from __future__ import annotations

import threading
from typing import Any

from attrs import field, frozen

from ..._clock import Clock
from ..._errors import InvalidArgumentError
from ..._secrets import Secret, get_logger
from .._transport import HttpTransport
from ._sansio import LWA_TOKEN_URL, classify_token, read_token, token_request


__all__ = ["LwaCredentials"]

_log = get_logger("catalogsync.channels.amazon")


def _secret(name: str) -> Any:
    def check(_inst: Any, _attribute: Any, value: Any) -> None:
        if not isinstance(value, Secret):
            raise InvalidArgumentError(
                f"LwaCredentials.{name} must be a catalogsync.Secret (wrap the value: "
                f"Secret(...)) so it never reaches a log or a repr",
                field=f"LwaCredentials.{name}",
            )

    return check


def _client_id(_inst: Any, _attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(
            "LwaCredentials.client_id must be a non-empty str", field="LwaCredentials.client_id"
        )


@frozen
class LwaCredentials:
    """
    The Login with Amazon credentials of an SP-API app authorized by one seller.

    Attributes:
        client_id: The app's LWA client identifier (not secret).
        client_secret: The app's LWA client secret.
        refresh_token: The seller's refresh token (``Atzr|...``) from the authorization.
        token_url: The token endpoint (the emulator's on a loopback port in tests).

    Example:
        >>> from catalogsync import Secret
        >>> creds = LwaCredentials(
        ...     "amzn1.application-oa2-client.abc",
        ...     client_secret=Secret("lwa-client-secret"),
        ...     refresh_token=Secret("Atzr|refresh-token"),
        ... )
        >>> creds.refresh_token
        Secret('********')

    .. versionadded:: 0.1.0
    """

    client_id: str = field(validator=_client_id)
    client_secret: Secret = field(validator=_secret("client_secret"), kw_only=True)
    refresh_token: Secret = field(validator=_secret("refresh_token"), kw_only=True)
    token_url: str = field(default=LWA_TOKEN_URL, kw_only=True)


class TokenCache:
    """
    Hands out a valid access token, exchanging the refresh token when needed.

    Args:
        credentials: The LWA credentials.
        transport: Sends the exchange (retries 5xx and throttles; never logs bodies).
        clock: Expiry is judged on it.
        user_agent: The ``user-agent`` header.
        skew: Refresh this many seconds before the token expires.
    """

    def __init__(
        self,
        credentials: LwaCredentials,
        transport: HttpTransport,
        clock: Clock,
        *,
        user_agent: str,
        skew: float = 60.0,
    ) -> None:
        self._credentials = credentials
        self._transport = transport
        self._clock = clock
        self._user_agent = user_agent
        self._skew = skew
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._expires = 0.0
        #: How many exchanges were made (tests and benchmarks read it).
        self.exchanges = 0

    def token(self) -> str:
        """
        A valid access token (exchanging the refresh token when missing or about to expire).

        Raises:
            ChannelAuthError: Amazon rejected the credentials (``invalid_grant``...).
            ChannelUnavailableError: the token endpoint kept failing.
        """
        with self._lock:
            now = self._clock.monotonic()
            if self._token is None or now >= self._expires - self._skew:
                creds = self._credentials
                response = self._transport.send(
                    lambda: token_request(
                        creds.token_url,
                        client_id=creds.client_id,
                        client_secret=creds.client_secret,
                        refresh_token=creds.refresh_token,
                        user_agent=self._user_agent,
                    ),
                    classify=classify_token,
                )
                grant = read_token(response)
                self.exchanges += 1
                self._token = grant.access_token
                self._expires = now + grant.expires_in
                _log.debug("amazon: new LWA access token, valid %.0f s", grant.expires_in)
            return self._token.reveal()

    def invalidate(self, token: str) -> None:
        """Forget *token* if it is still the cached one (Amazon refused it)."""
        with self._lock:
            if self._token is not None and self._token.reveal() == token:
                self._token = None

    def __repr__(self) -> str:
        return f"TokenCache(client_id={self._credentials.client_id!r})"
