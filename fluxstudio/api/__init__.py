"""The REST surface: `/api/v1` and the operator endpoints beside it (`/healthz`, `/readyz`, `/metrics`,
`/openapi.json`, `/media`).

It translates HTTP to calls of `fluxstudio.studio` and back, and nothing more: no SQL, no rule about
ownership or job states lives here. HTTP status codes live here and nowhere else (`problems.py`).
"""
