"""Alerts: rules in SQL (sql/alerts/*.sql and <custom folder>/alerts/*.sql), a ledger that sends each
alert once per recipient, delivery through the Airflow providers' notifiers.

A rule is one read-only query over the public views, with a YAML header in its leading comment
(name, description, severity_floor, delivery: immediate | digest, recipients). Each row it returns is
one alert; it must have the columns `alert_key` (the finding's keys: the ledger sends each key once
per recipient) and `account_id` (routing); `severity`, `title`, `resource_id`, `resource_type`,
`control_logic`, `controls`, `reason`, `failing_since` are shown when present, other columns are
passed on as details. `%(snapshot_date)s` and `%(run_id)s` are bound (a literal % is written %%).

Recipients: `webhook` (connection iam_audit_alerts_webhook, or `webhook:<conn id>`), `slack`
(iam_audit_alerts_slack, or `slack:<conn id>`), `email:<address>` (connection iam_audit_alerts_smtp),
`sns:<topic arn>` (connection iam_audit_alerts_sns, conn_type aws), `owner` (the account's
`security-contact` Organizations tag, else Variable iam_audit_alert_routes by account id, else by
the nearest organisational unit or root above the account (ou-..., r-...: the OU tree of the newest
organisation snapshot), else Variable iam_audit_alert_default_recipients, default ["webhook"]).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlencode

import sqlparse
import yaml

from iam_audit import vocabulary
from iam_audit.paths import SQL_DIR, TEMPLATES_DIR

log = logging.getLogger(__name__)

ALERTS_DIR = SQL_DIR / "alerts"
# least severe first: a rule's floor and everything above it
SEVERITIES = tuple(reversed(vocabulary.SEVERITIES))
DELIVERIES = ("immediate", "digest")
HEADER_KEYS = {"name", "description", "severity_floor", "delivery", "recipients"}
REQUIRED_COLUMNS = ("alert_key", "account_id")
SHOWN_COLUMNS = ("alert_key", "account_id", "account_name", "severity", "title", "resource_id", "resource_type",
                 "control_logic", "controls", "reason", "failing_since")
# channel -> the connection it uses when a recipient names none
DEFAULT_CONNECTIONS = {"webhook": "iam_audit_alerts_webhook", "slack": "iam_audit_alerts_slack",
                       "email": "iam_audit_alerts_smtp", "sns": "iam_audit_alerts_sns"}
SNS_TOPIC = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
ROUTE_TAG = os.environ.get("IAM_AUDIT_ALERT_ROUTE_TAG", "security-contact")
VAR_ROUTES = "iam_audit_alert_routes"
VAR_DEFAULT = "iam_audit_alert_default_recipients"
VAR_CUSTOM_PATH = "iam_audit_custom_path"
# Channel limits: Slack truncates a message's text beyond 40,000 characters; mail servers commonly
# refuse messages over 10 MB. Lists stop well before, with "and N more" and a link.
LIMITS = {"slack": (50, 35_000), "email": (500, 2_000_000), "webhook": (1_000, 5_000_000),
          "sns": (500, 250_000)}   # SNS: 256 KB a message
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RuleError(ValueError):
    """A rule that cannot be used: says which file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}{f':{line}' if line else ''}: {message}")


class DeliveryFailed(RuntimeError):
    pass


# ---- rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    name: str
    path: str
    sql: str                 # the query, without a trailing semicolon
    first_line: int          # the file's line of the query's first line
    delivery: str = "immediate"
    severity_floor: str | None = None
    recipients: tuple[str, ...] = ("owner",)
    description: str = ""


def parse_rule(path: Path) -> Rule:
    """Read one rule file; RuleError (file and line) when its header or statement is not acceptable."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    header: list[str] = []
    for line in lines:
        if line.startswith("--"):
            header.append(line[3:] if line.startswith("-- ") else line[2:])
        elif line.strip():
            break
        else:
            header.append("")
    try:
        meta = yaml.safe_load("\n".join(header)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleError(path, mark.line + 1 if mark else 1, f"the header is not YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise RuleError(path, 1, "the header (leading -- comment) must be YAML keys: name, delivery, ...")
    for key in meta:
        if key not in HEADER_KEYS:
            raise RuleError(path, _line_of(lines, f"{key}:"), f"unknown header key {key!r}; known: "
                            + ", ".join(sorted(HEADER_KEYS)))
    name = str(meta.get("name") or path.stem)
    if not NAME.match(name):
        raise RuleError(path, _line_of(lines, "name:"), f"name {name!r}: lower-case letters, digits and _")
    delivery = meta.get("delivery", "immediate")
    if delivery not in DELIVERIES:
        raise RuleError(path, _line_of(lines, "delivery:"), f"delivery {delivery!r} must be immediate or digest")
    floor = meta.get("severity_floor")
    if floor is not None and floor not in SEVERITIES:
        raise RuleError(path, _line_of(lines, "severity_floor:"),
                        f"severity_floor {floor!r} must be one of {', '.join(SEVERITIES)}")
    recipients = meta.get("recipients", ["owner"])
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        raise RuleError(path, _line_of(lines, "recipients:"), "recipients must be a non-empty list")
    for spec in recipients:
        if spec != "owner":
            try:
                parse_recipient(str(spec))
            except ValueError as exc:
                raise RuleError(path, _line_of(lines, "recipients:"), str(exc)) from None
    first_line = len(header) + 1
    body = "\n".join(lines[len(header):])
    statements = [s for s in sqlparse.parse(body)
                  if sqlparse.format(str(s), strip_comments=True).strip().strip(";").strip()]
    if not statements:
        raise RuleError(path, first_line, "no query after the header")
    if len(statements) > 1:
        second = body.find(statements[1].value.strip())
        raise RuleError(path, first_line + body[:second].count("\n"),
                        "one query per rule: a second statement starts here")
    statement = statements[0]
    if statement.get_type() != "SELECT":
        raise RuleError(path, first_line + body[:body.find(statement.value.strip())].count("\n"),
                        f"a rule only reads: its statement must be a SELECT (or WITH ... SELECT), "
                        f"not {statement.get_type()}")
    sql = body.strip().rstrip(";").rstrip()
    return Rule(name=name, path=str(path), sql=sql, first_line=first_line, delivery=delivery,
                severity_floor=floor, recipients=tuple(str(r) for r in recipients),
                description=str(meta.get("description") or "").strip())


def _line_of(lines: list[str], needle: str) -> int:
    return next((i + 1 for i, line in enumerate(lines) if needle in line), 1)


def rule_dirs(custom_path: str | None) -> list[Path]:
    """The shipped rules, then the user's (<custom folder>/alerts): a user rule of the same name replaces
    the shipped one."""
    dirs = [ALERTS_DIR]
    if custom_path:
        dirs.append(Path(custom_path) / "alerts")
    return dirs


def load_rules(dirs: Iterable[Path]) -> tuple[list[Rule], list[RuleError]]:
    rules: dict[str, Rule] = {}
    errors: list[RuleError] = []
    for directory in dirs:
        if not directory.is_dir():
            if directory != ALERTS_DIR:
                log.warning("alert rules folder %s does not exist: no custom rules", directory)
            continue
        for path in sorted(directory.glob("*.sql")):
            try:
                rule = parse_rule(path)
            except RuleError as exc:
                errors.append(exc)
                continue
            if rule.name in rules and Path(rules[rule.name].path).parent == path.parent:
                errors.append(RuleError(path, 1, f"rule name {rule.name!r} is also used by {rules[rule.name].path}"))
                continue
            rules[rule.name] = rule
    return list(rules.values()), errors


def _position_line(rule: Rule, exc, offset: int) -> int:
    position = getattr(getattr(exc, "diag", None), "statement_position", None)
    if not position:
        return rule.first_line
    index = max(int(position) - 1 - offset, 0)
    return rule.first_line + rule.sql[:index].count("\n")


def check_rule(conn, rule: Rule, params: dict) -> None:
    """Plan and describe the rule in a READ ONLY transaction: unknown views and columns, syntax errors
    and writes are refused with the file and line; the columns it must return are checked."""
    import psycopg

    prefix = "SELECT * FROM (\n"
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(prefix + rule.sql + "\n) AS rule_rows LIMIT 0", params)
            columns = [c.name for c in cur.description or []]
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuleError(rule.path, _position_line(rule, exc, len(prefix)), message) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RuleError(rule.path, rule.first_line, f"the query must return the column(s) {', '.join(missing)}")


def evaluate_rule(conn, rule: Rule, params: dict, timeout: str) -> list[dict]:
    """The rule's rows, read in a READ ONLY transaction bounded by statement_timeout."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
            cur.execute(rule.sql, params)
            return list(cur.fetchall())
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuleError(rule.path, _position_line(rule, exc, 0), message) from None


# ---- routing --------------------------------------------------------------------------------

def parse_recipient(spec: str) -> tuple[str, str]:
    """'webhook', 'webhook:<conn>', 'slack', 'slack:<conn>', 'email:<address>', 'sns:<topic arn>'
    -> (channel, recipient)."""
    channel, _, target = spec.strip().partition(":")
    if channel not in DEFAULT_CONNECTIONS:
        raise ValueError(f"recipient {spec!r}: the channel must be one of {', '.join(DEFAULT_CONNECTIONS)} "
                         "(or owner)")
    if channel == "email":
        if not re.fullmatch(r"[^@\s,;]+@[^@\s,;]+", target):
            raise ValueError(f"recipient {spec!r}: email needs an address, email:team@example.com")
        return channel, target
    if channel == "sns":
        if not SNS_TOPIC.match(target):
            raise ValueError(f"recipient {spec!r}: sns needs a topic ARN, sns:arn:aws:sns:<region>:<account>:<topic>")
        return channel, target
    return channel, target or DEFAULT_CONNECTIONS[channel]


@dataclass
class Routes:
    """Where `owner` sends an account's alerts: its tag, else the mapping, else the default."""

    tags: dict[str, list[str]] = field(default_factory=dict)        # account -> tag values
    mapping: dict[str, list[str]] = field(default_factory=dict)     # account, OU or root id -> recipient specs
    default: list[str] = field(default_factory=lambda: ["webhook"])
    ancestors: dict[str, list[str]] = field(default_factory=dict)   # account -> its OUs, nearest first, root

    def owner(self, account_id: str | None) -> list[tuple[str, str]]:
        key = account_id or ""
        candidates = [self._from_tags(account_id), self.mapping.get(key, [])]
        candidates += [self.mapping.get(node, []) for node in self.ancestors.get(key, [])]
        for specs in candidates:
            routed = [r for r in (_try_recipient(s) for s in specs) if r]
            if routed:
                return routed
        return [parse_recipient(s) for s in self.default]

    def _from_tags(self, account_id: str | None) -> list[str]:
        specs = []
        for value in self.tags.get(account_id or "", []):
            for token in value.split():
                specs.append(f"email:{token}" if "@" in token and ":" not in token else token)
        return specs

    def resolve(self, recipients: Iterable[str], account_id: str | None) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for spec in recipients:
            for routed in (self.owner(account_id) if spec == "owner" else [parse_recipient(spec)]):
                if routed not in out:
                    out.append(routed)
        return out


def _try_recipient(spec: str) -> tuple[str, str] | None:
    try:
        return parse_recipient(spec)
    except ValueError:
        log.warning("routing: %r is not a recipient (webhook, slack, email:<address>): ignored", spec)
        return None


def parse_routes(mapping_json: str | None, default_json: str | None, tags: dict[str, list[str]],
                 ancestors: dict[str, list[str]] | None = None) -> Routes:
    from iam_audit.config import ConfigError

    mapping: dict[str, list[str]] = {}
    if mapping_json:
        try:
            raw = json.loads(mapping_json)
        except ValueError as exc:
            raise ConfigError(f"Variable {VAR_ROUTES} is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Variable {VAR_ROUTES} must map account ids, OU ids (ou-...) or the root id "
                              "(r-...) to lists of recipients")
        for account, specs in raw.items():
            if not ROUTE_KEY.match(str(account)):
                raise ConfigError(f"Variable {VAR_ROUTES}: {account!r} is neither a 12-digit account id, an OU id "
                                  "(ou-xxxx-xxxxxxxx) nor a root id (r-xxxx)")
            specs = [specs] if isinstance(specs, str) else specs
            for spec in specs:
                try:
                    parse_recipient(spec)
                except ValueError as exc:
                    raise ConfigError(f"Variable {VAR_ROUTES}, account {account}: {exc}") from None
            mapping[str(account)] = list(specs)
    default = ["webhook"]
    if default_json:
        try:
            default = json.loads(default_json)
            default = [default] if isinstance(default, str) else list(default)
            for spec in default:
                parse_recipient(spec)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"Variable {VAR_DEFAULT} must be a JSON list of recipients: {exc}") from None
        if not default:
            raise ConfigError(f"Variable {VAR_DEFAULT} is empty: unroutable alerts would go nowhere")
    return Routes(tags=tags, mapping=mapping, default=default, ancestors=ancestors or {})


# Organizations ids (API reference, Account.Id, OrganizationalUnit.Id and Root.Id patterns)
ROUTE_KEY = re.compile(r"^([0-9]{12}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")


def account_ancestors(conn) -> dict[str, list[str]]:
    """Each account's OUs up to the root, nearest first, from the newest staged OU tree
    (iam_stage.organization_parents); empty when no organisation snapshot has it."""
    rows = conn.execute(
        """SELECT child_id, child_type, parent_id FROM iam_stage.organization_parents
           WHERE snapshot_date = (SELECT max(snapshot_date) FROM iam_stage.organization_parents)""").fetchall()
    conn.commit()
    parent = {child: up for child, _kind, up in rows if up}
    out = {}
    for child, kind, _up in rows:
        if kind != "ACCOUNT":
            continue
        chain, node = [], parent.get(child)
        while node and node not in chain:
            chain.append(node)
            node = parent.get(node)
        out[child] = chain
    return out


def account_tags(conn, tag_key: str = ROUTE_TAG) -> dict[str, list[str]]:
    """The newest staged value of the routing tag of each account (iam_stage.account_tags)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (account_id) account_id, value FROM iam_stage.account_tags WHERE key = %s "
        "ORDER BY account_id, snapshot_date DESC", (tag_key,)).fetchall()
    conn.commit()
    return {a: [v] for a, v in rows if v}


# ---- alerts and the ledger -------------------------------------------------------------------

@dataclass
class Candidate:
    rule: Rule
    key: str
    account_id: str | None
    severity: str | None
    payload: dict


def _plain(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def candidates(rule: Rule, rows: list[dict], snapshot_date: str, links: Callable[[dict], dict],
               names: dict[str, str]) -> list[Candidate]:
    out = []
    floor = SEVERITIES.index(rule.severity_floor) if rule.severity_floor else None
    for row in rows:
        severity = row.get("severity")
        if floor is not None and (severity not in SEVERITIES or SEVERITIES.index(severity) < floor):
            continue
        payload = {k: _plain(row.get(k)) for k in SHOWN_COLUMNS if row.get(k) is not None}
        details = {k: _plain(v) for k, v in row.items() if k not in SHOWN_COLUMNS and v is not None}
        if details:
            payload["details"] = details
        account = row.get("account_id")
        payload.setdefault("account_name", names.get(account or "", ""))
        payload.update(rule=rule.name, delivery=rule.delivery, snapshot_date=snapshot_date)
        payload["links"] = links(payload)
        out.append(Candidate(rule, str(row["alert_key"]), account, severity, payload))
    return out


def digest_of(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def record(conn, found: list[Candidate], routes: Routes, snapshot_date: str, run_id: str) -> int:
    """Write one pending ledger row per alert and recipient not recorded before, in one transaction."""
    rows = []
    for c in found:
        for channel, recipient in routes.resolve(c.rule.recipients, c.account_id):
            rows.append((c.rule.name, c.key, channel, recipient, c.rule.delivery, c.account_id, c.severity,
                         snapshot_date, run_id, json.dumps(c.payload, default=str), digest_of(c.payload)))
    if not rows:
        return 0
    columns = list(zip(*rows, strict=True))
    # one statement for every row (a day of churn can bring thousands): arrays in, rows counted out
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "WITH added AS (INSERT INTO aws_policy_alert_ledger (rule, alert_key, channel, recipient, delivery, "
            "account_id, severity, snapshot_date, run_id, payload, payload_digest) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::date[], %s::text[], %s::jsonb[], %s::text[]) "
            "ON CONFLICT (rule, alert_key, channel, recipient) DO NOTHING RETURNING 1) "
            "SELECT count(*) FROM added", [list(c) for c in columns])
        return cur.fetchone()[0]


@dataclass
class Message:
    channel: str
    recipient: str
    delivery: str
    items: list[dict]       # payloads, with dedup_key
    snapshot_date: str
    links: dict


def _batches(conn) -> list[tuple[str, str, str, list[int]]]:
    """The unsent ledger rows: each immediate one alone, the digest ones per (channel, recipient)."""
    rows = conn.execute(
        "SELECT id, channel, recipient, delivery FROM aws_policy_alert_ledger WHERE outcome <> 'sent' "
        "ORDER BY id").fetchall()
    conn.commit()
    out: list[tuple[str, str, str, list[int]]] = []
    digests: dict[tuple[str, str], list[int]] = defaultdict(list)
    for id_, channel, recipient, delivery in rows:
        if delivery == "immediate":
            out.append((channel, recipient, delivery, [id_]))
        else:
            digests[(channel, recipient)].append(id_)
    out += [(ch, rc, "digest", ids) for (ch, rc), ids in digests.items()]
    return out


def deliver(conn, send: Callable[[Message], None], run_id: str, snapshot_date: str, links: dict) -> dict:
    """Send every unsent ledger row (this run's and earlier runs' failures). Each message is sent while its
    rows are locked (FOR UPDATE SKIP LOCKED: a concurrent run skips them) and marked sent in the same
    transaction once the channel accepted it; a failure marks them failed with the error."""
    counts: Counter = Counter()
    failures: list[str] = []
    for channel, recipient, delivery, ids in _batches(conn):
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT id, rule, alert_key, payload FROM aws_policy_alert_ledger "
                        "WHERE id = ANY(%s) AND outcome <> 'sent' ORDER BY id FOR UPDATE SKIP LOCKED", (ids,))
            locked = cur.fetchall()
            if not locked:
                continue
            items = [{**payload, "dedup_key": f"{rule}|{key}|{channel}|{recipient}"}
                     for _, rule, key, payload in locked]
            message = Message(channel, recipient, delivery, items, snapshot_date, links)
            try:
                send(message)
            except Exception as exc:  # noqa: BLE001 - recorded, reported, and the task fails at the end
                why = describe_failure(channel, recipient, exc)
                cur.execute("UPDATE aws_policy_alert_ledger SET outcome = 'failed', attempts = attempts + 1, "
                            "last_attempt_at = now(), last_error = %s WHERE id = ANY(%s)",
                            (why, [r[0] for r in locked]))
                failures.append(f"{len(locked)} alert(s) to {channel} {recipient}: {why}")
                for _, rule, _, _ in locked:
                    counts[(rule, channel, "failed")] += 1
                continue
            cur.execute("UPDATE aws_policy_alert_ledger SET outcome = 'sent', attempts = attempts + 1, "
                        "last_attempt_at = now(), sent_at = now(), sent_run_id = %s, last_error = NULL "
                        "WHERE id = ANY(%s)", (run_id, [r[0] for r in locked]))
            for _, rule, _, _ in locked:
                counts[(rule, channel, "sent")] += 1
    return {"counts": counts, "failures": failures}


def describe_failure(channel: str, recipient: str, exc: BaseException) -> str:
    """Why a delivery failed, naming the connection and never its URL or password (a Slack webhook's
    URL is its secret): the error class and, for HTTP, the status code."""
    cause = exc
    status = None
    link: BaseException | None = exc
    while link is not None and status is None:   # HttpHook raises AirflowException from requests' HTTPError
        status = getattr(getattr(link, "response", None), "status_code", None)
        link = link.__cause__ or link.__context__
    what = type(cause).__name__ + (f" (HTTP {status})" if status else "")
    # the providers' own wording: "503:Service Unavailable" (http), "..., Status Code: 503" (Slack)
    said = re.search(r"^(\d{3}):|Status Code: (\d{3})\b", str(cause))
    if status is None and said:
        what += f" (HTTP {said.group(1) or said.group(2)})"
    if type(cause).__name__ in ("AirflowNotFoundException", "ConnectionNotFound"):
        what = "the connection is not defined"
    where = f"connection {DEFAULT_CONNECTIONS[channel]}, to {recipient}" if channel in ("email", "sns") \
        else f"connection {recipient}"
    return f"{channel} via {where}: {what}"


# ---- message text ---------------------------------------------------------------------------

def severity_rank(item: dict) -> int:
    return SEVERITIES.index(item["severity"]) if item.get("severity") in SEVERITIES else -1


def alert_lines(item: dict) -> list[str]:
    account = item.get("account_id") or "all accounts"
    if item.get("account_name"):
        account += f" ({item['account_name']})"
    lines = [f"[{(item.get('severity') or 'info').upper()}] {item.get('title') or item['rule']} - account {account}"]
    for label, key in (("Resource", "resource_id"), ("Controls", "controls"), ("Reason", "reason"),
                       ("Failing since", "failing_since")):
        if item.get(key):
            lines.append(f"{label}: {item[key]}")
    for label, key in (("Compliance page", "compliance"), ("Airflow run", "run")):
        if (item.get("links") or {}).get(key):
            lines.append(f"{label}: {item['links'][key]}")
    return lines


def grouped(items: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """Digest order: by account, then worst severity first."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for item in items:
        groups[(item.get("account_id") or "", item.get("severity") or "")].append(item)
    keys = sorted(groups, key=lambda k: (k[0], -SEVERITIES.index(k[1]) if k[1] in SEVERITIES else 1))
    return [(a, s, groups[(a, s)]) for a, s in keys]


def digest_text(message: Message, limit_items: int, limit_chars: int) -> tuple[str, int]:
    """The digest as text, cut at the channel's limits; returns (text, items left out)."""
    head = f"aws_iam_cis digest for {message.snapshot_date}: {len(message.items)} alert(s)"
    out, shown, size = [head], 0, len(head)
    for account, severity, items in grouped(message.items):
        section = [f"\nAccount {account or '(all accounts)'} {items[0].get('account_name') or ''}".rstrip()
                   + f" - {severity or 'info'}: {len(items)}"]
        for item in items:
            line = "  - " + " | ".join(x for x in (item.get("title") or item["rule"], item.get("resource_id"),
                                                   item.get("reason")) if x)
            if shown >= limit_items or size + len(line) + sum(map(len, section)) > limit_chars:
                break
            section.append(line)
            shown += 1
        if len(section) > 1:
            out += section
            size += sum(len(s) + 1 for s in section)
    more = len(message.items) - shown
    if more:
        out.append(f"\n... and {more} more: {message.links.get('compliance', '')}".rstrip(": "))
    return "\n".join(out), more


def webhook_body(message: Message) -> dict:
    if message.delivery == "immediate":
        return {"type": "alert", **message.items[0]}
    limit = LIMITS["webhook"][0]
    items = sorted(message.items, key=lambda i: (i.get("account_id") or "", -severity_rank(i)))
    return {"type": "digest", "snapshot_date": message.snapshot_date, "count": len(items),
            "items": items[:limit], "more": max(len(items) - limit, 0), "links": message.links}


def subject(message: Message) -> str:
    if message.delivery == "immediate":
        item = message.items[0]
        return (f"[aws_iam_cis] {(item.get('severity') or 'info').upper()}: {item.get('title') or item['rule']} "
                f"in {item.get('account_id') or 'all accounts'}")[:200]
    return f"[aws_iam_cis] digest for {message.snapshot_date}: {len(message.items)} alert(s)"


def email_html(message: Message) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                             autoescape=True)
    limit = LIMITS["email"][0]
    groups, shown = [], 0
    for account, severity, items in grouped(message.items):
        take = items[:max(limit - shown, 0)]
        shown += len(take)
        if take:
            groups.append({"account": account, "severity": severity, "items": take, "count": len(items)})
    return env.get_template("alert_email.html").render(
        subject=subject(message), immediate=message.delivery == "immediate", groups=groups,
        more=len(message.items) - shown, links=message.links, snapshot_date=message.snapshot_date)


# ---- channels: the providers' notifiers ------------------------------------------------------

def _webhook_notifier_class():
    from airflow.sdk.bases.notifier import BaseNotifier

    class WebhookNotifier(BaseNotifier):
        """POST one JSON document to the URL of an http connection (host may hold the whole URL)."""

        template_fields = ()

        def __init__(self, *, http_conn_id: str, body: dict, timeout: int = 30):
            super().__init__()
            self.http_conn_id, self.body, self.timeout = http_conn_id, body, timeout

        def notify(self, context) -> None:
            from airflow.providers.http.hooks.http import HttpHook

            HttpHook(method="POST", http_conn_id=self.http_conn_id).run(
                endpoint=None, json=self.body, headers={"Content-Type": "application/json"},
                extra_options={"check_response": True, "timeout": self.timeout})

    return WebhookNotifier


def mask_connection_secrets(conn_id: str) -> None:
    """Register the secret parts of a webhook connection with Airflow's log masker before anything is
    sent: the password, and the URL's path and query (Slack and most webhook services put their token
    there). The http provider logs the URL when a connection fails ("Max retries exceeded with url:
    /services/T000/B000/XXXX"); masked, the task log shows *** instead."""
    from urllib.parse import urlsplit

    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    conn = BaseHook.get_connection(conn_id)
    if conn.password:
        mask_secret(conn.password)
    host = conn.host or ""
    parts = urlsplit(host if "://" in host else f"//{host}")
    for secret in (parts.path, parts.query, conn.extra_dejson.get("endpoint")):
        if secret and len(secret.strip("/")) >= 6:     # never mask "/" or a short common word
            mask_secret(secret)


def make_notifier(message: Message):
    """The provider notifier that delivers this message (its notify() is called without templating:
    finding texts are data, never Jinja)."""
    if message.channel in ("webhook", "slack"):
        mask_connection_secrets(message.recipient)
    if message.channel == "webhook":
        return _webhook_notifier_class()(http_conn_id=message.recipient, body=webhook_body(message))
    if message.channel == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        if message.delivery == "immediate":
            text = "\n".join(alert_lines(message.items[0]))[:LIMITS["slack"][1]]
        else:
            text, _ = digest_text(message, *LIMITS["slack"])
        return SlackWebhookNotifier(slack_webhook_conn_id=message.recipient, text=text, timeout=30)
    if message.channel == "email":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier
        from airflow.sdk import BaseHook

        conn_id = DEFAULT_CONNECTIONS["email"]
        sender = BaseHook.get_connection(conn_id).extra_dejson.get("from_email") or "iam-audit@localhost"
        return SmtpNotifier(to=message.recipient, from_email=sender, subject=subject(message),
                            html_content=email_html(message), smtp_conn_id=conn_id)
    if message.channel == "sns":
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        if message.delivery == "immediate":
            text = "\n".join(alert_lines(message.items[0]))[:LIMITS["sns"][1]]
        else:
            text, _ = digest_text(message, *LIMITS["sns"])
        # SNS subjects: at most 100 ASCII characters, no line breaks
        title = subject(message).encode("ascii", "replace").decode()[:100]
        return SnsNotifier(aws_conn_id=DEFAULT_CONNECTIONS["sns"], target_arn=message.recipient, message=text,
                           subject=title)
    raise ValueError(f"unknown channel {message.channel!r}")


def send_with_retries(message: Message, attempts: int | None = None, wait_seconds: float | None = None) -> None:
    """notify() with exponential backoff (tenacity): IAM_AUDIT_ALERT_ATTEMPTS tries (default 3), waits
    from IAM_AUDIT_ALERT_RETRY_WAIT_SECONDS (default 2) doubling up to 60 s."""
    from tenacity import Retrying, stop_after_attempt, wait_exponential

    attempts = attempts or int(os.environ.get("IAM_AUDIT_ALERT_ATTEMPTS", "3"))
    wait = wait_seconds if wait_seconds is not None else float(os.environ.get("IAM_AUDIT_ALERT_RETRY_WAIT_SECONDS",
                                                                              "2"))
    for attempt in Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=wait, max=60),
                            reraise=True):
        with attempt:
            make_notifier(message).notify({})


def configured_channels(connection_exists: Callable[[str], bool]) -> list[str]:
    return [ch for ch, conn_id in DEFAULT_CONNECTIONS.items() if connection_exists(conn_id)]


def links_for(base_url: str, run_id: str) -> Callable[[dict], dict]:
    base = base_url.rstrip("/")
    run = f"{base}/dags/aws_iam_cis/runs/{quote(run_id, safe='')}"

    def links(payload: dict) -> dict:
        query = {k: v for k, v in (("account", payload.get("account_id")),
                                   ("severity", payload.get("severity"))) if v}
        return {"compliance": f"{base}/compliance/" + (f"?{urlencode(query)}" if query else ""), "run": run}
    return links


def account_names(conn, account_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted({a for a in account_ids if a})
    if not ids:
        return {}
    rows = conn.execute("SELECT DISTINCT ON (account_id) account_id, account_name FROM iam_stage.accounts "
                        "WHERE account_id = ANY(%s) ORDER BY account_id, snapshot_date DESC", (ids,)).fetchall()
    conn.commit()
    return {a: n or "" for a, n in rows}


# ---- the task -------------------------------------------------------------------------------

@dataclass
class AlertRun:
    evaluated: dict[str, int] = field(default_factory=dict)     # rule -> alerts found
    recorded: int = 0
    counts: Counter = field(default_factory=Counter)            # (rule, channel, sent|failed) -> n
    rule_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"alert rules evaluated: {len(self.evaluated)}; new ledger rows: {self.recorded}"]
        for rule, n in sorted(self.evaluated.items()):
            lines.append(f"  rule {rule}: {n} alert(s) found")
        for (rule, channel, outcome), n in sorted(self.counts.items()):
            lines.append(f"  {rule} via {channel}: {n} {outcome}")
        lines += [f"  rule error: {e}" for e in self.rule_errors]
        lines += [f"  delivery failed: {f}" for f in self.failures]
        return "\n".join(lines)

    def summary(self) -> dict:
        return {"evaluated": self.evaluated, "recorded": self.recorded,
                "sent": {f"{r}/{c}": n for (r, c, o), n in sorted(self.counts.items()) if o == "sent"},
                "failed": {f"{r}/{c}": n for (r, c, o), n in sorted(self.counts.items()) if o == "failed"},
                "rule_errors": self.rule_errors, "delivery_failures": self.failures}


def run_alerts(conn, rules: list[Rule], routes: Routes, snapshot_date: str, run_id: str, base_url: str,
               send: Callable[[Message], None] = send_with_retries, timeout: str = "60s") -> AlertRun:
    """Evaluate every rule (one failing rule does not stop the others), record new alerts in the ledger,
    deliver everything unsent."""
    result = AlertRun()
    params = {"snapshot_date": snapshot_date, "run_id": run_id}
    links = links_for(base_url, run_id)
    found: list[Candidate] = []
    for rule in rules:
        try:
            check_rule(conn, rule, params)
            rows = evaluate_rule(conn, rule, params, timeout)
        except RuleError as exc:
            log.error("alert rule %s refused: %s", rule.name, exc)
            result.rule_errors.append(str(exc))
            continue
        names = account_names(conn, (r.get("account_id") for r in rows))
        mine = candidates(rule, rows, snapshot_date, links, names)
        result.evaluated[rule.name] = len(mine)
        found += mine
    result.recorded = record(conn, found, routes, snapshot_date, run_id)
    delivered = deliver(conn, send, run_id, snapshot_date,
                        {"compliance": f"{base_url.rstrip('/')}/compliance/", "run": links({})["run"]})
    result.counts, result.failures = delivered["counts"], delivered["failures"]
    return result


def preview(conn, snapshot_date: str, run_id: str = "preview", custom_path: str | None = None,
            routes: Routes | None = None, base_url: str = "http://localhost:8080") -> str:
    """What send_alerts would deliver for the snapshot, as text: every rule read, nothing recorded or
    sent (`make demo`, where no alert connection is defined)."""
    rules, refused = load_rules(rule_dirs(custom_path))
    routes = routes or Routes(tags=account_tags(conn), ancestors=account_ancestors(conn))
    params = {"snapshot_date": snapshot_date, "run_id": run_id}
    lines = [f"Alerts the run of {snapshot_date} would send (rules in sql/alerts; nothing was sent: "
             "no alert connection is defined)"]
    lines += [f"  rule refused: {e}" for e in refused]
    for rule in sorted(rules, key=lambda r: (r.delivery, r.name)):
        try:
            check_rule(conn, rule, params)
            rows = evaluate_rule(conn, rule, params, "60s")
        except RuleError as exc:
            lines.append(f"  rule refused: {exc}")
            continue
        found = candidates(rule, rows, snapshot_date, links_for(base_url, run_id),
                           account_names(conn, (r.get("account_id") for r in rows)))
        floor = f", severity >= {rule.severity_floor}" if rule.severity_floor else ""
        lines.append(f"  {rule.name} ({rule.delivery}{floor}): {len(found)} alert(s)")
        for c in sorted(found, key=lambda c: (-severity_rank(c.payload), c.account_id or "", c.key))[:10]:
            to = ", ".join(f"{ch} {rc}" for ch, rc in routes.resolve(rule.recipients, c.account_id))
            first = alert_lines(c.payload)[0]
            lines.append(f"    {first} -> {to}")
            lines += [f"      {text[:200]}" for text in (c.payload.get("resource_id"), c.payload.get("reason")) if text]
        if len(found) > 10:
            lines.append(f"    ... and {len(found) - 10} more")
    return "\n".join(lines)


def summary_line(counts: dict | None) -> str:
    """The run summary's line about alerts, from send_alerts' XCom (None: the task failed or did not run)."""
    if counts is None:
        return "Alerts: send_alerts did not complete (see its log; unsent alerts stay in aws_policy_alert_ledger)"
    if counts.get("mode") == "replay":
        return "Alerts: none (a replay sends no alert)"
    if counts.get("configured") is False:
        return "Alerts: off (no alert connection is defined)"
    sent = counts.get("sent") or {}
    per = ", ".join(f"{k} {v}" for k, v in sorted(sent.items()))
    return f"Alerts: {sum(sent.values())} sent" + (f" ({per})" if per else "") + \
        f"; {counts.get('recorded', 0)} new in the ledger"
