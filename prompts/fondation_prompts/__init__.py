"""The prompts of the six analysis steps, one versioned template per step.

Templates are Markdown files under `v<N>/`, written with `str.format`
placeholders (`{language}`, `{abstractions}`...; literal braces are doubled).
`render` refuses a template with a parameter left unfilled, or a parameter
the template does not use, so a typo fails loudly instead of shipping a
prompt with a hole in it.

`PROMPT_VERSION` names the directory in use. It is part of the runner's cache
key: changing any template means bumping it (a new directory), so cached
answers to the old wording are never served for the new one. Older
directories stay, so the answers cached for them keep their meaning: `v1`
wrote step 6 as one index page; `v2` writes one hands-on tutorial per
chapter (`tutorial`) and an overview page (`overview`), as Fondation does.
"""

from __future__ import annotations

import string
from importlib import resources

from fondation_contracts.ingest import STEP_NAMES

PROMPT_VERSION = "v2"

TEMPLATE_NAMES: tuple[str, ...] = (*STEP_NAMES, "overview", "feedback")
"""One template per step (`tutorial` is one chapter's tutorial), plus `overview`, the course's
front page written in step 6 beside the tutorials, and `feedback`, appended to a step's prompt
when its previous answer was rejected."""

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "ru": "Russian",
    "uk": "Ukrainian",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
}
"""The output languages an AnalysisJob accepts, named as a prompt names them."""


class PromptError(Exception):
    """A template is missing, or its parameters do not match what was given."""


def language_name(code: str) -> str:
    """`fr` -> `French (fr)`; an unknown code is passed through as is."""
    name = LANGUAGE_NAMES.get(code)
    return f"{name} ({code})" if name else code


def template(name: str, version: str = PROMPT_VERSION) -> str:
    """The raw text of one template."""
    if name not in TEMPLATE_NAMES:
        raise PromptError(f"unknown prompt template {name!r}; known: {', '.join(TEMPLATE_NAMES)}")
    resource = resources.files(__package__).joinpath(version, f"{name}.md")
    if not resource.is_file():
        raise PromptError(f"prompt template {version}/{name}.md is missing")
    return resource.read_text(encoding="utf-8")


def parameters(name: str, version: str = PROMPT_VERSION) -> frozenset[str]:
    """The parameter names a template expects."""
    fields: set[str] = set()
    for _, field, spec, conversion in string.Formatter().parse(template(name, version)):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise PromptError(
                f"prompt template {version}/{name}.md: placeholder {{{field}}} must be a plain name"
            )
        fields.add(field)
    return frozenset(fields)


def render(name: str, /, version: str = PROMPT_VERSION, **params: str) -> str:
    """Fill a template; every expected parameter must be given, and only those."""
    expected = parameters(name, version)
    missing = sorted(expected - params.keys())
    unused = sorted(params.keys() - expected)
    if missing or unused:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unused:
            problems.append(f"not in the template: {', '.join(unused)}")
        raise PromptError(f"prompt template {version}/{name}.md: {'; '.join(problems)}")
    return template(name, version).format_map(params)
