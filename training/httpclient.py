"""A tiny keep-alive HTTP client for scripted annotators (simulation, benchmarks); no Django here.

It keeps cookies, logs in through the site's login form and sends Django's CSRF header, so it
exercises the same endpoints and checks as the browser. It talks only to this machine.
"""

import http.client
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class HttpError(RuntimeError):
    pass


class Browserless:
    """A tiny keep-alive HTTP client with a cookie jar and Django's CSRF handling."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("simulated annotators only talk to a site on this machine")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None, accept: str = "application/json"):
        headers = {"Accept": accept, "Host": f"{self.host}:{self.port}", "Referer": f"http://{self.host}:{self.port}/"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(header).items():
                self.cookies[key] = morsel.value
        return response.status, payload

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/login/", accept="text/html")
        match = _CSRF_INPUT.search(page.decode())
        if status != 200 or not match:
            raise HttpError(f"login page answered {status}")
        status, _ = self.request(
            "POST", "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)}
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise HttpError(f"login as {username} failed ({status})")
