"""Read `ffmpeg -i`'s report the way ffprobe would, for builds without ffprobe.

The wording differs between builds: 5.1 prints `displaymatrix: rotation of -90.00 degrees`, 9.0 prints
`Display Matrix: rotation of -90.00 degrees`; older files may carry only a `rotate` tag (clockwise).
"""

from __future__ import annotations

import re

from fluxstudio.media.probe_fields import blank_fields, normalize_rotation, video_fields

_INPUT = re.compile(r"^Input #0, (?P<format>.+?), from ", re.M)
_DURATION = re.compile(r"^\s+Duration: (?:(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)|N/A)", re.M)
_STREAM = re.compile(r"^\s+Stream #0:\d+\S*: (?P<kind>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$")
_SIZE = re.compile(r"(?:^|[ ,])(?P<w>\d{1,6})x(?P<h>\d{1,6})(?=[ ,\[]|$)")
_RATE = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<k>k?) (?P<unit>fps|tbr)\b")
_MATRIX = re.compile(r"display ?matrix: rotation of (?P<deg>-?\d+(?:\.\d+)?) degrees", re.I)
_ROTATE_TAG = re.compile(r"^\s+rotate\s*: (?P<deg>-?\d+)", re.M)


def parse_ffmpeg_stderr(text: str) -> dict[str, object]:
    header = _INPUT.search(text)
    text = text[header.start() :] if header else text
    fields = blank_fields(_duration(text), header.group("format") if header else "")
    for kind, rest, block in _streams(text):
        if kind == "Audio" and not fields["has_audio"]:
            fields.update(has_audio=True, audio_codec=_codec(rest))
        elif kind == "Video" and not fields["has_video"] and "(attached pic)" not in rest:
            size = _SIZE.search(rest)
            rates = {
                m.group("unit"): float(m.group("value")) * (1000 if m.group("k") else 1)
                for m in _RATE.finditer(rest)
            }
            matrix, tag = _MATRIX.search(block), _ROTATE_TAG.search(block)
            rotation = (
                normalize_rotation(float(matrix.group("deg")))
                if matrix
                else normalize_rotation(-float(tag.group("deg")))
                if tag
                else 0
            )
            width, height = (int(size.group("w")), int(size.group("h"))) if size else (None, None)
            avg, real = rates.get("fps"), rates.get("tbr")
            fields.update(video_fields(_codec(rest), width, height, rotation, avg, real))
    return fields


def _streams(text: str):
    """Yield (kind, description, indented block under it) for each stream line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _STREAM.match(line)
        if not match:
            continue
        block = []
        for following in lines[i + 1 :]:
            if _STREAM.match(following) or not following.startswith("    "):
                break
            block.append(following)
        yield match.group("kind"), match.group("rest"), "\n".join(block)


def _codec(rest: str) -> str:
    return rest.split(",", 1)[0].split(" ", 1)[0].strip()


def _duration(text: str) -> float:
    match = _DURATION.search(text)
    if not match or match.group("h") is None:
        return 0.0
    return int(match.group("h")) * 3600 + int(match.group("m")) * 60 + float(match.group("s"))
