// A real MCP client (the official TypeScript SDK) against FluxStudio's /mcp, for tests/test_mcp.py.
// usage: node mcp_client.mjs SERVER_URL TOKEN
// Lists the tools, creates a project, lists projects, provokes a tool
// error, and prints what it saw as one JSON line. `redirect: "error"` makes any 3xx on /mcp a failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [serverUrl, token] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL("/mcp", serverUrl), {
  requestInit: { headers: { Authorization: `Bearer ${token}` }, redirect: "error" },
});
const client = new Client({ name: "fluxstudio-node-test", version: "1.0.0" });
await client.connect(transport);

const tools = await client.listTools();
const created = await client.callTool({ name: "create_project", arguments: { name: "from node" } });
const listed = await client.callTool({ name: "list_projects", arguments: {} });
const failed = await client.callTool({ name: "get_job", arguments: { job_id: "job_doesnotexist" } });
console.log(JSON.stringify({
  protocolVersion: transport.protocolVersion,
  sessionId: transport.sessionId ?? null,
  tools: tools.tools.map((tool) => tool.name),
  created: created.structuredContent,
  createdIsError: created.isError ?? false,
  listed: listed.structuredContent,
  failed: { isError: failed.isError ?? false, text: failed.content.map((part) => part.text).join(" ") },
}));
await client.close();
