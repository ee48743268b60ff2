"""Request and envelope bodies of the REST API that are not product objects.

The product objects themselves (Project, Asset, Job, ...) are `fluxstudio.studio.models`, shared with
MCP and the CLI; what is here only makes sense over HTTP: create requests, list envelopes, the upload
answer, the problem document. Every one of them is both what a handler validates or sends and what
`openapi.py` describes, so the description cannot drift from the code.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fluxstudio.studio.models import Asset, Job, PlaybackPolicy, Project
from fluxstudio.studio.webhooks import WebhookAttempt, WebhookEndpoint

NAME_MAX = 200
FILENAME_MAX = 255


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX)


class ProjectList(BaseModel):
    items: list[Project]


class AssetList(BaseModel):
    items: list[Asset]


class AssetPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playback_policy: PlaybackPolicy


class PlaybackTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: int = Field(default=3600, ge=1, le=86400, description="seconds the URLs work")


class JobList(BaseModel):
    items: list[Job]


class UploadResult(BaseModel):
    """The answer to an upload: the asset, and its job when `transcode=true` was asked for."""

    asset: Asset
    job: Job | None = None


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=FILENAME_MAX)
    transcode: bool = False


class UploadTicket(BaseModel):
    """A one-use capability URL: `PUT` the raw bytes to `upload_url`, no Authorization header needed."""

    id: str
    upload_url: str
    expires_at: datetime


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of this API is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None


class Health(BaseModel):
    status: str
    component: str
    version: str


class ImportCreate(BaseModel):
    """`POST /projects/{id}/imports`: fetch `url` into a new asset (API.md §9)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    filename: str | None = Field(default=None, min_length=1, max_length=FILENAME_MAX)
    transcode: bool = False


class WebhookCreate(BaseModel):
    """`POST /webhooks`: `events` left out means every event type."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, max_length=20)


class WebhookList(BaseModel):
    items: list[WebhookEndpoint]


class WebhookAttemptList(BaseModel):
    items: list[WebhookAttempt]


class WebhookTestResult(BaseModel):
    event_id: str
