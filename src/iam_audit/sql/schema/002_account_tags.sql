-- The tags of the organisation's accounts as discovered for the snapshot
-- (organizations:ListTagsForResource; tests and alert routing read the
-- security-contact tag). Replaced per snapshot date with the organisation's list;
-- kept with the other staged dates as history.
CREATE TABLE IF NOT EXISTS iam_stage.account_tags (
    snapshot_date date NOT NULL,
    account_id text NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (snapshot_date, account_id, key)
);
