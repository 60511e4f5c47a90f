import { describe, expect, it } from "vitest";
import { AdaptiveConcurrency } from "../core/concurrency/adaptive-concurrency.ts";
import { ConfigError } from "../errors.ts";
import { RUN_DEFAULTS, resolveRunSettings, schedulerOptionsFromSettings } from "./run-settings.ts";

function error(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("resolveRunSettings", () => {
  it("applies the defaults", () => {
    const settings = resolveRunSettings({ flags: {}, env: {} });
    expect(settings).toMatchObject(RUN_DEFAULTS);
    expect(settings.rpm).toBeUndefined();
  });

  it("never shows a key given where a variable name belongs", () => {
    const key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
    const message = error(() => resolveRunSettings({ flags: { apiKeyEnv: key }, env: {} })).message;
    expect(message).not.toContain(key);
    expect(message).not.toContain("abcdefghij");
  });

  it("concurrency is auto by default; --max-concurrency caps it, and only it", () => {
    expect(schedulerOptionsFromSettings(resolveRunSettings({ flags: {}, env: {} }))).toMatchObject({
      concurrency: "auto",
    });
    const capped = schedulerOptionsFromSettings(
      resolveRunSettings({ flags: {}, env: { SALVO_MAX_CONCURRENCY: "8" } }),
    ).concurrency;
    expect(capped).toBeInstanceOf(AdaptiveConcurrency);
    // Known limits start auto at 16, under the cap: here the cap, 8.
    (capped as AdaptiveConcurrency).setRateLimits({ requestsPerMinute: 1e6 });
    expect((capped as AdaptiveConcurrency).limit).toBe(8);
    expect(
      error(() =>
        resolveRunSettings({ flags: { concurrency: "8", maxConcurrency: "32" }, env: {} }),
      ).message,
    ).toMatch(/--max-concurrency: expected to be used with --concurrency auto/);
  });

  it("the Retry-After cap: 2m by default, from a flag, SALVO_MAX_RETRY_AFTER or maxRetryAfter: in a file, to the scheduler", () => {
    const cap = (sources: Parameters<typeof resolveRunSettings>[0]) =>
      schedulerOptionsFromSettings(resolveRunSettings(sources)).maxRetryAfterMs;
    expect(cap({ flags: {}, env: {} })).toBe(120_000);
    expect(cap({ flags: { maxRetryAfter: "10m" }, env: {} })).toBe(600_000);
    expect(cap({ flags: {}, env: { SALVO_MAX_RETRY_AFTER: "30s" } })).toBe(30_000);
    expect(
      cap({ flags: {}, env: {}, file: { path: "salvo.yaml", values: { maxRetryAfter: "1h" } } }),
    ).toBe(3_600_000);
  });

  it("flags beat the environment, which beats the config file", () => {
    const settings = resolveRunSettings({
      flags: { rpm: "100", timeout: "30s" },
      env: { SALVO_RPM: "200", SALVO_TPM: "5000", SALVO_CONCURRENCY: "auto" },
      file: {
        path: "salvo.yaml",
        values: { rpm: 300, tpm: 9000, maxAttempts: 3, deadline: "10m" },
      },
    });
    expect(settings).toMatchObject({
      rpm: 100,
      tpm: 5000,
      concurrency: "auto",
      maxAttempts: 3,
      timeoutMs: 30_000,
      deadlineMs: 600_000,
    });
  });

  it.each([
    [{ flags: { rpm: "-5" }, env: {} }, 'command line: --rpm: expected a number > 0, got "-5"'],
    [
      { flags: { concurrency: "lots" }, env: {} },
      'command line: --concurrency: expected a whole number >= 1, or auto, got "lots"',
    ],
    [
      { flags: { timeout: "soon" }, env: {} },
      'command line: --timeout: expected a duration such as 30s, 500ms, 2m (a bare number is seconds), got "soon"',
    ],
    [
      { flags: {}, env: { SALVO_PROGRESS: "fancy" } },
      'environment: SALVO_PROGRESS: expected one of auto, bar, plain, json, none, got "fancy"',
    ],
    [
      { flags: { baseUrl: "not a url" }, env: {} },
      'command line: --base-url: expected a URL such as https://api.openai.com/v1, got "not a url"',
    ],
    [
      { flags: { apiKeyEnv: "sk-live-123" }, env: {} },
      'command line: --api-key-env: expected the name of an environment variable such as OPENAI_API_KEY, not the key itself, got "11 characters, not shown (it may be a key)"',
    ],
    [
      { flags: {}, env: {}, file: { path: "salvo.yaml", values: { rmp: 10 } } },
      "salvo.yaml: rmp: expected a known setting",
    ],
    [
      { flags: {}, env: {}, file: { path: "salvo.yaml", values: { maxAttempts: 2.5 } } },
      "salvo.yaml: maxAttempts: expected a whole number >= 1, got 2.5",
    ],
    [
      { flags: { redis: "redis://127.0.0.1:6379", backend: "batch" }, env: {} },
      '--backend: expected realtime with --redis (the providers\' batch APIs are a backend of one process), got "batch"',
    ],
    [
      { flags: { redis: "redis://127.0.0.1:6379", runDeadline: "6h" }, env: {} },
      "--run-deadline: expected to be left out with --redis",
    ],
    [
      { flags: { redis: "redis://127.0.0.1:6379", maxRetryAfter: "10m" }, env: {} },
      "--max-retry-after: expected to be left out with --redis",
    ],
    [{ flags: { workers: "2" }, env: {} }, "--workers: expected to be used with --redis URL"],
  ])(
    "names the source, the field, what was expected and what was given: %#",
    (sources, message) => {
      expect(error(() => resolveRunSettings(sources)).message).toContain(message);
    },
  );
});
