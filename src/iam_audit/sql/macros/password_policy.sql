{#- The verdict of one character-class requirement of the account password policy (uppercase,
    lowercase, number, symbol): the four CIS controls differ only in the GetAccountPasswordPolicy
    field they read and the words of the reason, so they share this body and keep one logic file
    each (their control_logic values are part of the results).
    column: the password_policy staging column; field: the API's field name;
    a_noun: the character class with its article ("an uppercase letter"); noun: without it. -#}
{% macro character_requirement(column, field, a_noun, noun) -%}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(p.has_policy, false)
                 AND coalesce(p.{{ column }}, false)
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN NOT coalesce(p.has_policy, false)
            THEN format('The account has no IAM password policy (%%s), so passwords need not contain {{ a_noun }}; create one with {{ field }} set.',
                        CASE WHEN p.account_id IS NULL THEN 'no password policy was recorded for the account'
                             ELSE 'GetAccountPasswordPolicy returned NoSuchEntity' END)
            WHEN coalesce(p.{{ column }}, false)
            THEN 'The account password policy requires at least one {{ noun }} ({{ field }} = true).'
            ELSE 'The account password policy does not require {{ a_noun }} ({{ field }} = false); set {{ field }}.'
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN iam_stage.password_policy p
  ON p.snapshot_date = %(snapshot_date)s AND p.account_id = r.account_id
{%- endmacro %}
