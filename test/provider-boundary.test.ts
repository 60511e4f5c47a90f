// What crosses the provider boundary, through the official SDKs: nothing nested deeper than
// MAX_JSON_DEPTH (a 50k-deep body was a NETWORK_ERROR, "Maximum call stack size exceeded", retried
// five times), and nothing carrying the key the provider was built with.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { openCallLog } from "../src/audit/call-log.ts";
import { AnthropicProvider } from "../src/providers/anthropic-provider.ts";
import { MAX_JSON_DEPTH } from "../src/providers/json-depth.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import type { ProviderRequest } from "../src/providers/provider.ts";
import { Salvo } from "../src/salvo.ts";
import { useWorkspace } from "./support/workspace.ts";

const KEY = "sk-boundary-test-0f1e2d3c4b5a69788796a5b4";
const ws = useWorkspace("salvo-boundary-", { output: { tokens: 3 } });

const deep = (depth: number): unknown => JSON.parse(`${"[".repeat(depth)}${"]".repeat(depth)}`);

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that answers every request with `body` (a string of JSON) and echoes the key. */
async function answering(status: number, body: (auth: string) => string): Promise<string> {
  server = createServer((req, res) => {
    req.resume();
    const auth = String(req.headers.authorization ?? req.headers["x-api-key"] ?? "");
    res.writeHead(status, { "content-type": "application/json", "x-request-id": `req ${auth}` });
    res.end(body(auth));
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/v1`;
}

describe("the provider boundary", () => {
  it("refuses a request nested deeper than MAX_JSON_DEPTH unsent, once, as SALVO_REQUEST_INVALID", async () => {
    const sim = await ws.simulator();
    for (const provider of [
      new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: KEY }),
      new AnthropicProvider({ baseURL: sim.origin, apiKey: KEY }),
    ]) {
      const salvo = new Salvo({ provider, concurrency: 2 });
      const request: ProviderRequest = {
        path: provider.name === "openai" ? "/chat/completions" : "/messages",
        body: {
          model: "m",
          max_tokens: 4,
          messages: [{ role: "user", content: "hi" }],
          tools: deep(50_000),
        },
      };
      const outcome = await salvo.settle(request);
      expect(outcome.ok).toBe(false);
      expect(outcome).toMatchObject({ attempts: 1 });
      expect((outcome as { error: { code: string; message: string } }).error).toMatchObject({
        code: "SALVO_REQUEST_INVALID",
        message: `${provider.name}: the request body nests deeper than ${MAX_JSON_DEPTH} levels; it was not sent`,
      });
      await salvo.close();
    }
    expect(sim.stats().arrivals).toBe(0);
  });

  it("an answer nested deeper than MAX_JSON_DEPTH is malformed, and the call log still records it", async () => {
    const baseURL = await answering(
      200,
      () => `{"choices":${"[".repeat(60_000)}${"]".repeat(60_000)}}`,
    );
    const log = await openCallLog(`${ws.dir}/calls.jsonl`);
    const salvo = new Salvo({
      provider: new OpenAIProvider({ baseURL, apiKey: KEY }),
      retry: { maxAttempts: 2, baseDelayMs: 1 },
      audit: log,
    });
    const outcome = await salvo.settle({
      path: "/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: "hi" }] },
    });
    await log.close();
    expect(outcome).toMatchObject({ ok: false, attempts: 2 });
    const error = (
      outcome as unknown as { error: { code: string; message: string; requestId: string } }
    ).error;
    expect(error.code).toBe("SALVO_INVALID_RESPONSE");
    expect(error.message).toBe(`openai: the answer nests deeper than ${MAX_JSON_DEPTH} levels`);
    expect(error.requestId).toBe("req Bearer [REDACTED]");
    await salvo.close();
  });

  it("an error body and headers echoing the key reach the caller scrubbed, cause included", async () => {
    const baseURL = await answering(401, (auth) =>
      JSON.stringify({
        error: {
          message: `Incorrect API key provided: ${auth}`,
          type: "invalid_request_error",
          code: "invalid_api_key",
        },
      }),
    );
    const salvo = new Salvo({ provider: new OpenAIProvider({ baseURL, apiKey: KEY }) });
    const outcome = await salvo.settle({
      path: "/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: "hi" }] },
    });
    expect(outcome.ok).toBe(false);
    const error = (outcome as { error: Error & { requestId?: string } }).error;
    expect(error.message).toBe(
      "openai answered 401: Incorrect API key provided: Bearer [REDACTED]",
    );
    const dump = (value: unknown): string => {
      const seen = new Set<unknown>();
      return JSON.stringify(value, (_k, v) => {
        if (v instanceof Headers) return Object.fromEntries(v);
        if (v instanceof Error) {
          if (seen.has(v)) return "[seen]";
          seen.add(v);
          return { ...v, message: v.message, stack: v.stack, cause: v.cause };
        }
        return v;
      });
    };
    expect(dump(error)).not.toContain(KEY);
    expect(dump(error)).toContain("[REDACTED]");
    await salvo.close();
  });
});
