"""The shape and SQL of a custom check file, checked without a database (at DAG parse).

A check file is exactly what the built-in ones are: SQL comments, then

    {% from 'macros/check.sql' import check %}
    {% call check('<logic>', needs=[<the data sets of its catalogue entry>]) %}
    SELECT ...   -- one query returning (framework, check_id, account_id, resource_id, resource_type, status, reason)
    {% endcall %}

and nothing else. The body is plain SQL (no Jinja inside it) and a single SELECT: the macro alone
writes verdicts (aws_policy_begin_check / _check_body / aws_policy_finish_check, in one transaction),
so a body that inserts, updates, deletes, creates, or calls the macro's procedures itself is refused.
The body is parsed by PostgreSQL's own parser (libpg_query, through pglast); `python -m iam_audit.custom
validate` then plans it against the staging schema on a real server.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
from jinja2 import nodes

from iam_audit.custom import Refusal

MACRO_TEMPLATE = "macros/check.sql"
BIND_PARAMETERS = ("snapshot_date", "run_id", "frameworks")
VERDICT_COLUMNS = ("framework", "check_id", "account_id", "resource_id", "resource_type", "status", "reason")
WRITING_STATEMENTS = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "CopyStmt", "CreateStmt",
                      "CreateTableAsStmt", "TruncateStmt", "DropStmt", "AlterTableStmt", "GrantStmt"}
# functions that write, lock, or leave the session: the macro calls the first ones itself
FORBIDDEN_FUNCTIONS = re.compile(
    r"^(aws_policy_.*|iam_audit_lock.*|iam_audit_take_lock|set_config|pg_advisory.*|pg_try_advisory.*|dblink.*"
    r"|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_read_.*file|lo_.*|nextval|setval"
    r"|pg_notify|pg_sleep.*)$")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")


def validate_check_file(path: Path, logic: str, needs: tuple[str, ...]) -> list[Refusal]:
    """Refusals of checks/<logic>.sql: [] when it may be scheduled."""
    label = str(path)
    if not path.is_file():
        return [Refusal(label, 1, f"missing: catalogue/controls/{logic}.yaml has no check file checks/{logic}.sql")]
    source = path.read_text(encoding="utf-8")
    try:
        template = jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [Refusal(label, exc.lineno or 1, f"not a valid Jinja template: {exc.message}")]

    imported, call = False, None
    for node in template.body:
        if isinstance(node, nodes.FromImport):
            if (isinstance(node.template, nodes.Const) and node.template.value == MACRO_TEMPLATE
                    and [n if isinstance(n, str) else n[0] for n in node.names] == ["check"] and not imported):
                imported = True
                continue
            return [Refusal(label, node.lineno, f"only {{% from '{MACRO_TEMPLATE}' import check %}} may be "
                                                "imported, once")]
        if isinstance(node, nodes.CallBlock) and call is None and imported:
            call = node
            continue
        if isinstance(node, nodes.Output) and all(isinstance(n, nodes.TemplateData) for n in node.nodes):
            text = "".join(n.data for n in node.nodes)
            offending = _outside_text(text)
            if offending is None:
                continue
            return [Refusal(label, node.lineno + offending,
                            "SQL outside the check macro: only comments may stand outside "
                            "{% call check(...) %} ... {% endcall %}, so that every verdict is written by the macro")]
        return [Refusal(label, node.lineno, "the file must be SQL comments, the macro import and one "
                                            "{% call check(...) %} block; found "
                                            f"{type(node).__name__} outside it" if imported else
                                            f"the file must start with {{% from '{MACRO_TEMPLATE}' import check %}}")]
    if call is None:
        return [Refusal(label, 1, f"no {{% call check('{logic}', needs=[...]) %}} block: a check writes its verdicts "
                                  "through the check macro")]

    problems = _check_call(label, call, logic, needs)
    if problems:
        return problems
    body_nodes = call.body
    if not all(isinstance(n, nodes.Output) and all(isinstance(d, nodes.TemplateData) for d in n.nodes)
               for n in body_nodes):
        bad = next(n for n in body_nodes if not (isinstance(n, nodes.Output)
                                                 and all(isinstance(d, nodes.TemplateData) for d in n.nodes)))
        return [Refusal(label, bad.lineno, "the check body must be plain SQL: no Jinja expressions or statements")]
    body = "".join(d.data for n in body_nodes for d in n.nodes)
    first_line = body_nodes[0].lineno if body_nodes else call.lineno
    return check_body_sql(label, body, first_line)


def _outside_text(text: str) -> int | None:
    """The 0-based line (within text) of the first thing that is not whitespace or an SQL comment."""
    import sqlparse

    stripped = sqlparse.format(text, strip_comments=True).strip()
    if not stripped:
        return None
    for number, line in enumerate(text.splitlines()):
        if line.strip() and not line.strip().startswith("--") and stripped.split()[0] in line:
            return number
    return 0


def _check_call(label: str, call: nodes.CallBlock, logic: str, needs: tuple[str, ...]) -> list[Refusal]:
    expr = call.call
    if not (isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Name) and expr.node.name == "check"):
        return [Refusal(label, call.lineno, "the call block must call the check macro: {% call check(...) %}")]
    if not (len(expr.args) == 1 and isinstance(expr.args[0], nodes.Const) and expr.args[0].value == logic):
        return [Refusal(label, call.lineno, f"the macro's first argument must be the logic name '{logic}' "
                                            "(the file's name), as a string")]
    kwargs = {k.key: k.value for k in expr.kwargs}
    given = kwargs.get("needs")
    if set(kwargs) != {"needs"} or not isinstance(given, nodes.List) or not all(
            isinstance(i, nodes.Const) and isinstance(i.value, str) for i in given.items):
        return [Refusal(label, call.lineno, "the macro call must be check('<logic>', needs=['data_set', ...])")]
    listed = tuple(i.value for i in given.items)
    if sorted(listed) != sorted(needs):
        return [Refusal(label, call.lineno, f"needs={list(listed)} differs from the catalogue entry's needs "
                                            f"{list(needs)}: the macro turns verdicts into 'error' from this list")]
    return []


def as_parsable(body: str) -> tuple[str, str | None]:
    """The body with psycopg's bind parameters as $n and %% as %; or the problem with them."""
    names: list[str] = []
    problem = None

    def swap(match: re.Match) -> str:
        nonlocal problem
        if match.group(0) == "%%":
            return "%"
        if match.group(0) == "%":
            problem = problem or "a literal percent sign must be written %% (the query has bind parameters)"
            return "%"
        name = match.group(1)
        if name not in BIND_PARAMETERS:
            problem = problem or (f"unknown bind parameter %({name})s (the macro binds "
                                  f"{', '.join(f'%({p})s' for p in BIND_PARAMETERS)})")
        names.append(name)
        return f"${BIND_PARAMETERS.index(name) + 1 if name in BIND_PARAMETERS else 1}"

    return _PLACEHOLDER.sub(swap, body), problem


def _line_at(text: str, offset: int | None, first_line: int) -> int:
    return first_line + text[: max(offset or 0, 0)].count("\n")


def check_body_sql(label: str, body: str, first_line: int) -> list[Refusal]:
    """The body parsed by PostgreSQL's parser: one SELECT that writes nothing."""
    text, problem = as_parsable(body)
    if problem:
        offset = body.find("%(") if "bind parameter" in problem else body.find("%")
        return [Refusal(label, _line_at(body, offset, first_line), problem)]
    if not text.strip():
        return [Refusal(label, first_line, "the check body is empty: it must be a SELECT returning "
                                           f"({', '.join(VERDICT_COLUMNS)})")]
    try:
        import pglast
    except ImportError:  # pragma: no cover - pglast is a dependency; sqlparse cannot tell a syntax error
        return _check_body_sqlparse(label, text, first_line)
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        return [Refusal(label, _line_at(text, location, first_line), f"SQL does not parse: {exc.args[0]}")]
    if len(statements) != 1:
        offset = statements[1].stmt_location if len(statements) > 1 else 0
        return [Refusal(label, _line_at(text, offset, first_line),
                        "the check body must be one SELECT statement (no ';' between statements): "
                        "the macro wraps it into the verdict insert")]
    stmt = statements[0].stmt
    if type(stmt).__name__ != "SelectStmt":
        return [Refusal(label, _line_at(text, getattr(statements[0], "stmt_location", 0), first_line),
                        f"the check body must be a SELECT, not {type(stmt).__name__}: only the macro writes")]
    found = _forbidden(stmt())
    if found:
        what, offset = found
        return [Refusal(label, _line_at(text, offset, first_line), what)]
    width = _width(stmt)
    if width is not None and width != len(VERDICT_COLUMNS):
        return [Refusal(label, first_line, f"the check body returns {width} columns; it must return "
                                           f"{len(VERDICT_COLUMNS)}: {', '.join(VERDICT_COLUMNS)}")]
    return []


def _width(stmt) -> int | None:
    while getattr(stmt, "larg", None) is not None:
        stmt = stmt.larg
    targets = getattr(stmt, "targetList", None)
    if not targets:
        return None
    if any(type(getattr(t.val, "fields", [None])[-1]).__name__ == "A_Star" for t in targets):
        return None
    return len(targets)


def _forbidden(tree, location=None) -> tuple[str, int | None] | None:
    """The first write, lock or forbidden function call in the parse tree (pglast's dict form)."""
    if isinstance(tree, dict):
        location = tree.get("location", location)
        kind = tree.get("@")
        if kind in WRITING_STATEMENTS:
            return (f"the check body contains {kind.removesuffix('Stmt').upper()}: it may only read; the check "
                    "macro writes the verdicts", location)
        if kind == "SelectStmt" and tree.get("intoClause"):
            return "SELECT ... INTO creates a table: the check body may only read", location
        if kind == "SelectStmt" and tree.get("lockingClause"):
            return "SELECT ... FOR UPDATE/SHARE locks staging rows: the check body may only read", location
        if kind == "FuncCall":
            name = ".".join(n.get("sval", "") for n in tree.get("funcname") or [] if isinstance(n, dict))
            if FORBIDDEN_FUNCTIONS.match(name.rsplit(".", 1)[-1].lower()):
                return (f"the check body calls {name}(): it writes, locks or is the macro's own work",
                        tree.get("location", location))
        for key, value in tree.items():
            if key != "@":
                found = _forbidden(value, location)
                if found:
                    return found
    elif isinstance(tree, list | tuple):
        for item in tree:
            found = _forbidden(item, location)
            if found:
                return found
    return None


def _check_body_sqlparse(label: str, text: str, first_line: int) -> list[Refusal]:
    import sqlparse

    statements = [s for s in sqlparse.parse(text) if str(s).strip().rstrip(";").strip()]
    if len(statements) != 1 or statements[0].get_type() != "SELECT":
        return [Refusal(label, first_line, "the check body must be one SELECT statement")]
    for token in statements[0].flatten():
        if token.ttype in (sqlparse.tokens.DML, sqlparse.tokens.DDL) and token.normalized != "SELECT":
            return [Refusal(label, first_line, f"the check body contains {token.normalized}: it may only read")]
    return []
