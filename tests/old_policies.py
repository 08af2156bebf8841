"""Policy texts shipped before the least-privilege review, kept as negative cases for the policy tests."""

# src/iam_audit/policies/s3-raw-reader.json before the least-privilege review: ListBucket only under an s3:prefix
# condition (so HeadBucket, which has no s3:prefix key, is refused), plus "" which let the
# reader list the whole bucket.
OLD_READER_TEXT = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadRawSnapshots", "Effect": "Allow", "Action": ["s3:GetObject"],
     "Resource": "arn:aws:s3:::${Bucket}/${Prefix}/*"},
    {"Sid": "FindSnapshotsAndCheckTheBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
     "Resource": "arn:aws:s3:::${Bucket}",
     "Condition": {"StringLike": {"s3:prefix": ["${Prefix}/*", ""]}}}
  ]
}"""


def old_reader(bucket: str, prefix: str) -> dict:
    import json

    return json.loads(OLD_READER_TEXT.replace("${Bucket}", bucket).replace("${Prefix}", prefix))
