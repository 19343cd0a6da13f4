from __future__ import annotations

import pytest

import fondation_prompts
from fondation_prompts import PromptError, parameters, render


@pytest.mark.parametrize("name", fondation_prompts.TEMPLATE_NAMES)
def test_every_template_renders_with_its_parameters(name: str) -> None:
    expected = parameters(name)
    values = {p: f"<<{p}>>" for p in expected}

    text = render(name, **values)

    for parameter, value in values.items():
        assert value in text
        assert "{" + parameter + "}" not in text


@pytest.mark.parametrize("name", set(fondation_prompts.TEMPLATE_NAMES) - {"feedback"})
def test_step_templates_take_the_output_language(name: str) -> None:
    assert "language" in parameters(name)


def test_a_missing_parameter_fails_loudly() -> None:
    values = {p: "x" for p in parameters("order") if p != "relationships"}
    with pytest.raises(PromptError, match="missing relationships"):
        render("order", **values)


def test_an_unknown_parameter_fails_loudly() -> None:
    values = {p: "x" for p in parameters("order")}
    with pytest.raises(PromptError, match="not in the template: relationshps"):
        render("order", relationshps="typo", **values)


def test_unknown_template_and_version() -> None:
    with pytest.raises(PromptError, match="unknown prompt template"):
        fondation_prompts.template("summary")
    with pytest.raises(PromptError, match=r"v0/order\.md is missing"):
        fondation_prompts.template("order", version="v0")


def test_language_names() -> None:
    assert fondation_prompts.language_name("fr") == "French (fr)"
    assert fondation_prompts.language_name("eo") == "eo"
