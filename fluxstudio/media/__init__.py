"""The ffmpeg HLS pipeline: probe an upload, plan its ladder, transcode it with one ffmpeg process.

Pure: paths in, dataclasses and progress out. It imports nothing of ours but `fluxstudio.errors`, and
knows nothing of the database, queue, storage or settings.
"""

from fluxstudio.media.guards import FORMAT_WHITELIST, Limits
from fluxstudio.media.hls import HlsResult, transcode_hls
from fluxstudio.media.ladder import (
    DEFAULT_RENDITIONS,
    PRESETS,
    Ladder,
    LadderOptions,
    Rendition,
    plan_ladder,
)
from fluxstudio.media.playlists import Variant
from fluxstudio.media.probe import MediaInfo, probe
from fluxstudio.media.progress import Progress
from fluxstudio.media.tools import Tools, find_tools

__all__ = [
    "DEFAULT_RENDITIONS",
    "FORMAT_WHITELIST",
    "PRESETS",
    "HlsResult",
    "Ladder",
    "LadderOptions",
    "Limits",
    "MediaInfo",
    "Progress",
    "Rendition",
    "Tools",
    "Variant",
    "find_tools",
    "plan_ladder",
    "probe",
    "transcode_hls",
]
