"""Words for a node type's `summary`: rules, durations, counts, and the names of stored
things (templates, segments...) and of other nodes, as the canvas and the report show them.

    from engine.sdk.wording import duration_in_words, stored_name

    @classmethod
    def summary(cls, settings):
        template = stored_name("templates", settings.get("template_id"))
        return f"Template: {template}" if template else "Saved template"
"""

from engine.core.wording import (
    amount_in_words,
    count_in_words,
    duration_in_words,
    every_in_words,
    quoted,
    rules_in_words,
    stored_name,
    where_in_words,
)

__all__ = ["amount_in_words", "count_in_words", "duration_in_words", "every_in_words", "quoted", "rules_in_words",
           "stored_name", "where_in_words"]
