"""boto3 clients for the loader, reused across invocations of a warm Lambda container."""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3

from loader.settings import Settings


@functools.lru_cache(maxsize=8)
def _cached_client(service_name: str, endpoint_url: str | None, region: str) -> Any:
    session: Any = boto3.session.Session()
    return session.client(service_name, endpoint_url=endpoint_url, region_name=region)


def aws_client(settings: Settings, service_name: str) -> Any:
    """A boto3 client for `service_name` at the settings' endpoint and region.

    Against a local endpoint (moto) any credentials do; dummy ones are set when none are,
    so that boto3 does not go looking for real ones.
    """
    if settings.aws_endpoint_url:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    return _cached_client(service_name, settings.aws_endpoint_url, settings.aws_region)
