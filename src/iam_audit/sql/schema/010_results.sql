-- The control catalogue (loaded from sql/catalogue/). aws_policy_results, the
-- verdicts BI tools read, is part of the public contract: extend it, never rename
-- its columns.
CREATE TABLE IF NOT EXISTS aws_policy_controls (
    framework text NOT NULL,
    check_id text NOT NULL,
    logic text,                        -- sql/checks/<logic>.sql; NULL for manual controls
    title text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    level text,
    assessment text NOT NULL CHECK (assessment IN ('automated', 'manual')),
    params jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (framework, check_id)
);
CREATE INDEX IF NOT EXISTS aws_policy_controls_logic_idx ON aws_policy_controls (logic);

-- aws_policy_results is a view over the verdict history (sql/schema/011_history.sql,
-- sql/views/005_aws_policy_results.sql); databases of the earlier design, where it
-- was a table, are migrated by sql/schema/012_migrate_results.sql.
