"""What the page's and the report's Jinja2 templates share: an autoescaping environment and the filter
that lets an ARN or key wrap only at its separators."""

import re

from jinja2 import BaseLoader, Environment, select_autoescape
from markupsafe import Markup, escape


def breakable(identifier: str | None) -> Markup:
    """An ARN or key, escaped, that may wrap only after its ':' and '/' separators: never inside an account
    id or a name (the cell's overflow-wrap breaks a single over-long name as a last resort)."""
    return Markup(re.sub(r"([:/])", r"\1<wbr>", str(escape("" if identifier is None else identifier))))


def environment(loader: BaseLoader) -> Environment:
    """Templates autoescaped (html, htm, xml), block tags on lines of their own leaving no blank lines."""
    env = Environment(loader=loader, autoescape=select_autoescape(), trim_blocks=True, lstrip_blocks=True)
    env.filters["breakable"] = breakable
    return env
