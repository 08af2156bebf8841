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
    def __init__(self, bucket: str, aws_conn_id: str = "aws_default", kms_key_id: str | None = None):
        self.bucket = bucket
        extra_args = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        self.hook = _s3_hook_class()(aws_conn_id=aws_conn_id, extra_args=extra_args)

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
            self.hook.get_conn().put_object(Bucket=self.bucket, Key=key, Body=data, **encryption, **extra)
        except ClientError as exc:
            raise RawStoreError(f"could not write {self.url(key)}: {error_code(exc)}: {exc}") from None

    def get(self, key: str) -> bytes:
        try:
            return self.hook.get_conn().get_object(Bucket=self.bucket, Key=key)["Body"].read()
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
            self.hook.get_conn().list_objects_v2(Bucket=self.bucket, Prefix=f"{prefix}/", MaxKeys=1)
            return None
        except ClientError as exc:
            code = error_code(exc)
            if code in ("NoSuchBucket", "404", "NotFound"):
                return f"bucket {self.bucket!r} does not exist"
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return (f"the aws_default connection may not list s3://{self.bucket}/{prefix}/ ({code}): allow "
                        f"s3:ListBucket on arn:aws:s3:::{self.bucket} with s3:prefix {prefix}/* "
                        "(include/policies/s3-raw-reader.json)")
            return f"s3://{self.bucket}/{prefix}/ could not be listed: {code}: {exc}"
