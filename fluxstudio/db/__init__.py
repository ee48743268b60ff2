"""PostgreSQL access: the connection pool (`pool`) and the schema's migrations (`migrations`).

This layer knows connections and schema, not the product's rules: those live in `fluxstudio.studio`.
"""

from fluxstudio.db.pool import connect, create_pool, describe

__all__ = ["connect", "create_pool", "describe"]
