"""Raw snapshot objects in S3, through the Amazon provider's S3Hook.

Objects are written with server-side encryption (AES256, or aws:kms with the
configured key) and overwritten on reruns of a date.
"""

from __future__ import annotations

import functools

from botocore.exceptions import ClientError

from iam_audit.aws import error_code, share_loader


class RawObjectMissing(LookupError):
    pass


class RawStoreError(RuntimeError):
    pass


@functools.cache
def _s3_hook_class():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    class SharedModelsS3Hook(S3Hook):
        """S3Hook whose sessions read service models through the process's loader (aws.share_loader)."""

        def get_session(self, region_name=None, deferrable=False):
            return share_loader(super().get_session(region_name=region_name, deferrable=deferrable))

    return SharedModelsS3Hook


class S3RawStore:
    """Every call passes ExpectedBucketOwner: if the bucket was deleted and its name taken by another
    account, S3 answers 403 instead of storing the evidence there or serving someone else's objects.
    The owner is `expected_owner` (the Variable iam_audit_bucket_owner) or else the account of the
    connection's own credentials (STS GetCallerIdentity, which needs no permission)."""

    def __init__(self, bucket: str, aws_conn_id: str = "aws_default", kms_key_id: str | None = None,
                 expected_owner: str | None = None):
        self.bucket = bucket
        self.aws_conn_id = aws_conn_id
        self._expected_owner = expected_owner
        extra_args = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        self.hook = _s3_hook_class()(aws_conn_id=aws_conn_id, extra_args=extra_args)

    @property
    def expected_owner(self) -> str:
        if self._expected_owner is None:
            from iam_audit.aws import target_from_connection

            self._expected_owner = target_from_connection(self.aws_conn_id).client("sts").get_caller_identity()[
                "Account"]
        return self._expected_owner

    def _owner(self) -> dict:
        return {"ExpectedBucketOwner": self.expected_owner}

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write with the store's server-side encryption (AES256, or KMS when configured).

        Always one PutObject, whatever the size (up to S3's 5 GiB limit for it): S3Hook.load_bytes
        switches to a multipart upload above 8 MiB, and UploadPart cannot carry the
        x-amz-server-side-encryption header that the writer policy requires on every s3:PutObject.
        """
        encryption = dict(self.hook.extra_args or {}) or {"ServerSideEncryption": "AES256"}
        extra = {"ContentType": content_type} if content_type else {}
        try:
            self.hook.get_conn().put_object(Bucket=self.bucket, Key=key, Body=data, **encryption, **extra,
                                            **self._owner())
        except ClientError as exc:
            raise RawStoreError(f"could not write {self.url(key)}: {error_code(exc)}: {exc}") from None

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; RawObjectTooLarge (naming it) above `max_bytes`, before reading its body."""
        from iam_audit.ingest.layout import ObjectTooLarge, max_object_bytes

        limit = max_bytes or max_object_bytes()
        try:
            response = self.hook.get_conn().get_object(Bucket=self.bucket, Key=key, **self._owner())
            if int(response.get("ContentLength") or 0) > limit:
                response["Body"].close()
                raise ObjectTooLarge(f"{self.url(key)} holds {response['ContentLength']} bytes, more than the "
                                     f"{limit // (1024 * 1024)} MiB a raw object may hold (IAM_AUDIT_MAX_OBJECT_MIB)")
            return response["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise RawObjectMissing(f"{self.url(key)} does not exist") from None
            raise RawStoreError(f"could not read {self.url(key)}: {error_code(exc)}: {exc}") from None

    def check_readable(self, prefix: str) -> str | None:
        """None when the prefix can be listed, else why not.

        Lists under the prefix (one key at most) instead of HeadBucket: S3 authorises
        HeadBucket as s3:ListBucket without an s3:prefix key, which the shipped reader
        policy's s3:prefix condition refuses (a condition on a missing key is false).
        """
        try:
            self.hook.get_conn().list_objects_v2(Bucket=self.bucket, Prefix=f"{prefix}/", MaxKeys=1,
                                                 **self._owner())
            return None
        except ClientError as exc:
            code = error_code(exc)
            if code in ("NoSuchBucket", "404", "NotFound"):
                return f"bucket {self.bucket!r} does not exist"
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                # S3 also answers 403 when the bucket belongs to another account than the expected owner
                return (f"the aws_default connection may not list s3://{self.bucket}/{prefix}/ ({code}), or the "
                        f"bucket is not owned by account {self.expected_owner} (iam_audit_bucket_owner, else the "
                        f"account of the connection's credentials): allow s3:ListBucket on "
                        f"arn:aws:s3:::{self.bucket} with s3:prefix {prefix}/* (policies/s3-raw-reader.json)")
            return f"s3://{self.bucket}/{prefix}/ could not be listed: {code}: {exc}"

    def list_keys(self, prefix: str, max_keys: int) -> list[str]:
        """Keys under `prefix`, at most `max_keys` (RawStoreError naming the prefix beyond that: a flood of
        objects under a date must not exhaust the task's memory)."""
        keys: list[str] = []
        paginator = self.hook.get_conn().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **self._owner()):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
                if len(keys) > max_keys:
                    raise RawStoreError(f"{self.url(prefix)} holds more than {max_keys} objects, more than a "
                                        "snapshot writes: refused")
        except ClientError as exc:
            raise RawStoreError(f"could not list {self.url(prefix)}: {error_code(exc)}: {exc}") from None
        return keys
