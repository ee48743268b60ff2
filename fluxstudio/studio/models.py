"""The product's objects as the outside sees them: REST bodies, MCP structured output, SSE event data.

One set of pydantic models so that REST, MCP and the CLI say the same thing the same way, and the
OpenAPI description and MCP output schemas come from the same place. Times are RFC 3339 UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AssetStatus = Literal["uploaded", "processing", "ready", "failed", "importing"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
SegmentFormat = Literal["fmp4", "ts"]
PlaybackPolicy = Literal["public", "signed"]

#: Job statuses from which nothing moves on.
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class Project(BaseModel):
    id: str
    name: str
    created_at: datetime


class MediaSummary(BaseModel):
    """What probing found; width and height are the displayed size (rotation applied)."""

    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    has_video: bool
    has_audio: bool
    rotation: int = 0


class RenditionOut(BaseModel):
    name: str
    width: int | None
    height: int | None
    bandwidth: int | None
    playlist_url: str | None  # null for a signed asset: its playlists need a token


class JobError(BaseModel):
    """Why a job, or an asset (`Asset.error`), failed: a stable code and a sentence for people."""

    code: str
    message: str


class Asset(BaseModel):
    id: str
    project_id: str
    filename: str
    content_type: str | None
    size_bytes: int
    status: AssetStatus
    media: MediaSummary | None
    renditions: list[RenditionOut] = Field(default_factory=list)
    playback_url: str | None = None
    # Playback (API.md section 7). For a `signed` asset the URLs are null: ask for a playback token.
    poster_url: str | None = None
    storyboard_url: str | None = None
    mp4_url: str | None = None
    playable: bool = False
    playback_policy: PlaybackPolicy = "public"
    created_at: datetime
    #: Why the asset is `failed` (an import that could not be fetched or read); null otherwise.
    error: JobError | None = None


class JobOptions(BaseModel):
    """Options of an HLS job; unknown fields are an error (422), not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    renditions: list[str] | None = Field(
        default=None, description="e.g. ['720p', '480p']; capped at the source"
    )
    segment_seconds: int = Field(default=4, ge=2, le=10)
    segment_format: SegmentFormat = "fmp4"
    mp4: bool = Field(default=False, description="also write one progressive MP4 (M4A for audio-only)")


class PlaybackToken(BaseModel):
    """URLs of a signed asset that work until `expires_at` (API.md section 7)."""

    playback_url: str | None
    poster_url: str | None
    storyboard_url: str | None
    mp4_url: str | None
    expires_at: datetime


class Job(BaseModel):
    id: str
    asset_id: str
    kind: Literal["hls"] = "hls"
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    attempts: int
    options: JobOptions
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ProgressEvent(BaseModel):
    """One `event: progress` of the job's event stream."""

    job_id: str
    status: JobStatus = "running"
    progress: float
    fps: float | None = None
    speed: float | None = None
    out_time_s: float | None = None
    eta_s: float | None = None
