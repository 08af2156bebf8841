-- password_policy_uppercase · catalogue: sql/catalogue/controls/password_policy_uppercase.yaml
-- The account password policy requires at least one uppercase letter.
-- Audit: GetAccountPasswordPolicy RequireUppercaseCharacters = true.
-- One verdict per account. An account without a password policy (has_policy = false:
-- GetAccountPasswordPolicy said NoSuchEntity) fails, and so does a ready account with
-- no password_policy row at all (treated as no policy).
-- Reads: password_policy. Resource: the 12-digit account id (account-level).
-- The body is shared with the other character-class checks (macros/password_policy.sql).
{% from 'macros/check.sql' import check %}
{% from 'macros/password_policy.sql' import character_requirement %}
{% call check('password_policy_uppercase', needs=['password_policy']) %}
{{ character_requirement('require_uppercase_characters', 'RequireUppercaseCharacters', 'an uppercase letter', 'uppercase letter') }}
{% endcall %}
