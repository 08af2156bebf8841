from iam_audit.database import run_check

from .staging import SNAPSHOT, Snapshot, statuses, verdicts

LOGIC = "no_full_admin_policies"
V1, V3 = "cis_v1.2.0", "cis_v3.0.0"  # scope customer_managed / scope attached
A, B = "111111111111", "222222222222"
ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}
S3_READ = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}


def doc(statement) -> dict:
    return {"Version": "2012-10-17", "Statement": statement}


def customer(name: str) -> str:
    return f"arn:aws:iam::{A}:policy/{name}"


def aws(name: str) -> str:
    return f"arn:aws:iam::aws:policy/{name}"


def test_scope_customer_managed_vs_attached(db):
    s = Snapshot(db).account(A).account(B, missing={"authorization_details": "AccessDenied"})
    s.managed_policy(A, "AdministratorAccess", doc([ALLOW_ALL]), aws_managed=True, attachments=2)
    s.managed_policy(A, "ReadOnlyAccess", doc([S3_READ]), aws_managed=True, attachments=1)
    s.managed_policy(A, "UnattachedAwsAdmin", doc([ALLOW_ALL]), aws_managed=True, attachments=0)
    s.managed_policy(A, "custom-admin-unattached", doc(ALLOW_ALL), attachments=0)
    s.managed_policy(A, "custom-admin-attached", doc([S3_READ, ALLOW_ALL]), attachments=1)
    s.managed_policy(A, "custom-read-unattached", doc([S3_READ]))
    s.managed_policy(A, "custom-read-attached", doc(S3_READ), attachments=3)
    s.managed_policy(B, "custom-admin", doc(ALLOW_ALL), attachments=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    # v1.2.0 "not created": every customer-managed policy, attached or not; no AWS-managed one
    assert statuses(db, LOGIC, V1) == {
        customer("custom-admin-unattached"): "fail",
        customer("custom-admin-attached"): "fail",
        customer("custom-read-unattached"): "pass",
        customer("custom-read-attached"): "pass",
        B: "error",
    }
    # v3.0.0 "not attached": every attached policy, AWS-managed AdministratorAccess included
    assert statuses(db, LOGIC, V3) == {
        aws("AdministratorAccess"): "fail",
        aws("ReadOnlyAccess"): "pass",
        customer("custom-admin-attached"): "fail",
        customer("custom-read-attached"): "pass",
        B: "error",
    }
    reason = verdicts(db, LOGIC, V3)[(V3, "1.16", A, customer("custom-admin-attached"))][1]
    assert "custom-admin-attached" in reason and "statement 1" in reason and "statement 0" not in reason
    assert "AdministratorAccess" in verdicts(db, LOGIC, V3)[(V3, "1.16", A, aws("AdministratorAccess"))][1]


def test_statement_and_action_shapes(db):
    s = Snapshot(db).account(A)
    cases = {
        "single-object-string-action": ("fail", doc(ALLOW_ALL)),
        "array-list-action": ("fail", doc([{"Effect": "Allow", "Action": ["*"], "Resource": ["*"]}])),
        "star-among-actions": ("fail", doc([{"Effect": "Allow", "Action": ["s3:*", "*"], "Resource": "*"}])),
        "star-among-resources": (
            "fail",
            doc({"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": ["arn:aws:s3:::b", "*"]}),
        ),
        "service-wildcard": ("pass", doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})),
        "star-on-one-resource": (
            "pass",
            doc([{"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*"}]),
        ),
        "deny-all": ("pass", doc([{"Effect": "Deny", "Action": "*", "Resource": "*"}])),
        "empty": ("pass", doc([])),
        "not-collected": ("fail", None),
    }
    for name, (_, document) in cases.items():
        s.managed_policy(A, name, document, attachments=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    expected = {customer(name): status for name, (status, _) in cases.items()}
    assert statuses(db, LOGIC, V1) == expected
    assert statuses(db, LOGIC, V3) == expected
    got = verdicts(db, LOGIC, V1)
    assert "Sid All" in got[(V1, "1.22", A, customer("star-among-resources"))][1]
    assert "not collected" in got[(V1, "1.22", A, customer("not-collected"))][1]


HIDDEN_ADMIN = {"Effect": "Allow", "NotAction": ["s3:*", "ec2:TerminateInstances"], "Resource": "*"}
POWER_USER = {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"}


def test_allow_not_action_on_every_resource_is_a_hidden_admin(db):
    """Allow + NotAction on Resource "*" that leaves IAM allowed grants "*:*" minus a few actions."""
    s = Snapshot(db).account(A)
    s.managed_policy(A, "hidden-admin", doc([S3_READ, HIDDEN_ADMIN]), attachments=1)
    s.managed_policy(A, "hidden-admin-star-star", doc({"Effect": "Allow", "Action": "*:*", "Resource": ["*"]}),
                     attachments=1)
    s.managed_policy(A, "power-user", doc(POWER_USER), attachments=1)
    s.managed_policy(A, "not-action-one-bucket", doc({**HIDDEN_ADMIN, "Resource": "arn:aws:s3:::b"}), attachments=1)
    s.managed_policy(A, "iam-wildcard-excluded", doc({**HIDDEN_ADMIN, "NotAction": "*:Delete*"}), attachments=1)
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    for framework in (V1, V3):
        assert statuses(db, LOGIC, framework) == {
            customer("hidden-admin"): "fail", customer("hidden-admin-star-star"): "fail",
            customer("power-user"): "pass", customer("not-action-one-bucket"): "pass",
            # "*:Delete*" spares only IAM's Delete actions: iam:AttachUserPolicy is still allowed
            customer("iam-wildcard-excluded"): "fail",
        }
    reason = verdicts(db, LOGIC, V3)[(V3, "1.16", A, customer("hidden-admin"))][1]
    assert 'statement 1: Allow NotAction ["s3:*", "ec2:TerminateInstances"] on Resource "*"' in reason


def test_unknown_attachment_count_is_in_scope(db):
    s = Snapshot(db).account(A)
    s.row("managed_policies", A, arn=aws("Mystery"), policy_name="Mystery", is_aws_managed=True,
          attachment_count=None, document=doc(ALLOW_ALL))
    s.commit()
    run_check(db, LOGIC, SNAPSHOT)
    assert statuses(db, LOGIC, V3) == {aws("Mystery"): "fail"}
    assert "attachment count unknown" in verdicts(db, LOGIC, V3)[(V3, "1.16", A, aws("Mystery"))][1]
