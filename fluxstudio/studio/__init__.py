"""The product's operations and their rules, shared by REST, MCP, the CLI and the workers.

Each module owns one kind of thing (users, tokens, projects, assets, jobs, ...) and takes an asyncpg pool
as its first argument; none reads settings or the environment, and none knows HTTP.
"""
