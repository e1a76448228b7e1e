"""Settings come from PERTINENT_* variables and travel to child processes intact."""

from __future__ import annotations

import pytest

from pertinent.config import Settings


def test_training_caps_default_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERTINENT_MAX_TRAINING_MINUTES", raising=False)
    monkeypatch.delenv("PERTINENT_MAX_EPOCHS", raising=False)
    settings = Settings.from_env()
    assert settings.max_training_minutes is None and settings.max_epochs is None
    assert "PERTINENT_MAX_TRAINING_MINUTES" not in settings.to_env()


def test_training_time_cap_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERTINENT_MAX_TRAINING_MINUTES", "12.5")
    settings = Settings.from_env()
    assert settings.max_training_minutes == 12.5
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env() == settings
