"""The API docs pages work offline: every asset they reference is served by the app."""

from __future__ import annotations

import re
from types import SimpleNamespace


def test_docs_pages_load_every_asset_locally(review_app: SimpleNamespace) -> None:
    client = review_app.client
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "/openapi.json" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert "oauth2" in client.get("/docs/oauth2-redirect").text.lower()
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
