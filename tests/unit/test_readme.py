"""The README documents every setting."""

from pathlib import Path

from pydantic_settings import BaseSettings

from services.shared import settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    classes = [
        value
        for value in vars(settings).values()
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings
    ]
    assert len(classes) >= 6
    names = {field.upper() for cls in classes for field in cls.model_fields}
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"settings missing from README.md: {missing}"
