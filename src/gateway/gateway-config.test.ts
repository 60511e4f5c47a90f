import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.ts";
import { parseGatewayConfig } from "./gateway-config.ts";

const ENV = {
  OPENAI_API_KEY: "sk-upstream-openai-0123456789",
  ANTHROPIC_API_KEY: "sk-ant-upstream-0123456789",
  CLAIMS_KEY: "gw-claims-0123456789abcdef",
  BULK_KEY: "gw-bulk-0123456789abcdef0",
};

const GOOD = `# a gateway for two teams
listen: {host: 0.0.0.0, port: 9000}
grace: 45s
upstreams:
  - provider: openai
    rpm: 5000
    tpm: 2000000
    concurrency: auto
    maxConcurrency: 64
    queue: {max: 500, maxWait: 90s}
  - name: claude
    provider: anthropic
    models: ["claude-*"]
    itpm: 400000
    otpm: 80000
    timeout: 5m
    maxRetryAfter: 10m
tenants:
  - name: claims
    keyEnv: CLAIMS_KEY
    priority: 10
    admin: true
  - name: bulk
    keyEnv: BULK_KEY
    rpm: 600
    maxCost: 25
    models: [gpt-4o-mini]
audit: {file: calls.log, content: hash}
cache: {dir: .cache, ttl: 168h}
pricing:
  gpt-4o-mini: {input: 0.15, output: 0.6}
`;

function errorOf(text: string, env: Record<string, string> = ENV): ConfigError {
  try {
    parseGatewayConfig(text, "gateway.yaml", env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseGatewayConfig", () => {
  it("reads upstreams, tenants, audit, cache and prices, with keys from the environment", () => {
    const config = parseGatewayConfig(GOOD, "gateway.yaml", ENV);
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 9000 });
    expect(config.graceMs).toBe(45_000);
    expect(config.upstreams).toMatchObject([
      {
        name: "openai",
        provider: "openai",
        baseUrl: "https://api.openai.com/v1",
        apiKey: ENV.OPENAI_API_KEY,
        requestsPerMinute: 5000,
        tokensPerMinute: 2_000_000,
        maxConcurrency: 64,
        maxQueued: 500,
        maxWaitMs: 90_000,
      },
      {
        name: "claude",
        provider: "anthropic",
        baseUrl: "https://api.anthropic.com",
        apiKey: ENV.ANTHROPIC_API_KEY,
        models: ["claude-*"],
        inputTokensPerMinute: 400_000,
        outputTokensPerMinute: 80_000,
        timeoutMs: 300_000,
        maxRetryAfterMs: 600_000,
      },
    ]);
    expect(config.tenants).toMatchObject([
      { name: "claims", keys: [ENV.CLAIMS_KEY], priority: 10, admin: true },
      {
        name: "bulk",
        keys: [ENV.BULK_KEY],
        requestsPerMinute: 600,
        maxCostUsd: 25,
        models: ["gpt-4o-mini"],
      },
    ]);
    expect(config.audit).toEqual({ file: "calls.log", content: "hash" });
    expect(config.cache).toEqual({ dir: ".cache", ttlMs: 168 * 3_600_000, force: false });
  });

  it("names the field, what was expected and file:line for a bad value", () => {
    const bad = GOOD.replace("    rpm: 600\n", "    rpm: -5\n");
    const error = errorOf(bad);
    expect(error.message).toBe("gateway.yaml:25: tenants[1].rpm: expected a number > 0, got -5");
  });

  it("names an unknown field with the known ones", () => {
    const error = errorOf(GOOD.replace("    tpm: 2000000\n", "    tpn: 2000000\n"));
    expect(error.message).toMatch(
      /^gateway\.yaml:7: upstreams\[0\]\.tpn: expected a known field \(one of name, provider, baseUrl/,
    );
  });

  it("a duration, a concurrency and a provider that are not valid", () => {
    expect(errorOf(GOOD.replace("timeout: 5m", "timeout: soon")).message).toBe(
      'gateway.yaml:16: upstreams[1].timeout: expected a duration such as 30s, 500ms, 2m (a bare number is seconds), got "soon"',
    );
    expect(errorOf(GOOD.replace("concurrency: auto", "concurrency: lots")).message).toMatch(
      /gateway\.yaml:8: upstreams\[0\]\.concurrency: expected auto, or a whole number >= 1/,
    );
    expect(errorOf(GOOD.replace("provider: anthropic", "provider: gemini")).message).toMatch(
      /gateway\.yaml:12: upstreams\[1\]\.provider: expected one of openai, anthropic, got "gemini"/,
    );
  });

  it("a missing key names the variable and never shows a value", () => {
    const { OPENAI_API_KEY: _, ...env } = ENV;
    const error = errorOf(GOOD, env);
    expect(error.message).toMatch(
      /^gateway\.yaml:5: upstreams\[0\]\.provider: expected the upstream's API key in the environment variable OPENAI_API_KEY/,
    );
    const short = errorOf(GOOD, { ...ENV, BULK_KEY: "short" });
    expect(short.message).toMatch(
      /gateway\.yaml:24: tenants\[1\]\.keyEnv: .*BULK_KEY: too short \(not shown\)/,
    );
    expect(short.message).not.toContain('"short"');
  });

  it("a local upstream needs no key", () => {
    const config = parseGatewayConfig(
      "upstreams:\n  - provider: openai\n    baseUrl: http://127.0.0.1:8000/v1\n",
      "local.yaml",
      {},
    );
    expect(config.upstreams[0]!.apiKey).toBe("not-needed");
  });

  it("refuses another address than loopback without tenants, two tenants sharing a key, two upstreams of one name", () => {
    expect(errorOf("listen: {host: 0.0.0.0}\nupstreams:\n  - provider: openai\n").message).toMatch(
      /gateway\.yaml:1: listen\.host: expected a loopback address/,
    );
    const shared = GOOD.replace("keyEnv: BULK_KEY", "keyEnv: CLAIMS_KEY");
    expect(errorOf(shared).message).toMatch(
      /tenants\[1\]\.name: expected keys of its own \(one is also claims's\)/,
    );
    expect(errorOf("upstreams:\n  - provider: openai\n  - provider: openai\n").message).toMatch(
      /gateway\.yaml:3: upstreams\[1\]\.provider: expected a name no other upstream has/,
    );
  });

  it("a YAML syntax error names its line", () => {
    expect(errorOf("upstreams:\n  - provider: [openai\n").message).toMatch(
      /^gateway\.yaml:\d+: \(file\): expected valid YAML or JSON/,
    );
  });
});
