"""Structured output of the MCP tools that is not a product object itself.

The product objects (Project, Asset, Job) are `fluxstudio.studio.models`, shared with REST; a tool that
lists them wraps the list in an object, because MCP structured output must be a JSON object.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from fluxstudio.studio.comments import Comment
from fluxstudio.studio.models import Asset, Project, RenditionOut


class ProjectList(BaseModel):
    items: list[Project]


class AssetList(BaseModel):
    items: list[Asset]


class UploadTicket(BaseModel):
    """A one-use upload URL, and the command that spends it: the bytes go over plain HTTP, not MCP."""

    upload_id: str
    project_id: str
    upload_url: str = Field(description="PUT the raw file here; no Authorization header; works once")
    expires_at: datetime
    curl: str = Field(description="run this where the file is; it prints {asset, job} as JSON")
    transcode: bool = Field(description="whether the upload starts an HLS transcode by itself")


class Playback(BaseModel):
    """Where to play an asset: the HLS master playlist and its renditions, poster, storyboard and MP4.

    `playable` may be true while the job still runs (watch while transcoding). For a `signed` asset the
    URLs carry a playback token and work until `expires_at`; `renditions` is then empty (their playlists
    are reached through the master)."""

    asset_id: str
    playback_url: str
    renditions: list[RenditionOut]
    playable: bool = True
    playback_policy: str = "public"
    poster_url: str | None = None
    storyboard_url: str | None = None
    mp4_url: str | None = None
    expires_at: datetime | None = None


class CommentList(BaseModel):
    items: list[Comment]
