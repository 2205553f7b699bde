"""The console's page and files are served by the API itself, without a key, and the page is in OpenAPI."""

from __future__ import annotations

import httpx


def test_the_page_loads_without_a_key(stack):
    page = httpx.get(stack.url + "/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="login-form"' in page.text and "/console/static/js/main.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(stack.url + "/console/", follow_redirects=True).url.path == "/console"


def test_its_files_are_served_from_the_package(stack):
    script = httpx.get(stack.url + "/console/static/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "sessionStorage" in httpx.get(stack.url + "/console/static/js/api.js").text
    assert httpx.get(stack.url + "/console/static/console.css").headers["content-type"].startswith("text/css")
    assert httpx.get(stack.url + "/console/static/nope.js").status_code == 404
    assert httpx.get(stack.url + "/console/static/../../main.py").status_code == 404


def test_the_page_is_documented_and_its_files_are_not(stack):
    paths = httpx.get(stack.url + "/openapi.json").json()["paths"]
    assert "text/html" in paths["/console"]["get"]["responses"]["200"]["content"]
    assert not any(path.startswith("/console/static") for path in paths)
