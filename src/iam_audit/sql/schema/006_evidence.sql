-- The SHA-256 of each raw snapshot manifest (and of the organisation's account list) as the
-- live load read it. The manifests' own checksums live in the same bucket as the data and are
-- written by the same principal: whoever can rewrite the data can rewrite them. This table is
-- written only by the pipeline's database role, so a replay compares each manifest with the
-- digest recorded here and refuses one that differs, naming the object.
CREATE TABLE IF NOT EXISTS iam_audit_evidence_digests (
    snapshot_date date NOT NULL,
    object_url text NOT NULL,          -- s3://bucket/key
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    run_id text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (snapshot_date, object_url)
);
REVOKE ALL ON iam_audit_evidence_digests FROM PUBLIC;
