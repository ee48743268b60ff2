"""Requests this system makes to URLs it was handed (URL imports, webhook deliveries): never an SSRF.

    policy = OutboundPolicy(allowed=settings.import_allowed_networks)
    policy.check_url(url)                          # at once: scheme, a literal private address
    async with policy.client() as client:          # at connect time: every resolved address
        async with open_following(client, policy, url) as response: ...

Knows nothing of assets, webhooks or the database: URLs in, checked connections out.
"""

from fluxstudio.outbound.guard import (
    MAX_REDIRECTS,
    OutboundPolicy,
    Resolver,
    blocked_reason,
    open_following,
    system_resolver,
)

__all__ = [
    "MAX_REDIRECTS",
    "OutboundPolicy",
    "Resolver",
    "blocked_reason",
    "open_following",
    "system_resolver",
]
