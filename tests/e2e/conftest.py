"""Browser tests: Debian's Chromium driven by Playwright, against the app served from a thread.

Each test gets a fresh database seeded with the demo data (`engine.demo.seed`:
partners, users with the demo password, and sample cases of every lifecycle)
on the simulated clock, and the app served by `werkzeug.serving.make_server`
on 127.0.0.1. Screenshots go to ``test-artifacts/`` (gitignored).
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": [*browser_type_launch_args.get("args", []),
                     "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run"]}


@pytest.fixture(scope="session")
def base_url():
    """Pages are opened with absolute addresses from `live_server` (each test has its own server)."""
    return None


@pytest.fixture
def demo_runtime(runtime):
    from engine.demo import seed

    seed(runtime)
    return runtime


@pytest.fixture
def live_server(demo_runtime):
    from web import create_app

    app = create_app({"RUNTIME": demo_runtime, "SECRET_KEY": "e2e-" + "s" * 40, "DEMO": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def shot(request):
    """shot(page, name): a full-page screenshot in test-artifacts/<test>-<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{name}.png".replace("/", "_").replace("[", "_").replace("]", "")
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
