import { describe, expect, it } from "vitest";
import type { ProviderRequest } from "../providers/provider.ts";
import { fingerprint, fingerprintSource, isShareable } from "./fingerprint.ts";

const base: ProviderRequest = {
  path: "/chat/completions",
  body: {
    model: "gpt-4o-mini",
    temperature: 0,
    max_tokens: 60,
    messages: [{ role: "user", content: "Is a windscreen covered?" }],
  },
};
const at = { provider: "openai", endpoint: "https://api.openai.com/v1" };
const key = (request: ProviderRequest, options = at) => fingerprint(request, options);
const withBody = (body: Record<string, unknown>): ProviderRequest => ({
  path: base.path,
  body: { ...base.body, ...body },
});

describe("fingerprint", () => {
  it("is 64 hex characters, stable, and independent of key order", () => {
    const reordered: ProviderRequest = {
      path: base.path,
      body: Object.fromEntries(Object.entries(base.body).reverse()),
    };
    expect(key(base)).toMatch(/^[0-9a-f]{64}$/);
    expect(key(reordered)).toBe(key(base));
  });

  it("does not depend on per-request ids, end-user tags or routing hints", () => {
    for (const extra of [
      { user: "claimant-17" },
      { safety_identifier: "u-1" },
      { metadata: { custom_id: "claim-1-line-1", run: "abc" } },
      { store: true },
      { prompt_cache_key: "k" },
      { service_tier: "flex" },
      { stream: false },
      { stream_options: { include_usage: true } },
    ])
      expect(key(withBody(extra)), JSON.stringify(extra)).toBe(key(base));
    // (The API key is not in a request at all; test/cache-sim.test.ts shows two clients with
    // different keys share one cache entry, and that no key reaches the cache's files.)
  });

  it("hashes exactly the canonical JSON of {v, provider, endpoint, path, body}", () => {
    expect(fingerprintSource(withBody({ user: "u" }), at)).toBe(
      '{"body":{"max_tokens":60,"messages":[{"content":"Is a windscreen covered?","role":"user"}],"model":"gpt-4o-mini","temperature":0},"endpoint":"https://api.openai.com/v1","path":"/chat/completions","provider":"openai","v":1}',
    );
  });

  it("changes with every field that determines the answer", () => {
    const variants: Array<[string, ProviderRequest]> = [
      ["model", withBody({ model: "gpt-4o" })],
      ["messages", withBody({ messages: [{ role: "user", content: "Is a bumper covered?" }] })],
      ["role", withBody({ messages: [{ role: "system", content: "Is a windscreen covered?" }] })],
      ["temperature", withBody({ temperature: 0.2 })],
      ["max_tokens", withBody({ max_tokens: 61 })],
      ["top_p", withBody({ top_p: 0.5 })],
      ["seed", withBody({ seed: 7 })],
      ["tools", withBody({ tools: [{ type: "function", function: { name: "f" } }] })],
      ["response_format", withBody({ response_format: { type: "json_object" } })],
      ["n", withBody({ n: 2 })],
      ["path", { path: "/completions", body: base.body }],
    ];
    const seen = new Set([key(base)]);
    for (const [field, request] of variants) {
      const k = key(request);
      expect(seen.has(k), field).toBe(false);
      seen.add(k);
    }
    expect(key(base, { provider: "anthropic", endpoint: at.endpoint })).not.toBe(key(base));
    expect(key(base, { provider: "openai", endpoint: "http://localhost:8000/v1" })).not.toBe(
      key(base),
    );
  });

  it("treats /v1/path and /path, and a trailing slash on the endpoint, as the same", () => {
    expect(key({ path: "/v1/chat/completions", body: base.body })).toBe(key(base));
    expect(key(base, { provider: "openai", endpoint: "https://api.openai.com/v1/" })).toBe(
      key(base),
    );
  });
});

describe("isShareable", () => {
  it("shares temperature 0 and unsampled endpoints, not samples, unless forced", () => {
    expect(isShareable(base)).toBe(true);
    expect(isShareable(withBody({ temperature: 0.7 }))).toBe(false);
    const { temperature: _, ...noTemperature } = base.body;
    // No temperature: the provider's default (1) applies, so the answer is a sample.
    expect(isShareable({ path: base.path, body: noTemperature })).toBe(false);
    expect(isShareable({ path: base.path, body: noTemperature }, true)).toBe(true);
    expect(isShareable({ path: "/embeddings", body: { model: "m", input: "x" } })).toBe(true);
    expect(isShareable({ path: "/v1/moderations", body: { input: "x" } })).toBe(true);
  });

  it("never shares a streamed request, even forced", () => {
    expect(isShareable(withBody({ stream: true }))).toBe(false);
    expect(isShareable(withBody({ stream: true }), true)).toBe(false);
  });
});
