-- expired_server_certificates · catalogue: sql/catalogue/controls/expired_server_certificates.yaml
-- No expired SSL/TLS certificate is stored in IAM.
-- Audit: ListServerCertificates; a certificate whose Expiration is before as_of fails.
-- A certificate expiring exactly at as_of passes (not yet expired).
-- DECISION: a certificate without an Expiration value fails (it cannot be shown to be
-- unexpired), with a reason that says so.
-- Reasons name the expiration time (to the minute: the verdict turns at that instant),
-- never a count of days, so the text stays the same from one snapshot to the next
-- until the verdict changes.
-- Reads: server_certificates. Resource: the certificate's ARN.
{% from 'macros/check.sql' import check %}
{% call check('expired_server_certificates', needs=['server_certificates']) %}
SELECT c.framework, c.check_id, s.account_id, s.arn, 'server_certificate',
       CASE WHEN s.expiration >= r.as_of THEN 'pass' ELSE 'fail' END,
       CASE WHEN s.expiration IS NULL
            THEN format('Server certificate %%s has no recorded expiration date; check it and delete it if it has expired.', s.certificate_name)
            WHEN s.expiration >= r.as_of
            THEN format('Server certificate %%s had not expired at the snapshot; it expires on %%s.', s.certificate_name,
                        to_char(s.expiration AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))
            ELSE format('Server certificate %%s expired on %%s, before the snapshot; delete it with aws iam delete-server-certificate --server-certificate-name %%s.',
                        s.certificate_name, to_char(s.expiration AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
                        s.certificate_name)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.server_certificates s
  ON s.snapshot_date = %(snapshot_date)s AND s.account_id = r.account_id
{% endcall %}
