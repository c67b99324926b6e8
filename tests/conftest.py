from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge import create_app, shutdown_app

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    shutil.copytree(PLUGINS, folder)
    return folder


@pytest.fixture
def make_app(tmp_path: Path, plugin_dir: Path):
    apps = []

    def build(**overrides):
        config = {
            "plugins": {"dirs": [str(plugin_dir)]},
            "storage": {"sqlite": {"database_path": str(tmp_path / "data" / "ex.db")}},
            "scheduler": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
        app = create_app(config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        shutdown_app(app, timeout=1)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
