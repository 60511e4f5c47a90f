// The settings of `salvo run`, from flags, environment variables (SALVO_*) and a config file
// (`--config FILE`, JSON or YAML, the same names in camelCase), in that order of precedence over
// the defaults. Every value is validated here, once, and a bad one is a ConfigError naming where
// it came from: `--rpm`, `SALVO_RPM`, or `salvo.yaml: rpm`.
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../errors.ts";
import { PROGRESS_MODES, type ProgressMode } from "../progress/progress-renderer.ts";
import { parseDurationMs } from "../providers/rate-limit-headers.ts";

export type ProviderName = "openai" | "anthropic";

export type RunSettings = {
  /** `openai` or `anthropic`; undefined: from the input's shape (Anthropic batch lines -> anthropic). */
  provider: ProviderName | undefined;
  /** The API base URL; undefined: the provider's variable (OPENAI_BASE_URL / ANTHROPIC_BASE_URL) or default. */
  baseUrl: string | undefined;
  /** The environment variable holding the API key. @default OPENAI_API_KEY / ANTHROPIC_API_KEY */
  apiKeyEnv: string | undefined;
  /** The model for lines that name none. */
  model: string | undefined;
  /** Calls in flight at once, or `auto` (adaptive: finds the provider's capacity). @default 16 */
  concurrency: number | "auto";
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
  /** How progress is shown. @default auto */
  progress: ProgressMode;
  /** Where the JSON report goes. @default none */
  report: string | undefined;
  /** Start over: remove the output and its journal. @default false */
  fresh: boolean;
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
};

export const RUN_DEFAULTS = {
  concurrency: 16,
  burstSeconds: 1,
  maxAttempts: 5,
  timeoutMs: 120_000,
  deadlineMs: Number.POSITIVE_INFINITY,
  progress: "auto",
  fresh: false,
  strict: false,
  graceMs: 30_000,
  auditContent: "hash",
} as const;

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
    fail(field, "an environment variable name such as OPENAI_API_KEY", raw, where);
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
    key: "progress",
    option: "progress",
    flag: "--progress",
    env: "SALVO_PROGRESS",
    parse: oneOf(PROGRESS_MODES),
  },
  { key: "report", option: "report", flag: "--report", env: "SALVO_REPORT", parse: text },
  { key: "fresh", option: "fresh", flag: "--fresh", env: "SALVO_FRESH", parse: flag },
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
];

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
      const field = FILE_KEYS.get(key as keyof RunSettings);
      if (!field) {
        const known = [...FILE_KEYS.keys()].join(", ");
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
  return settings as RunSettings;
}
