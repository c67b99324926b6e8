from __future__ import annotations

import pytest

from bridge.config import ConfigError, from_dict, load, parse_duration


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("12h", 43200), ("1h30m", 5400), ("500ms", 0.5), (5, 5), ("2.5", 2.5)],
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        from_dict({"execution_tracking": {"cleanup_interval": "soon"}})
    assert str(err.value) == "execution_tracking.cleanup_interval: invalid duration 'soon'"
    with pytest.raises(ConfigError, match=r"plugins\.settings\.x\.max_attempts"):
        from_dict({"plugins": {"settings": {"x": {"max_attempts": 0}}}})
    with pytest.raises(ConfigError, match=r"runner\.retry_on"):
        from_dict({"runner": {"retry_on": ["sometimes"]}})


def test_unknown_key_warns(caplog):
    from_dict({"server": {"prot": 1}})
    assert "Unknown config key server.prot" in caplog.text


def test_seed_config_loads_and_retention_precedence(tmp_path):
    cfg = load("config.yaml")
    assert cfg.server.port == 8001 and cfg.storage.sqlite.enable_wal is True
    assert cfg.execution_tracking.cleanup_interval == 86400
    assert cfg.retention_days == 30
    both = from_dict(
        {
            "storage": {"sqlite": {"retention_days": 30}},
            "execution_tracking": {"retention_days": 90},
        }
    )
    assert both.retention_days == 90


def test_storage_type_selects_its_section_and_an_unknown_type_stops_start_up():
    cfg = from_dict({"storage": {"type": "sqlite", "sqlite": {"retention_days": 7}}})
    assert cfg.storage.backend is cfg.storage.sqlite and cfg.retention_days == 7
    with pytest.raises(ConfigError) as err:
        from_dict({"storage": {"type": "mongodb"}})
    assert str(err.value) == (
        "storage.type: unsupported storage type (available: sqlite) 'mongodb'"
    )


def test_config_override_beats_class_attribute(make_app):
    app = make_app(plugins={"settings": {"hanging": {"timeout": "50ms"}}})
    plugin = app.extensions["bridge.registry"].get("hanging")
    assert plugin.settings.timeout == pytest.approx(0.05)
