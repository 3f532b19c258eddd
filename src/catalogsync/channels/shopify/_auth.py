"""
Where the Shopify adapter gets its Admin API access tokens.

Rule 1: tokens and client secrets are `catalogsync.Secret` values from the moment they enter;
providers reveal them only into the request that carries them, and their reprs mask them.

Rule 2: a refreshing provider refreshes *before* expiry, on the transport's injected clock, and
only one thread refreshes at a time (the others wait for its token instead of asking again).

Since 2026-01 new custom apps come from the Dev Dashboard and get short-lived tokens through the
client-credentials grant; older admin-created custom apps keep a static ``shpat_`` token.
"""

from __future__ import annotations

import threading
from typing import Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from ..._errors import ChannelAuthError, InvalidArgumentError
from ..._secrets import Secret
from .._transport import HttpTransport, Verdict, VerdictKind, retry_after
from . import _sansio


__all__ = ["ClientCredentials", "StaticToken", "TokenProvider"]

#: Refresh this many seconds before a token expires (tokens live about 24 hours).
DEFAULT_REFRESH_MARGIN: Final = 300.0


def _secret(value: Secret | str, field: str) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value:
        return Secret(value)
    raise InvalidArgumentError(f"{field} must be a Secret or a non-empty str", field=field)


@runtime_checkable
class TokenProvider(Protocol):
    """
    **Protocol:** the source of a store's Admin API access token.

    .. versionadded:: 0.1.0
    """

    #: Whether asking again after a 401 may give a different, valid token.
    refreshable: bool

    def access_token(self, transport: HttpTransport, base_url: str) -> Secret:
        """Return a token valid now (fetching or refreshing through *transport* if needed)."""
        ...

    def invalidate(self, token: Secret) -> None:
        """Forget *token* (Shopify rejected it); the next call fetches a new one if it can."""
        ...


class StaticToken:
    """
    A fixed access token (a legacy custom app's ``shpat_...`` token).

    Example:
        >>> from catalogsync import Secret
        >>> StaticToken(Secret("shpat_not_a_real_token"))
        StaticToken(Secret('********'))

    Args:
        token: The token, as a `catalogsync.Secret` (a plain string is wrapped at once).

    .. versionadded:: 0.1.0
    """

    refreshable = False

    def __init__(self, token: Secret | str) -> None:
        self._token = _secret(token, "StaticToken.token")

    def access_token(self, transport: HttpTransport, base_url: str) -> Secret:
        """Return the token."""
        del transport, base_url
        return self._token

    def invalidate(self, token: Secret) -> None:
        """Nothing to do: a static token cannot be refreshed."""
        del token

    def __repr__(self) -> str:
        return f"StaticToken({self._token!r})"


class ClientCredentials:
    """
    The client-credentials grant of a Dev Dashboard app installed on the store.

    ``POST /admin/oauth/access_token`` with the app's client id and secret returns a token
    that lives about 24 hours; it is refreshed *refresh_margin* seconds before it expires, or
    at once after Shopify rejects it.

    Example:
        >>> from catalogsync import Secret
        >>> ClientCredentials("app-client-id", Secret("not-a-real-client-secret"))
        ClientCredentials(client_id='app-client-id', client_secret=Secret('********'))

    Args:
        client_id: The app's client id (not secret).
        client_secret: The app's client secret.
        refresh_margin: Seconds before expiry at which the token is refreshed.

    .. versionadded:: 0.1.0
    """

    refreshable = True

    def __init__(
        self,
        client_id: str,
        client_secret: Secret | str,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise InvalidArgumentError(
                "client_id must be a non-empty str", field="ClientCredentials.client_id"
            )
        if refresh_margin < 0:
            raise InvalidArgumentError(
                "refresh_margin must be >= 0", field="ClientCredentials.refresh_margin"
            )
        self.client_id = client_id
        self._secret = _secret(client_secret, "ClientCredentials.client_secret")
        self.refresh_margin = float(refresh_margin)
        self._lock = threading.Lock()
        self._token: Secret | None = None
        self._expires_at: float | None = None
        #: How many tokens were fetched (for tests and monitoring).
        self.fetches = 0

    def access_token(self, transport: HttpTransport, base_url: str) -> Secret:
        """Return the cached token, or fetch a new one when it is missing or about to expire."""
        with self._lock:
            now = transport.clock.monotonic()
            if self._token is not None and (
                self._expires_at is None or now < self._expires_at - self.refresh_margin
            ):
                return self._token
            response = transport.send(
                lambda: _sansio.token_request(base_url, self.client_id, self._secret),
                classify=_classify_token,
            )
            if response.status_code != 200:  # noqa: PLR2004 - HTTP status
                host = urlsplit(base_url).netloc or base_url
                raise ChannelAuthError(
                    f"Shopify rejected the client credentials of app {self.client_id!r} for "
                    f"{host} ({_sansio.token_error(response)}); check the client id and secret "
                    "and that the app is installed on the store",
                    channel="shopify",
                    status_code=response.status_code,
                    request_id=response.headers.get("x-request-id"),
                )
            answer = _sansio.read_token(response)
            self.fetches += 1
            self._token = answer.token
            self._expires_at = now + answer.expires_in if answer.expires_in is not None else None
            return answer.token

    def invalidate(self, token: Secret) -> None:
        """Drop *token* if it is still the cached one (another thread may have refreshed)."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._expires_at = None

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret={self._secret!r})"


def _classify_token(response: httpx.Response) -> Verdict:
    # A 400/401 is an answer about the credentials: hand it back to explain it, never retry it.
    status = response.status_code
    if status == 429:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.THROTTLED, retry_after(response) or 1.0, "HTTP 429")
    if status >= 500:  # noqa: PLR2004 - HTTP status
        return Verdict(VerdictKind.RETRY, retry_after(response), f"HTTP {status}")
    return Verdict.ok()
