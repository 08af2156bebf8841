"""A readable compliance summary of one snapshot: the verdicts of aws_policy_results_effective, read
through iam_audit.evaluate.day_verdicts (stored counts, per variant) rather than row by row.

It leads with the headline (iam_audit.reporting.headline): open findings and the pass rate of findings, a finding
being one control logic x account x resource counted once at its worst verdict over the frameworks; the
per-framework scores are findings of that framework; the totals and the account table count framework
rows and say so.
Pass rate (score) is pass / (pass + fail), as in aws_policy_scores and the HTML report;
errors and muted fails are counted on their own, next to it. Each account's snapshot
age comes from aws_policy_account_freshness; accounts behind the newest run are marked
stale, and accounts whose raw snapshot could not be loaded are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iam_audit.evaluate.catalogue import load_catalogue
from iam_audit.reporting.headline import Headline
from iam_audit.vocabulary import (
    DEFINITION,
    FRAMEWORK_ROWS,
    PASS_RATE,
    control_sort_key,
    framework_sort_key,
    pass_rate,
)


@dataclass
class Summary:
    snapshot_date: str
    controls: list[dict]   # framework, check_id, title, pass, fail, error, muted, manual
    accounts: list[dict]   # account_id, account_name, pass, fail, error, muted, score, snapshot age, stale
    worst: list[dict]      # account_id, framework, check_id, severity, resource_id, reason
    extraction_errors: list[dict]
    logics: list[dict] = field(default_factory=list)  # logic, severity, title, ids {framework: id}, pass/fail/error
    load_errors: list[dict] = field(default_factory=list)   # account_id, load_error
    headline: Headline | None = None  # open findings and the pass rate of findings, all frameworks

    @property
    def totals(self) -> dict:
        return {k: sum(c[k] for c in self.controls) for k in ("pass", "fail", "error", "muted")}

    @property
    def stale_accounts(self) -> list[str]:
        return [a["account_id"] for a in self.accounts if a["stale"]]

    @property
    def frameworks(self) -> list[dict]:
        """Per framework: verdict counts and score = pass / (pass + fail); errors counted apart."""
        rows = {}
        for c in self.controls:
            row = rows.setdefault(c["framework"], {"framework": c["framework"], "pass": 0, "fail": 0, "error": 0,
                                                   "muted": 0})
            for k in ("pass", "fail", "error", "muted"):
                row[k] += c[k]
        for row in rows.values():
            row["score"] = _score(row["pass"], row["fail"])
        return sorted(rows.values(), key=lambda r: framework_sort_key(r["framework"]))


_score = pass_rate  # pass / (pass + fail) in percent; None when nothing was decided


def build_summary(conn, snapshot_date, account_ids: list[str] | None = None, worst_per_account: int = 3) -> Summary:
    from iam_audit.evaluate import day_verdicts
    from iam_audit.reporting.headline import headline

    where = "snapshot_date = %s" + (" AND account_id = ANY(%s)" if account_ids else "")
    params = [str(snapshot_date)] + ([list(account_ids)] if account_ids else [])
    scores = day_verdicts.scores(conn, snapshot_date, account_ids)
    by_key: dict[tuple[str, str], list] = {}
    per_account: dict[str, list[int]] = {}
    for framework, check_id, account_id, title, passed, failed, errors, muted in scores:
        row = by_key.setdefault((framework, check_id), [title, 0, 0, 0, 0])
        counts = per_account.setdefault(account_id, [0, 0, 0, 0])
        for i, n in enumerate((passed, failed, errors, muted)):
            row[i + 1] += n
            counts[i] += n
    controls = []
    catalogue = load_catalogue()
    for control in catalogue.all_controls():
        title, passed, failed, errors, muted = by_key.get((control.framework, control.check_id),
                                                          (control.title, 0, 0, 0, 0))
        controls.append({
            "framework": control.framework, "check_id": control.check_id, "title": title,
            "pass": passed, "fail": failed, "error": errors, "muted": muted, "manual": control.logic is None,
        })
    controls.sort(key=lambda c: (framework_sort_key(c["framework"]), control_sort_key(c["check_id"])))

    # One row per control logic: each resource counted once, at its worst verdict over the frameworks
    # (a key unused for 60 days fails the 45-day versions and passes the 90-day ones: it counts as a fail).
    worst_counts = day_verdicts.worst_per_logic(conn, snapshot_date, account_ids)
    logics = []
    for check in catalogue.checks:
        passed, failed, errors = worst_counts.get(check.logic, (0, 0, 0))
        cis = [c for c in check.controls if c.framework.startswith("cis_")]
        newest = max(cis, key=lambda c: framework_sort_key(c.framework)) if cis else check.controls[0]
        logics.append({
            "logic": check.logic, "severity": check.severity, "title": newest.title,
            "ids": {c.framework: c.check_id for c in check.controls},
            "pass": passed, "fail": failed, "error": errors,
        })

    names = dict(conn.execute(
        "SELECT account_id, account_name FROM iam_stage.accounts WHERE snapshot_date = %s AND account_id = ANY(%s)",
        (str(snapshot_date), list(per_account))).fetchall())
    fresh = day_verdicts.freshness(conn, per_account)
    accounts = []
    for account_id in sorted(per_account):
        passed, failed, errors, muted = per_account[account_id]
        f = fresh.get(account_id, {})
        accounts.append({
            "account_id": account_id, "account_name": names.get(account_id) or "", "pass": passed,
            "fail": failed, "error": errors, "muted": muted, "score": _score(passed, failed),
            "latest_snapshot_date": f.get("latest_snapshot_date"), "snapshot_age_days": f.get("snapshot_age_days"),
            "stale": f.get("is_stale") is not False,
        })

    worst = [
        dict(zip(("account_id", "framework", "check_id", "severity", "resource_id", "reason"), row, strict=True))
        for row in day_verdicts.worst_findings(conn, snapshot_date, account_ids, worst_per_account)
    ]
    extraction_errors = [
        dict(zip(("account_id", "dataset", "error_code", "error_message"), row, strict=True))
        for row in conn.execute(
            f"""SELECT account_id, dataset, error_code, error_message FROM iam_stage.extraction_status
                WHERE {where} AND status = 'error' ORDER BY 1, 2""",  # noqa: S608
            params,
        ).fetchall()
    ]
    load_errors = [
        {"account_id": account_id, "load_error": load_error}
        for account_id, load_error in conn.execute(
            f"""SELECT account_id, load_error FROM iam_stage.accounts
                WHERE {where} AND load_error IS NOT NULL ORDER BY 1""",  # noqa: S608
            params,
        ).fetchall()
    ]
    return Summary(str(snapshot_date), controls, accounts, worst, extraction_errors, logics=logics,
                   load_errors=load_errors, headline=headline(conn, snapshot_date, account_ids=account_ids))


def clip(text: str, width: int) -> str:
    """text cut to width characters, with an ellipsis when something was cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _short(framework: str) -> str:
    return framework.removeprefix("cis_") if framework.startswith("cis_") else framework.replace("iam_", "")


def format_summary(summary: Summary, width: int = 160, raw_location: str | None = None) -> str:
    lines = [f"Compliance summary for snapshot {summary.snapshot_date}"]
    if raw_location:
        lines.append(f"Raw snapshots: {raw_location}")
    t = summary.totals
    rate = _score(t["pass"], t["fail"])
    if summary.headline is not None:
        lines += ["", f"Headline: {summary.headline.sentence()}", f"  {DEFINITION};", f"  {PASS_RATE}"]
    lines += ["", f"In {FRAMEWORK_ROWS}: {t['pass']} pass, {t['fail']} fail, {t['error']} error, "
                  f"{t['muted']} muted; pass rate {'n/a' if rate is None else f'{rate:.0f}%'} of framework rows "
                  "(pass / (pass + fail))", ""]

    frameworks = summary.frameworks
    names = [f["framework"] for f in frameworks]
    cols = [max(len(_short(n)), 6) for n in names]
    lines.append("Score per framework: pass rate of findings in that framework, pass / (pass + fail); "
                 "errors are counted apart, never as passes")
    lines.append(" ".join(f"{_short(n):>{w}}" for n, w in zip(names, cols, strict=True)))
    lines.append(" ".join(f"{'n/a' if f['score'] is None else format(f['score'], '.0f') + '%':>{w}}"
                          for f, w in zip(frameworks, cols, strict=True)))
    lines.append(" ".join(f"{str(f['error']) + ' err':>{w}}" for f, w in zip(frameworks, cols, strict=True)))
    lines.append(" ".join(f"{str(f['muted']) + ' mut':>{w}}" for f, w in zip(frameworks, cols, strict=True)))

    lines += ["", "Controls: one row per check logic with its number in each framework (- : not in that version);",
              "each resource counted once, at its worst verdict over the frameworks"]
    logic_width = max([len(r["logic"]) for r in summary.logics] + [11])
    columns = " ".join(f"{_short(n):<{w}}" for n, w in zip(names, cols, strict=True))
    head = f"{'check logic':<{logic_width}} {'severity':<8} {columns} {'pass':>5} {'fail':>5} {'error':>5}  "
    # eleven framework columns leave about 20 characters for titles at 160: the titles give way, not the width
    title_width = max(width - len(head), 10)
    lines.append(head + clip("title (newest CIS)", title_width))
    for row in summary.logics:
        ids = " ".join(f"{row['ids'].get(n, '-'):<{w}}" for n, w in zip(names, cols, strict=True))
        lines.append(f"{row['logic']:<{logic_width}} {row['severity']:<8} {ids} "
                     f"{row['pass']:>5} {row['fail']:>5} {row['error']:>5}  {clip(row['title'], title_width)}")
    manual = {}
    for c in summary.controls:
        if c["manual"]:
            manual.setdefault(c["framework"], []).append(c["check_id"])
    if manual:
        lines += ["", "Manual controls (a person must assess them; never counted as passes):"]
        for framework, ids in manual.items():
            lines.append(clip(f"  {framework:<12} " + ", ".join(ids), width))

    lines += ["", f"Score per account, in {FRAMEWORK_ROWS}: pass / (pass + fail);",
              "evaluated = newest snapshot with verdicts, age against the newest run",
              f"{'account':<14} {'name':<24} {'score':>6} {'pass':>5} {'fail':>5} {'error':>5} {'muted':>5}  "
              f"{'evaluated':<10} {'age':>4}  state"]
    for a in summary.accounts:
        score = "n/a" if a["score"] is None else f"{a['score']:.0f}%"
        latest = str(a["latest_snapshot_date"] or "never")
        age = "-" if a["snapshot_age_days"] is None else f"{a['snapshot_age_days']}d"
        lines.append(f"{a['account_id']:<14} {clip(a['account_name'], 24):<24} {score:>6} "
                     f"{a['pass']:>5} {a['fail']:>5} {a['error']:>5} {a['muted']:>5}  {latest:<10} {age:>4}  "
                     f"{'STALE' if a['stale'] else 'current'}")
    if summary.stale_accounts:
        lines += ["", f"{len(summary.stale_accounts)} account(s) STALE: their newest evaluated snapshot is older "
                      "than the newest run, so their verdicts are not current: " + ", ".join(summary.stale_accounts)]
    if summary.worst:
        lines += ["", "Worst findings per account:"]
        for w in summary.worst:
            prefix = f"  {w['account_id']} [{w['severity']}] {w['framework']} {w['check_id']}: "
            lines.append(prefix + clip(w["reason"], width - len(prefix)))
    if summary.load_errors:
        lines += ["", "Accounts whose raw snapshot could not be loaded (every check says 'error'):"]
        for e in summary.load_errors:
            lines.append(clip(f"  {e['account_id']}: {e['load_error']}", width))
    if summary.extraction_errors:
        lines += ["", "Data that could not be collected (checks needing it say 'error'):"]
        for e in summary.extraction_errors:
            lines.append(f"  {e['account_id']} {e['dataset']}: {e['error_code']}")
    return "\n".join(lines)


def format_manual_evidence(conn, snapshot_date, width: int = 160, per_control: int = 5) -> str:
    """The organisation evidence of manual controls (aws_policy_manual_evidence) for a text summary:
    per control, how many facts need a look and the first of them. Never verdicts."""
    rows = conn.execute(
        "SELECT framework, check_id, title, account_id, account_name, subject, detail, attention "
        "FROM aws_policy_manual_evidence WHERE snapshot_date = %s", (str(snapshot_date),)).fetchall()
    if not rows:
        return ""
    controls: dict[tuple[str, str], list] = {}
    for row in rows:
        controls.setdefault((row[0], row[1]), []).append(row)
    lines = ["Manual controls with organisation evidence (a person decides; facts needing a look first):"]
    for key in sorted(controls, key=lambda k: (framework_sort_key(k[0]), control_sort_key(k[1]))):
        facts = sorted(controls[key], key=lambda r: (not r[7], r[3] or "", r[5]))
        flagged = sum(1 for r in facts if r[7])
        # clip() folds whitespace: the indent goes on after it
        lines.append("  " + clip(f"{key[0]} {key[1]} {facts[0][2]}: {flagged} of {len(facts)} need a look", width - 2))
        for _, _, _, account_id, account_name, subject, detail, attention in facts[:per_control]:
            who = f"{account_id} {account_name or ''}".strip() if account_id else "organisation"
            lines.append(f"    {'!' if attention else ' '} " + clip(f"{who}: {subject}: {detail}", width - 6))
        if len(facts) > per_control:
            lines.append(f"      ... {len(facts) - per_control} more in aws_policy_manual_evidence")
    return "\n".join(lines)
