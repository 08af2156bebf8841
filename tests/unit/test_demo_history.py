"""The demo history's earlier snapshots: today's data sets with every timestamp moved back and the scripted
changes (a rotated key, a console user who had MFA, a weaker password policy)."""

from __future__ import annotations

from iam_audit_dev.devenv.history import ROTATED_DAYS_AGO, as_of

REPORT = ("user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
          "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,"
          "access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,"
          "access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
          "cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n"
          "bob,arn:aws:iam::111111111111:user/bob,2026-02-09T09:00:00+00:00,true,N/A,N/A,N/A,false,false,N/A,N/A,N/A,"
          "N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
          "svc,arn:aws:iam::111111111111:user/svc,2026-02-09T09:00:00+00:00,false,N/A,N/A,N/A,false,true,"
          "2026-12-01T09:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n")
TODAY = {
    "access_keys": {"AccessKeyMetadata": [{"AccessKeyId": "AKIAEXAMPLE0000NEW1",
                                           "CreateDate": "2026-12-01T09:00:00+00:00",
                                           "Status": "Active", "UserName": "svc"}]},
    "credential_report": {"Content": REPORT},
    "password_policy": {"PasswordPolicy": {"MinimumPasswordLength": 14, "Version": "2012-10-17"}},
}


def test_an_earlier_day_moves_every_timestamp_back_and_applies_the_scripted_changes():
    before_rotation = as_of(TODAY, ROTATED_DAYS_AGO + 1)
    key = before_rotation["access_keys"]["AccessKeyMetadata"][0]
    assert key["AccessKeyId"] != "AKIAEXAMPLE0000NEW1"
    assert key["CreateDate"] == "2026-05-09T09:00:00+00:00"  # 200 days older, then 6 days back
    report = before_rotation["credential_report"]["Content"]
    assert ",2026-05-09T09:00:00+00:00," in report and "2026-12-01" not in report
    assert "bob,arn:aws:iam::111111111111:user/bob,2026-02-03T09:00:00+00:00,true,N/A,N/A,N/A,true," in report
    assert before_rotation["password_policy"]["PasswordPolicy"] == {"MinimumPasswordLength": 8,
                                                                     "Version": "2012-10-17"}
    after_rotation = as_of(TODAY, 1)
    assert after_rotation["access_keys"]["AccessKeyMetadata"][0] == {
        "AccessKeyId": "AKIAEXAMPLE0000NEW1", "CreateDate": "2026-11-30T09:00:00+00:00", "Status": "Active",
        "UserName": "svc"}
    assert TODAY["password_policy"]["PasswordPolicy"]["MinimumPasswordLength"] == 14  # today's left alone
