"""The audited account's botocore session (aws.audit_botocore_session) keeps botocore's built-in event
handlers for the services it makes clients for: its clients run the same handlers, in the same order,
as a default session's for every operation of those services; and sessions share one model loader."""

from __future__ import annotations

import boto3
import botocore.session
import pytest

from iam_audit.aws import (
    _SHARED_LOADER,
    AUDIT_SERVICES,
    audit_botocore_session,
    ensure_service_handlers,
    share_loader,
)

# The stages botocore emits around an API call and while building a client.
STAGES = ("provide-client-params", "before-parameter-build", "before-endpoint-resolution", "before-call",
          "request-created", "choose-signer", "before-sign", "before-send", "needs-retry", "after-call",
          "after-call-error", "before-parse", "getattr", "before-retry")


def _client(core: botocore.session.Session, service: str):
    ensure_service_handlers(core, service)
    return core.create_client(service, region_name="eu-west-1", endpoint_url="http://127.0.0.1:9",
                              aws_access_key_id="AKIAEXAMPLEEXAMPLE00", aws_secret_access_key="secret")


def _handlers(client, event: str) -> list[str]:
    found = client.meta.events._emitter._handlers.prefix_search(event)
    return [getattr(h, "__qualname__", type(h).__qualname__) for h in found]


# s3: a service outside AUDIT_SERVICES gets its handlers when its first client is made
@pytest.mark.parametrize("service", sorted(AUDIT_SERVICES | {"s3"}))
def test_clients_run_the_default_handlers_of_their_service(service):
    full, lean = _client(botocore.session.get_session(), service), _client(audit_botocore_session(), service)
    model = full.meta.service_model
    service_id = model.service_id.hyphenize()
    for operation in model.operation_names:
        for stage in STAGES:
            event = f"{stage}.{service_id}.{operation}"
            assert _handlers(lean, event) == _handlers(full, event), event
    for event in (f"creating-client-class.{service_id}", "choose-service-name"):
        assert _handlers(lean, event) == _handlers(full, event), event


def test_other_services_handlers_are_left_out():
    lean = audit_botocore_session().create_client("iam", region_name="us-east-1", aws_access_key_id="a",
                                                  aws_secret_access_key="b")
    full = _client(botocore.session.get_session(), "iam")
    event = "before-parameter-build.s3.PutObject"
    assert _handlers(full, event) and _handlers(lean, event) != _handlers(full, event)


def test_sessions_share_one_loader():
    session = share_loader(boto3.Session(region_name="us-east-1"))
    assert session._session.get_component("data_loader") is _SHARED_LOADER
    paths = list(_SHARED_LOADER.search_paths)
    share_loader(boto3.Session(region_name="us-east-1", botocore_session=audit_botocore_session()))
    assert _SHARED_LOADER.search_paths == paths  # sessions do not add their data path again
