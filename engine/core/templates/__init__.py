"""Message templates: merge tags rendered in a Jinja2 sandbox.

Merge tags a template may use (see `context_for`):

    {{ profile.external_id }}   {{ profile.email }}   {{ profile.phone }}
    {{ profile.timezone }}      {{ profile.points }}
    {{ profile.attributes.first_name }}      any attribute of the customer
    {{ event.name }}  {{ event.properties.order_id }}   the event that started the journey
    {{ campaign.id }} {{ campaign.name }}

A missing value (absent, null or "") never fails a send: it renders the template's declared
default (`Template.defaults`, keyed by dotted path such as "profile.attributes.first_name"),
else the inline default `{{ profile.attributes.first_name | default("there") }}`, else "".
Jinja's statements work (`if`, `for`, `set`, `macro`) with a safe subset of its filters.

Template authors are not trusted. The sandbox reaches nothing but the plain data we pass in:
no Python internals (`__class__`, `__globals__`), no methods (`"x".upper()`: use `| upper`),
no globals (`range`, `lipsum`, `cycler`, `self`, `config`), no other files (no loader, and
include / import / extends are rejected at save time). Each render is capped in time, output
size and loop iterations, so a template cannot hang a dispatcher or exhaust its memory.
Every failure is an `engine.core.errors.TemplateError` naming the field (and line, when known).

The `html` field is autoescaped (a customer named `<script>` arrives as `&lt;script&gt;`);
every other field is plain text: the channel that puts it into markup escapes it there.

One idea a module: `limits` (what a render may cost), `sandbox` (the environment, its
filters and blank values), `compiling` (save-time checks), `rendering` (`Renderer`),
`context` (a recipient's merge context) and `content` (channel fields, merge tags, checks
before saving). What callers use is exported here.
"""

from __future__ import annotations

from engine.core.templates.content import CHANNEL_FIELDS, merge_tags, validate_content, validate_defaults
from engine.core.templates.context import PROFILE_FIELDS, ROOTS, context_for
from engine.core.templates.limits import (
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    MAX_SOURCE_CHARS,
    MAX_STEPS,
    MAX_WORK_CHARS,
)
from engine.core.templates.rendering import Renderer, render
from engine.core.templates.sandbox import SAFE_FILTERS

__all__ = [
    "CHANNEL_FIELDS",
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "MAX_SOURCE_CHARS",
    "MAX_STEPS",
    "MAX_WORK_CHARS",
    "PROFILE_FIELDS",
    "ROOTS",
    "SAFE_FILTERS",
    "Renderer",
    "context_for",
    "merge_tags",
    "render",
    "validate_content",
    "validate_defaults",
]
