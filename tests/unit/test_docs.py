"""Documentation and registries that must not drift from the code."""

from __future__ import annotations

from pathlib import Path

from pertinent.api.protocol import service_model
from pertinent.config import SETTINGS_HELP
from pertinent.resources import OPERATIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text().replace("`", "")
    for name, meaning in SETTINGS_HELP.items():
        assert f"PERTINENT_{name}" in text, name
        assert meaning.split(" (")[0].replace("`", "") in text, meaning


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("##", 1)[0]
    assert "make demo" in head and "make test" in head


def test_handlers_are_real_operations() -> None:
    names = set(service_model("personalize").operation_names)
    assert set(OPERATIONS) <= names
    assert len(names) == 71
