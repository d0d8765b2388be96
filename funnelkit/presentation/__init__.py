"""Presentation: wording from params/text.yaml, tables, charts, the report context and the HTML page and index templates."""
