// The upstream key never leaves the gateway, even when the upstream itself echoes it back: in
// an error body, an error header, a plain-text error page, an error inside a stream. Checked in
// every response, the access log, the audit log (with full content), /salvo/status and /metrics.

import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openCallLog } from "../src/audit/call-log.ts";
import { createGateway, listen } from "../src/gateway/index.ts";
import { UPSTREAM_KEYS, UPSTREAM_OPENAI_KEY, useGatewayWorld } from "./support/gateway-world.ts";

const world = useGatewayWorld("salvo-gateway-secrets-");
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** An upstream that puts the key it was sent into every kind of failure it answers. */
async function echoingUpstream(): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const key = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      const content = (JSON.parse(body) as { messages: Array<{ content: string }> }).messages[0]!
        .content;
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(value));
      };
      switch (content) {
        case "400":
          return json(
            400,
            {
              error: {
                message: `bad request sent with key ${key}`,
                type: "invalid_request_error",
                param: null,
                code: null,
              },
            },
            { "x-request-id": `req-${key}` },
          );
        case "401":
          return json(401, {
            error: {
              message: `Incorrect API key provided: ${key}`,
              type: "invalid_request_error",
              code: "invalid_api_key",
            },
          });
        case "502":
          res.writeHead(502, { "content-type": "text/html" });
          return res.end(`<html>proxy error for Authorization: Bearer ${key}</html>`);
        case "stream": {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(
            `data: ${JSON.stringify({ id: "c", model: "m", choices: [{ index: 0, delta: { content: "hi" }, finish_reason: null }] })}\n\n`,
          );
          return res.end(
            `data: ${JSON.stringify({ error: { message: `stream failed for ${key}`, type: "server_error" } })}\n\n`,
          );
        }
        default:
          return json(200, {
            id: "c",
            object: "chat.completion",
            model: "m",
            choices: [
              { index: 0, message: { role: "assistant", content: "fine" }, finish_reason: "stop" },
            ],
            usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
          });
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

describe("the upstream key", () => {
  it("reaches no response, log line, audit record or figure, even when the upstream echoes it", async () => {
    const baseUrl = await echoingUpstream();
    const auditPath = join(world.dir, "calls.log");
    const audit = await openCallLog(auditPath, { content: "full" });
    const access: string[] = [];
    const gateway = createGateway({
      upstreams: [
        {
          provider: "openai",
          baseUrl,
          apiKey: UPSTREAM_OPENAI_KEY,
          retry: { maxAttempts: 2, baseDelayMs: 1 },
        },
      ],
      audit,
      processMetrics: false,
      onAccess: (record) => access.push(JSON.stringify(record)),
    });
    const server = await listen(gateway, { port: 0 });
    const ask = (content: string, stream = false) =>
      world.fetch(`${server.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", stream, messages: [{ role: "user", content }] }),
      });
    const texts: string[] = [];
    const statuses: number[] = [];
    for (const [content, stream] of [
      ["400", false],
      ["401", false],
      ["502", false],
      ["stream", true],
      ["ok", false],
    ] as const) {
      const response = await ask(content, stream);
      statuses.push(response.status);
      texts.push(`${[...response.headers].join("\n")}\n${await response.text()}`);
    }
    // The upstream's statuses and bodies pass on, without the key: its 401 (a refusal of the
    // gateway's own credentials) becomes a 502 for the operator to fix.
    expect(statuses).toEqual([400, 502, 502, 200, 200]);
    expect(texts[0]).toContain("bad request sent with key [redacted]");
    expect(texts[1]).toContain("upstream_credentials_refused");
    expect(texts[3]).toContain("stream failed for [redacted]");
    texts.push(await (await world.fetch(`${server.origin}/salvo/status`)).text());
    texts.push(await (await world.fetch(`${server.origin}/metrics`)).text());
    await server.close(1000);
    await audit.close();
    const log = await readFile(auditPath, "utf8");
    expect(log).toContain("[redacted]"); // the error messages were recorded, scrubbed
    for (const key of UPSTREAM_KEYS)
      for (const text of [...texts, log, ...access]) expect(text).not.toContain(key);
  });
});
