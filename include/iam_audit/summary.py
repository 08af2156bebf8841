"""A readable compliance summary of one snapshot, from aws_policy_results."""

from __future__ import annotations

from dataclasses import dataclass

from iam_audit.catalogue import control_sort_key, framework_sort_key, load_catalogue

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass
class Summary:
    snapshot_date: str
    controls: list[dict]   # framework, check_id, title, pass, fail, error, manual
    accounts: list[dict]   # account_id, account_name, pass, fail, error, score
    worst: list[dict]      # account_id, framework, check_id, severity, resource_id, reason
    extraction_errors: list[dict]

    @property
    def totals(self) -> dict:
        return {k: sum(c[k] for c in self.controls) for k in ("pass", "fail", "error")}


def build_summary(conn, snapshot_date, account_ids: list[str] | None = None, worst_per_account: int = 3) -> Summary:
    where = "snapshot_date = %s" + (" AND account_id = ANY(%s)" if account_ids else "")
    params = [str(snapshot_date)] + ([list(account_ids)] if account_ids else [])
    counts = conn.execute(
        f"""SELECT framework, check_id, title,
                   count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
                   count(*) FILTER (WHERE status = 'error')
            FROM aws_policy_results WHERE {where} GROUP BY 1, 2, 3""",  # noqa: S608
        params,
    ).fetchall()
    by_key = {(f, c): (t, p, fl, e) for f, c, t, p, fl, e in counts}
    controls = []
    for control in load_catalogue().all_controls():
        title, passed, failed, errors = by_key.get((control.framework, control.check_id),
                                                   (control.title, 0, 0, 0))
        controls.append({
            "framework": control.framework, "check_id": control.check_id, "title": title,
            "pass": passed, "fail": failed, "error": errors, "manual": control.logic is None,
        })
    controls.sort(key=lambda c: (framework_sort_key(c["framework"]), control_sort_key(c["check_id"])))

    accounts = []
    for account_id, name, passed, failed, errors in conn.execute(
        f"""SELECT r.account_id, max(a.account_name),
                   count(*) FILTER (WHERE status = 'pass'), count(*) FILTER (WHERE status = 'fail'),
                   count(*) FILTER (WHERE status = 'error')
            FROM aws_policy_results r
            LEFT JOIN iam_stage.accounts a USING (snapshot_date, account_id)
            WHERE r.{where.replace(' AND account_id', ' AND r.account_id')} GROUP BY 1 ORDER BY 1""",  # noqa: S608
        params,
    ).fetchall():
        evaluated = passed + failed + errors
        accounts.append({
            "account_id": account_id, "account_name": name or "", "pass": passed, "fail": failed,
            "error": errors, "score": round(100.0 * passed / evaluated, 1) if evaluated else None,
        })

    worst = [
        dict(zip(("account_id", "framework", "check_id", "severity", "resource_id", "reason"), row, strict=True))
        for row in conn.execute(
            f"""SELECT account_id, framework, check_id, severity, resource_id, reason FROM (
                  SELECT *, row_number() OVER (
                      PARTITION BY account_id
                      ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1
                                             WHEN 'medium' THEN 2 ELSE 3 END, framework DESC, check_id,
                               resource_id) AS n
                  FROM (SELECT DISTINCT ON (account_id, control_logic, resource_id) *
                        FROM aws_policy_results
                        WHERE {where} AND status = 'fail'
                        ORDER BY account_id, control_logic, resource_id, framework DESC) d
                ) ranked WHERE n <= %s ORDER BY account_id, n""",  # noqa: S608
            params + [worst_per_account],
        ).fetchall()
    ]
    extraction_errors = [
        dict(zip(("account_id", "dataset", "error_code", "error_message"), row, strict=True))
        for row in conn.execute(
            f"""SELECT account_id, dataset, error_code, error_message FROM iam_stage.extraction_status
                WHERE {where} AND status = 'error' ORDER BY 1, 2""",  # noqa: S608
            params,
        ).fetchall()
    ]
    return Summary(str(snapshot_date), controls, accounts, worst, extraction_errors)


def format_summary(summary: Summary, width: int = 100) -> str:
    lines = [f"Compliance summary for snapshot {summary.snapshot_date}", ""]
    t = summary.totals
    lines.append(f"Verdicts: {t['pass']} pass, {t['fail']} fail, {t['error']} error")
    framework = None
    for c in summary.controls:
        if c["framework"] != framework:
            framework = c["framework"]
            lines += ["", f"{framework:<12} {'control':<8} {'pass':>5} {'fail':>5} {'error':>5}  title"]
        title = c["title"][: width - 42]
        if c["manual"]:
            lines.append(f"{'':<12} {c['check_id']:<8} {'manual':>17}  {title}")
        else:
            lines.append(f"{'':<12} {c['check_id']:<8} {c['pass']:>5} {c['fail']:>5} {c['error']:>5}  {title}")
    lines += ["", f"{'account':<14} {'name':<18} {'score':>6} {'pass':>5} {'fail':>5} {'error':>5}"]
    for a in summary.accounts:
        score = "n/a" if a["score"] is None else f"{a['score']:.0f}%"
        lines.append(f"{a['account_id']:<14} {a['account_name'][:18]:<18} {score:>6} "
                     f"{a['pass']:>5} {a['fail']:>5} {a['error']:>5}")
    if summary.worst:
        lines += ["", "Worst findings per account:"]
        for w in summary.worst:
            lines.append(f"  {w['account_id']} [{w['severity']}] {w['framework']} {w['check_id']}: "
                         f"{w['reason'][: width - 40]}")
    if summary.extraction_errors:
        lines += ["", "Data that could not be collected (checks needing it say 'error'):"]
        for e in summary.extraction_errors:
            lines.append(f"  {e['account_id']} {e['dataset']}: {e['error_code']}")
    return "\n".join(lines)
