// The settings of `salvo run`, from flags, environment variables (SALVO_*) and a config file
// (`--config FILE`, JSON or YAML, the same names in camelCase), in that order of precedence over
// the defaults. Every value is validated here, once, and a bad one is a ConfigError naming where
// it came from: `--rpm`, `SALVO_RPM`, or `salvo.yaml: rpm`.
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { AnthropicBatchClient } from "../batch/anthropic-batch-client.ts";
import type { Backend } from "../batch/batch-backend.ts";
import { batchClientFromEnv } from "../batch/batch-client-from-env.ts";
import { OpenAIBatchClient } from "../batch/openai-batch-client.ts";
import type { ProviderBatchClient } from "../batch/provider-batch-client.ts";
import { AdaptiveConcurrency } from "../core/concurrency/adaptive-concurrency.ts";
import type { ModelPrice, PriceTable } from "../cost/pricing.ts";
import { ConfigError } from "../errors.ts";
import { PROGRESS_MODES, type ProgressMode } from "../progress/progress-renderer.ts";
import { AnthropicProvider } from "../providers/anthropic-provider.ts";
import { OpenAIProvider } from "../providers/openai-provider.ts";
import type { Provider } from "../providers/provider.ts";
import {
  BASE_URL_ENV,
  KEY_ENV,
  type ProviderName,
  providerFromEnv,
} from "../providers/provider-from-env.ts";
import { parseDurationMs } from "../providers/rate-limit-headers.ts";
import type { SalvoOptions } from "../salvo.ts";
import { loadScenario, type SimHandle, startSimulator } from "../sim/index.ts";
import { SCENARIO_DIR } from "../sim/scenario-dir.ts";
import { RUN_DEFAULTS } from "./run-defaults.ts";

export type { ProviderName };

export type RunSettings = {
  /** `openai` or `anthropic`; undefined: from the input's shape (Anthropic batch lines -> anthropic). */
  provider: ProviderName | undefined;
  /** The API base URL; undefined: the provider's variable (OPENAI_BASE_URL / ANTHROPIC_BASE_URL) or default. */
  baseUrl: string | undefined;
  /** The environment variable holding the API key. @default OPENAI_API_KEY / ANTHROPIC_API_KEY */
  apiKeyEnv: string | undefined;
  /** The model for lines that name none. */
  model: string | undefined;
  /** Calls in flight at once, or `auto` (adaptive: finds the provider's capacity). @default auto */
  concurrency: number | "auto";
  /** The most calls `auto` may have in flight. @default 256 */
  maxConcurrency: number | undefined;
  /** Requests per minute. @default none */
  rpm: number | undefined;
  /** Tokens per minute (OpenAI: prompt + max_tokens). @default none */
  tpm: number | undefined;
  /** Input tokens per minute (Anthropic). @default none */
  itpm: number | undefined;
  /** Output tokens per minute (Anthropic). @default none */
  otpm: number | undefined;
  /** Seconds of each per-minute limit that may go at once. @default 1 */
  burstSeconds: number;
  /** Attempts per item, the first included. @default 5 */
  maxAttempts: number;
  /** Per-attempt timeout, ms. @default 120_000 */
  timeoutMs: number;
  /** Deadline per item across all attempts, ms. @default none */
  deadlineMs: number;
  /**
   * The longest Retry-After the provider may ask for: a longer one fails the item at once
   * (SALVO_RETRY_AFTER_TOO_LONG) instead of sleeping on it, ms. @default 120_000
   */
  maxRetryAfterMs: number;
  /** How progress is shown. @default auto */
  progress: ProgressMode;
  /** Where the JSON report goes. @default none */
  report: string | undefined;
  /** Start over: remove the output and its journal. @default false */
  fresh: boolean;
  /** A rerun also runs again the lines that failed for good (400, 401, 403, 404, quota...). @default false */
  retryFailed: boolean;
  /** Check every input line before any call; stop on the first bad one. @default false */
  strict: boolean;
  /** Run against the built-in simulator with this scenario (a name in scenarios/ or a file). */
  sim: string | undefined;
  /** How long Ctrl-C waits for calls in flight before abandoning them, ms. @default 30_000 */
  graceMs: number;
  /** The call log: one hash-chained record per attempt. @default none */
  audit: string | undefined;
  /** What of each request and answer the call log keeps. @default hash */
  auditContent: "full" | "hash" | "none";
  /** The response cache directory (config: `cache: DIR` or `cache: {dir, ttl, force}`). @default none */
  cache?: string | undefined;
  /** How long a cached answer stays fresh, ms. @default Infinity (never expires) */
  cacheTtlMs?: number | undefined;
  /** Cache and share sampled requests too (temperature > 0 or unset). @default false */
  cacheForce?: boolean | undefined;
  /** Most USD this run may spend. @default none */
  maxCost?: number | undefined;
  /** Most tokens (input + output) this run may use. @default none */
  maxTokensTotal?: number | undefined;
  /** Read and check the input and print what the run would cost; call nothing. @default false */
  dryRun?: boolean | undefined;
  /** Prices overriding the built-in table, USD per million tokens (config file only). */
  pricing?: PriceTable | undefined;
  /** Where the calls go: realtime, batch (the provider's batch API) or auto. @default realtime */
  backend?: Backend | undefined;
  /**
   * When the whole run should be done: a duration from the run's first start (ms), or a time.
   * Not `deadlineMs`, which bounds each call. @default none
   */
  runDeadline?: number | Date | undefined;
  /** How long the provider's batch API is expected to take, ms. @default 24h (with --sim: the scenario's) */
  batchTurnaroundMs?: number | undefined;
  /** Most requests per provider batch. @default the provider's limit */
  batchSize?: number | undefined;
  /**
   * Scale out: the Redis that holds the shared limits and the batch's queue (`--redis`); the run
   * becomes the coordinator of worker processes. @default none (one process)
   */
  redis?: string | undefined;
  /** With `redis`: worker processes to start on this machine (0: only `salvo worker`s elsewhere). @default 1 */
  workers?: number | undefined;
  /**
   * With `redis`: how long a dead worker's lines and shared slots stay held before others take
   * them over (its job locks and its leases), ms. @default 10_000
   */
  workerTimeoutMs?: number | undefined;
  /** With `redis`: the most calls one worker process has in flight. @default the shared limit */
  workerConcurrency?: number | undefined;
};

type Parse<T> = (raw: unknown, field: string, where: string) => T;

function fail(field: string, expected: string, got: unknown, where: string): never {
  throw new ConfigError({ field, expected, got, where });
}

const positiveNumber: Parse<number> = (raw, field, where) => {
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    fail(field, "a number > 0", raw, where);
  }
  return value;
};

const positiveInteger: Parse<number> = (raw, field, where) => {
  const value = positiveNumber(raw, field, where);
  if (!Number.isInteger(value)) fail(field, "a whole number >= 1", raw, where);
  return value;
};

const concurrency: Parse<number | "auto"> = (raw, field, where) => {
  if (raw === "auto") return "auto";
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    fail(field, "a whole number >= 1, or auto", raw, where);
  }
  return value;
};

/** `30s`, `500ms`, `2m`, `1h30m`; a bare number is seconds. */
const duration: Parse<number> = (raw, field, where) => {
  const ms =
    typeof raw === "number" ? (raw > 0 ? raw * 1000 : undefined) : parseDurationMs(String(raw));
  if (ms === undefined || !(ms > 0)) {
    fail(field, "a duration such as 30s, 500ms, 2m (a bare number is seconds)", raw, where);
  }
  return ms;
};

/**
 * A run deadline: a duration from the run's first start (`6h`, `90m`; a bare number is seconds),
 * or a date and time (`2025-06-01T09:00:00Z`, ISO 8601 with a zone).
 */
const deadlineAt: Parse<number | Date> = (raw, field, where) => {
  if (raw instanceof Date && !Number.isNaN(raw.getTime())) return raw;
  if (typeof raw === "string" && /^\d{4}-\d{2}-\d{2}T/.test(raw.trim())) {
    const at = Date.parse(raw.trim());
    if (Number.isNaN(at) || !/(Z|[+-]\d{2}:?\d{2})$/.test(raw.trim()))
      fail(
        field,
        "a duration such as 6h or 90m, or a date and time with its zone, such as 2025-06-01T09:00:00Z",
        raw,
        where,
      );
    return new Date(at);
  }
  return duration(raw, field, where);
};

const nonNegativeInteger: Parse<number> = (raw, field, where) => {
  const value = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
    fail(field, "a whole number >= 0", raw, where);
  return value;
};

/** `redis://[user:password@]host[:port][/db]` or `rediss://`; a bad one is never echoed whole. */
const redisUrl: Parse<string> = (raw, field, where) => {
  let ok = false;
  if (typeof raw === "string") {
    try {
      const parsed = new URL(raw);
      ok =
        (parsed.protocol === "redis:" || parsed.protocol === "rediss:") && parsed.hostname !== "";
    } catch {
      ok = false;
    }
  }
  if (!ok)
    fail(
      field,
      "a Redis URL such as redis://127.0.0.1:6379 (or rediss:// for TLS)",
      typeof raw === "string"
        ? `${raw.length} characters, not shown (it may hold a password)`
        : raw,
      where,
    );
  return raw as string;
};

const text: Parse<string> = (raw, field, where) => {
  if (typeof raw !== "string" || raw.trim() === "") fail(field, "a non-empty string", raw, where);
  return raw;
};

const url: Parse<string> = (raw, field, where) => {
  const value = text(raw, field, where);
  if (!URL.canParse(value)) fail(field, "a URL such as https://api.openai.com/v1", raw, where);
  return value;
};

const envName: Parse<string> = (raw, field, where) => {
  const value = text(raw, field, where);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    // Not echoed: what lands here by mistake is most often the key itself.
    fail(
      field,
      "the name of an environment variable such as OPENAI_API_KEY, not the key itself",
      `${value.length} characters, not shown (it may be a key)`,
      where,
    );
  }
  return value;
};

function oneOf<T extends string>(choices: readonly T[]): Parse<T> {
  return (raw, field, where) => {
    if (typeof raw !== "string" || !choices.includes(raw as T)) {
      fail(field, `one of ${choices.join(", ")}`, raw, where);
    }
    return raw as T;
  };
}

const flag: Parse<boolean> = (raw, field, where) => {
  if (typeof raw === "boolean") return raw;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  return fail(field, "true or false", raw, where);
};

type Field = {
  /** The RunSettings key, and the config file key. */
  key: keyof RunSettings;
  /** The commander option's attribute name (camelCase of the flag). */
  option: string;
  flag: string;
  env: string;
  parse: Parse<unknown>;
};

const FIELDS: readonly Field[] = [
  {
    key: "provider",
    option: "provider",
    flag: "--provider",
    env: "SALVO_PROVIDER",
    parse: oneOf(["openai", "anthropic"]),
  },
  { key: "baseUrl", option: "baseUrl", flag: "--base-url", env: "SALVO_BASE_URL", parse: url },
  {
    key: "apiKeyEnv",
    option: "apiKeyEnv",
    flag: "--api-key-env",
    env: "SALVO_API_KEY_ENV",
    parse: envName,
  },
  { key: "model", option: "model", flag: "--model", env: "SALVO_MODEL", parse: text },
  {
    key: "concurrency",
    option: "concurrency",
    flag: "--concurrency",
    env: "SALVO_CONCURRENCY",
    parse: concurrency,
  },
  {
    key: "maxConcurrency",
    option: "maxConcurrency",
    flag: "--max-concurrency",
    env: "SALVO_MAX_CONCURRENCY",
    parse: positiveInteger,
  },
  { key: "rpm", option: "rpm", flag: "--rpm", env: "SALVO_RPM", parse: positiveNumber },
  { key: "tpm", option: "tpm", flag: "--tpm", env: "SALVO_TPM", parse: positiveNumber },
  { key: "itpm", option: "itpm", flag: "--itpm", env: "SALVO_ITPM", parse: positiveNumber },
  { key: "otpm", option: "otpm", flag: "--otpm", env: "SALVO_OTPM", parse: positiveNumber },
  {
    key: "burstSeconds",
    option: "burstSeconds",
    flag: "--burst-seconds",
    env: "SALVO_BURST_SECONDS",
    parse: positiveNumber,
  },
  {
    key: "maxAttempts",
    option: "maxAttempts",
    flag: "--max-attempts",
    env: "SALVO_MAX_ATTEMPTS",
    parse: positiveInteger,
  },
  { key: "timeoutMs", option: "timeout", flag: "--timeout", env: "SALVO_TIMEOUT", parse: duration },
  {
    key: "deadlineMs",
    option: "deadline",
    flag: "--deadline",
    env: "SALVO_DEADLINE",
    parse: duration,
  },
  {
    key: "maxRetryAfterMs",
    option: "maxRetryAfter",
    flag: "--max-retry-after",
    env: "SALVO_MAX_RETRY_AFTER",
    parse: duration,
  },
  {
    key: "progress",
    option: "progress",
    flag: "--progress",
    env: "SALVO_PROGRESS",
    parse: oneOf(PROGRESS_MODES),
  },
  { key: "report", option: "report", flag: "--report", env: "SALVO_REPORT", parse: text },
  { key: "fresh", option: "fresh", flag: "--fresh", env: "SALVO_FRESH", parse: flag },
  {
    key: "retryFailed",
    option: "retryFailed",
    flag: "--retry-failed",
    env: "SALVO_RETRY_FAILED",
    parse: flag,
  },
  { key: "strict", option: "strict", flag: "--strict", env: "SALVO_STRICT", parse: flag },
  { key: "sim", option: "sim", flag: "--sim", env: "SALVO_SIM", parse: text },
  { key: "graceMs", option: "grace", flag: "--grace", env: "SALVO_GRACE", parse: duration },
  { key: "audit", option: "audit", flag: "--audit", env: "SALVO_AUDIT", parse: text },
  {
    key: "auditContent",
    option: "auditContent",
    flag: "--audit-content",
    env: "SALVO_AUDIT_CONTENT",
    parse: oneOf(["full", "hash", "none"]),
  },
  { key: "cache", option: "cache", flag: "--cache", env: "SALVO_CACHE", parse: text },
  {
    key: "cacheTtlMs",
    option: "cacheTtl",
    flag: "--cache-ttl",
    env: "SALVO_CACHE_TTL",
    parse: duration,
  },
  {
    key: "cacheForce",
    option: "cacheForce",
    flag: "--cache-force",
    env: "SALVO_CACHE_FORCE",
    parse: flag,
  },
  {
    key: "maxCost",
    option: "maxCost",
    flag: "--max-cost",
    env: "SALVO_MAX_COST",
    parse: positiveNumber,
  },
  {
    key: "maxTokensTotal",
    option: "maxTokensTotal",
    flag: "--max-tokens-total",
    env: "SALVO_MAX_TOKENS_TOTAL",
    parse: positiveInteger,
  },
  { key: "dryRun", option: "dryRun", flag: "--dry-run", env: "SALVO_DRY_RUN", parse: flag },
  {
    key: "backend",
    option: "backend",
    flag: "--backend",
    env: "SALVO_BACKEND",
    parse: oneOf(["realtime", "batch", "auto"]),
  },
  {
    key: "runDeadline",
    option: "runDeadline",
    flag: "--run-deadline",
    env: "SALVO_RUN_DEADLINE",
    parse: deadlineAt,
  },
  {
    key: "batchTurnaroundMs",
    option: "batchTurnaround",
    flag: "--batch-turnaround",
    env: "SALVO_BATCH_TURNAROUND",
    parse: duration,
  },
  {
    key: "batchSize",
    option: "batchSize",
    flag: "--batch-size",
    env: "SALVO_BATCH_SIZE",
    parse: positiveInteger,
  },
  { key: "redis", option: "redis", flag: "--redis", env: "SALVO_REDIS", parse: redisUrl },
  {
    key: "workers",
    option: "workers",
    flag: "--workers",
    env: "SALVO_WORKERS",
    parse: nonNegativeInteger,
  },
  {
    key: "workerTimeoutMs",
    option: "workerTimeout",
    flag: "--worker-timeout",
    env: "SALVO_WORKER_TIMEOUT",
    parse: duration,
  },
  {
    key: "workerConcurrency",
    option: "workerConcurrency",
    flag: "--worker-concurrency",
    env: "SALVO_WORKER_CONCURRENCY",
    parse: positiveInteger,
  },
];

const isMapping = (raw: unknown): raw is Record<string, unknown> =>
  typeof raw === "object" && raw !== null && !Array.isArray(raw);

const price: Parse<number> = (raw, field, where) => {
  if (typeof raw !== "number" || !Number.isFinite(raw) || raw < 0)
    fail(field, "a price in USD per million tokens (a number >= 0)", raw, where);
  return raw;
};

/** `pricing: {MODEL: {input, output, cachedInput?}}`, USD per million tokens. */
const pricing: Parse<PriceTable> = (raw, field, where) => {
  if (!isMapping(raw))
    fail(field, "a mapping of model names to {input, output, cachedInput}", raw, where);
  const table: Record<string, ModelPrice> = {};
  for (const [model, entry] of Object.entries(raw)) {
    const at = `${field}.${model}`;
    if (!isMapping(entry))
      fail(at, "{input, output, cachedInput} in USD per million tokens", entry, where);
    for (const key of Object.keys(entry))
      if (!["input", "output", "cachedInput"].includes(key))
        fail(`${at}.${key}`, "one of input, output, cachedInput", entry[key], where);
    table[model] = {
      input: price(entry.input, `${at}.input`, where),
      output: price(entry.output, `${at}.output`, where),
      ...(entry.cachedInput === undefined
        ? {}
        : { cachedInput: price(entry.cachedInput, `${at}.cachedInput`, where) }),
    };
  }
  return table;
};

/** The config file's `cache:` is a directory, or `{dir, ttl, force}`. */
function cacheSection(raw: unknown, where: string): Partial<RunSettings> {
  if (!isMapping(raw)) return { cache: text(raw, "cache", where) };
  const out: Partial<RunSettings> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === "dir") out.cache = text(value, "cache.dir", where);
    else if (key === "ttl") out.cacheTtlMs = duration(value, "cache.ttl", where);
    else if (key === "force") out.cacheForce = flag(value, "cache.force", where);
    else fail(`cache.${key}`, "one of dir, ttl, force", value, where);
  }
  return out;
}

/** Config file keys: the RunSettings keys, with `timeout`, `deadline` and `grace` as durations. */
const FILE_KEYS = new Map(FIELDS.map((f) => [f.key.endsWith("Ms") ? f.option : f.key, f]));

/** Reads a JSON or YAML config file into a plain object. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let source: string;
  try {
    source = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      {
        field: "--config",
        expected: "a readable JSON or YAML file",
        got: path,
        where: "command line",
      },
      { cause: error },
    );
  }
  let value: unknown;
  try {
    value = path.endsWith(".json") ? JSON.parse(source) : parseYaml(source);
  } catch (error) {
    throw new ConfigError(
      {
        field: "(file)",
        expected: "valid JSON or YAML",
        got: (error as Error).message,
        where: path,
      },
      { cause: error },
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError({
      field: "(file)",
      expected: "a mapping of settings",
      got: value,
      where: path,
    });
  }
  return value as Record<string, unknown>;
}

export type SettingsSources = {
  /** Commander's parsed options (undefined where not given). */
  flags: Record<string, unknown>;
  env: Record<string, string | undefined>;
  /** The config file's contents and path, if one was given. */
  file?: { path: string; values: Record<string, unknown> } | undefined;
};

/** Resolves and validates the settings; the first bad value throws a ConfigError naming its source. */
export function resolveRunSettings(sources: SettingsSources): RunSettings {
  const settings: Record<string, unknown> = { ...RUN_DEFAULTS };
  const file = sources.file;
  if (file) {
    for (const [key, raw] of Object.entries(file.values)) {
      if (key === "cache") {
        Object.assign(settings, cacheSection(raw, file.path));
        continue;
      }
      if (key === "pricing") {
        settings.pricing = pricing(raw, key, file.path);
        continue;
      }
      const field = FILE_KEYS.get(key as keyof RunSettings);
      if (!field) {
        const known = [...FILE_KEYS.keys(), "pricing"].join(", ");
        throw new ConfigError({
          field: key,
          expected: `a known setting (${known})`,
          got: raw,
          where: file.path,
        });
      }
      settings[field.key] = field.parse(raw, key, file.path);
    }
  }
  for (const field of FIELDS) {
    const raw = sources.env[field.env];
    if (raw !== undefined && raw !== "")
      settings[field.key] = field.parse(raw, field.env, "environment");
  }
  for (const field of FIELDS) {
    const raw = sources.flags[field.option];
    if (raw !== undefined) settings[field.key] = field.parse(raw, field.flag, "command line");
  }
  for (const [key, name] of [
    ["workers", "--workers"],
    ["workerTimeoutMs", "--worker-timeout"],
    ["workerConcurrency", "--worker-concurrency"],
  ] as const)
    if (settings[key] !== undefined && settings.redis === undefined)
      fail(
        name,
        "to be used with --redis URL (worker processes share the batch through Redis)",
        settings[key],
        "settings",
      );
  if (settings.redis !== undefined) {
    // Not shared across machines yet: refused rather than silently kept per worker.
    const unsupported: Array<[keyof RunSettings, string]> = [
      ["cache", "--cache"],
      ["audit", "--audit"],
      ["maxCost", "--max-cost"],
      ["maxTokensTotal", "--max-tokens-total"],
    ];
    // The workers use the default cap (2m): a different one is not carried to them yet.
    if (settings.maxRetryAfterMs !== RUN_DEFAULTS.maxRetryAfterMs)
      fail(
        "--max-retry-after",
        "to be left out with --redis (the workers keep the default, 2m)",
        settings.maxRetryAfterMs,
        "settings",
      );
    for (const [key, name] of unsupported)
      if (settings[key] !== undefined)
        fail(
          name,
          "to be left out with --redis (a response cache, a call log and a budget are per process; they are not shared across workers yet)",
          settings[key],
          "settings",
        );
    for (const [key, name] of [
      ["runDeadline", "--run-deadline"],
      ["batchTurnaroundMs", "--batch-turnaround"],
      ["batchSize", "--batch-size"],
    ] as const)
      if (settings[key] !== undefined)
        fail(
          name,
          "to be left out with --redis (the providers' batch APIs are a backend of one process)",
          settings[key],
          "settings",
        );
    if (settings.backend !== undefined && settings.backend !== "realtime")
      fail(
        "--backend",
        "realtime with --redis (the providers' batch APIs are a backend of one process)",
        settings.backend,
        "settings",
      );
  }
  if (typeof settings.concurrency === "number" && settings.maxConcurrency !== undefined) {
    fail(
      "--max-concurrency",
      `to be used with --concurrency auto (a fixed --concurrency ${settings.concurrency} is already the most in flight)`,
      settings.maxConcurrency,
      "settings",
    );
  }
  return settings as RunSettings;
}

// --- Shared by the commands that call a provider (`salvo run`, `salvo pipeline`). ---

/** The key used against the in-process simulator: never a real one. */
export const SIM_KEY = "sk-salvo-simulator-local";

export { RUN_DEFAULTS } from "./run-defaults.ts";
export { BASE_URL_ENV, KEY_ENV };

/** The file of `--sim`'s scenario: a name in scenarios/, or a path. */
export function scenarioPath(scenario: string): string {
  const isPath = scenario.includes("/") || scenario.endsWith(".yaml") || scenario.endsWith(".json");
  return isPath ? scenario : `${SCENARIO_DIR}${scenario}.yaml`;
}

/** Starts the in-process simulator of `--sim`: a scenario name in scenarios/, or a file. */
export async function startSimulatorFor(scenario: string): Promise<SimHandle> {
  return startSimulator(await loadScenario(scenarioPath(scenario)));
}

/**
 * The provider the settings name: the simulator's when one runs, else the API key from the
 * environment (`--api-key-env`) and the base URL from `--base-url` or the provider's variable.
 * The key is read here and passed to the SDK only; it never reaches a message.
 */
export function providerFromSettings(
  name: ProviderName,
  settings: Pick<RunSettings, "apiKeyEnv" | "baseUrl">,
  env: Record<string, string | undefined>,
  sim: SimHandle | undefined,
): Provider {
  if (sim) {
    return name === "anthropic"
      ? new AnthropicProvider({ baseURL: sim.origin, apiKey: SIM_KEY })
      : new OpenAIProvider({ baseURL: sim.baseUrl, apiKey: SIM_KEY });
  }
  return providerFromEnv(name, { apiKeyEnv: settings.apiKeyEnv, baseUrl: settings.baseUrl, env });
}

/**
 * The provider's batch API client the settings name (`--backend batch|auto`): the simulator's
 * when one runs, else as `providerFromSettings` configures the real-time provider.
 */
export function batchClientFromSettings(
  name: ProviderName,
  settings: Pick<RunSettings, "apiKeyEnv" | "baseUrl">,
  env: Record<string, string | undefined>,
  sim: SimHandle | undefined,
): ProviderBatchClient {
  if (sim) {
    return name === "anthropic"
      ? new AnthropicBatchClient({ baseURL: sim.origin, apiKey: SIM_KEY })
      : new OpenAIBatchClient({ baseURL: sim.baseUrl, apiKey: SIM_KEY });
  }
  return batchClientFromEnv(name, {
    apiKeyEnv: settings.apiKeyEnv,
    baseUrl: settings.baseUrl,
    env,
  });
}

/** The rate limits the settings give, as every scheduler, gateway upstream and worker takes them. */
export function rateOptionsFromSettings(settings: RunSettings) {
  return {
    requestsPerMinute: settings.rpm,
    tokensPerMinute: settings.tpm,
    inputTokensPerMinute: settings.itpm,
    outputTokensPerMinute: settings.otpm,
    burstSeconds: settings.burstSeconds,
  };
}

/** The scheduler options the settings give: limits, timeouts and attempts. */
export function schedulerOptionsFromSettings(
  settings: RunSettings,
): Omit<SalvoOptions, "provider" | "audit" | "scheduler"> {
  const adaptive = settings.concurrency === "auto" && settings.maxConcurrency !== undefined;
  return {
    concurrency: adaptive
      ? new AdaptiveConcurrency({ max: settings.maxConcurrency })
      : settings.concurrency,
    ...rateOptionsFromSettings(settings),
    timeoutMs: settings.timeoutMs,
    deadlineMs: settings.deadlineMs,
    maxRetryAfterMs: settings.maxRetryAfterMs,
    retry: { maxAttempts: settings.maxAttempts },
  };
}

/** A pipeline file's named client's settings (`clients: {name: {...}}`), checked like a config file's. */
export function clientSettings(client: {
  settings: Record<string, unknown>;
  where: string;
}): RunSettings {
  return resolveRunSettings({
    flags: {},
    env: {},
    file: { path: client.where, values: client.settings },
  });
}
