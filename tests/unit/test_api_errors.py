"""An unreachable or exhausted database is a 503 with Retry-After, never a bare 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from app.api.errors import install_error_handlers


def test_database_unavailable_is_503_with_retry_after():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise OperationalError("SELECT 1", {}, Exception("sorry, too many clients already"))

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "ServiceUnavailableError" and response.json()["detail"]
