// The cache, cost and budget settings of `salvo run`: flags, SALVO_* variables and the config
// file's `cache:` and `pricing:` sections, each bad value named with where it came from.
import { describe, expect, it } from "vitest";
import { resolveRunSettings } from "../src/config/run-settings.ts";
import { ConfigError } from "../src/errors.ts";

const file = (values: Record<string, unknown>) => ({ path: "salvo.yaml", values });

describe("cache and budget settings", () => {
  it("reads flags, the environment and the config file's sections", () => {
    expect(
      resolveRunSettings({
        flags: { maxCost: "2.5", cacheForce: true },
        env: { SALVO_MAX_TOKENS_TOTAL: "100000", SALVO_CACHE_TTL: "168h" },
        file: file({
          cache: { dir: ".salvo-cache", ttl: "1h", force: false },
          pricing: { "my-model": { input: 0.5, output: 1.5, cachedInput: 0.05 } },
        }),
      }),
    ).toMatchObject({
      cache: ".salvo-cache",
      cacheTtlMs: 168 * 3600_000,
      cacheForce: true,
      maxCost: 2.5,
      maxTokensTotal: 100_000,
      pricing: { "my-model": { input: 0.5, output: 1.5, cachedInput: 0.05 } },
    });
    expect(resolveRunSettings({ flags: {}, env: {}, file: file({ cache: "dir" }) }).cache).toBe(
      "dir",
    );
  });

  it.each([
    [{ flags: { maxCost: "0" } }, 'command line: --max-cost: expected a number > 0, got "0"'],
    [
      { flags: { maxTokensTotal: "1.5" } },
      'command line: --max-tokens-total: expected a whole number >= 1, got "1.5"',
    ],
    [
      { file: file({ cache: { dir: "d", tll: "1h" } }) },
      'salvo.yaml: cache.tll: expected one of dir, ttl, force, got "1h"',
    ],
    [
      { file: file({ cache: { ttl: "forever" } }) },
      "salvo.yaml: cache.ttl: expected a duration such as 30s",
    ],
    [
      { file: file({ pricing: { "gpt-4o": { input: "cheap", output: 1 } } }) },
      'salvo.yaml: pricing.gpt-4o.input: expected a price in USD per million tokens (a number >= 0), got "cheap"',
    ],
    [
      { file: file({ pricing: { "gpt-4o": { input: 1, output: 2, cached: 0.5 } } }) },
      "salvo.yaml: pricing.gpt-4o.cached: expected one of input, output, cachedInput, got 0.5",
    ],
  ])("names the place of a bad value: %#", (sources, message) => {
    let caught: unknown;
    try {
      resolveRunSettings({ flags: {}, env: {}, ...sources });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain(message);
  });
});
