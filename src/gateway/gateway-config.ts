// gateway.yaml: the upstreams, tenants, audit log, cache and prices of `salvo serve`, checked at
// start. A bad field is a ConfigError naming the field, what was expected, what was given and
// file:line; keys are read from the environment (`apiKeyEnv`, `keyEnv`) and never echoed.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import type { ContentMode } from "../audit/call-record.ts";
import { YamlLocator, type YamlPath } from "../config/yaml-locator.ts";
import type { PriceTable } from "../cost/pricing.ts";
import { ConfigError } from "../errors.ts";
import { parseDurationMs } from "../providers/rate-limit-headers.ts";
import { isLoopback } from "./listen.ts";
import type { TenantOptions } from "./tenant.ts";
import type { UpstreamOptions } from "./upstream.ts";

/** A gateway.yaml, read and checked, with keys taken from the environment. */
export type GatewayConfig = {
  /** Where to listen. @default 127.0.0.1:8787 */
  listen: { host: string | undefined; port: number | undefined };
  /** How long calls in flight may finish after SIGTERM, ms. @default 30_000 */
  graceMs: number | undefined;
  upstreams: UpstreamOptions[];
  tenants: TenantOptions[];
  /** The call log (one hash-chained record per attempt). @default none */
  audit: { file: string; content: ContentMode } | undefined;
  /** The response cache. @default none */
  cache: { dir: string; ttlMs: number | undefined; force: boolean } | undefined;
  pricing: PriceTable | undefined;
  maxBodyBytes: number | undefined;
  /** Where the access log goes: `stderr`, `none`, or a file. @default stderr */
  accessLog: string | undefined;
  /** The file it was read from. */
  file: string;
};

const DURATION = "a duration such as 30s, 500ms, 2m (a bare number is seconds)";
const duration = z
  .union([z.number(), z.string()])
  .refine((v) => durationMs(v) !== undefined, { message: DURATION });
const rate = z.number().positive().finite();
const count = z.number().int().min(1);
const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "the name of an environment variable, not a key" });
const models = z.array(z.string().min(1)).min(1);

const upstreamSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: "letters, digits, _ . - (a metrics label)" })
    .optional(),
  provider: z.enum(["openai", "anthropic"]),
  baseUrl: z
    .string()
    .refine((v) => URL.canParse(v), { message: "a URL such as https://api.openai.com/v1" })
    .optional(),
  apiKeyEnv: envName.optional(),
  models: models.optional(),
  headers: z.record(z.string().min(1), z.string()).optional(),
  concurrency: z.union([z.literal("auto"), count]).optional(),
  maxConcurrency: count.optional(),
  rpm: rate.optional(),
  tpm: rate.optional(),
  itpm: rate.optional(),
  otpm: rate.optional(),
  burstSeconds: z.number().positive().max(60).optional(),
  maxAttempts: count.optional(),
  timeout: duration.optional(),
  maxRetryAfter: duration.optional(),
  maxCost: rate.optional(),
  maxTokensTotal: count.optional(),
  queue: z.strictObject({ max: count.optional(), maxWait: duration.optional() }).optional(),
  anthropicVersion: z.string().min(1).optional(),
});

const tenantSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { message: "letters, digits, _ . - (a metrics label)" }),
  keyEnv: z.union([envName, z.array(envName).min(1)]).optional(),
  keySha256: z
    .union([z.string(), z.array(z.string())])
    .refine((v) => (Array.isArray(v) ? v : [v]).every((d) => /^[0-9a-fA-F]{64}$/.test(d)), {
      message: "SHA-256 digests, 64 hex characters each (sha256sum of the key)",
    })
    .optional(),
  priority: z.number().int().optional(),
  rpm: rate.optional(),
  tpm: rate.optional(),
  burstSeconds: z.number().positive().max(60).optional(),
  maxConcurrency: count.optional(),
  maxCost: rate.optional(),
  maxTokensTotal: count.optional(),
  models: models.optional(),
  admin: z.boolean().optional(),
});

const price = z.number().min(0).finite();
const fileSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).optional(),
      port: z.number().int().min(0).max(65_535).optional(),
    })
    .optional(),
  grace: duration.optional(),
  upstreams: z.array(upstreamSchema).min(1),
  tenants: z.array(tenantSchema).optional(),
  audit: z
    .union([
      z.string().min(1),
      z.strictObject({
        file: z.string().min(1),
        content: z.enum(["full", "hash", "none"]).optional(),
      }),
    ])
    .optional(),
  cache: z
    .union([
      z.string().min(1),
      z.strictObject({
        dir: z.string().min(1),
        ttl: duration.optional(),
        force: z.boolean().optional(),
      }),
    ])
    .optional(),
  pricing: z
    .record(
      z.string().min(1),
      z.strictObject({ input: price, output: price, cachedInput: price.optional() }),
    )
    .optional(),
  maxBodyBytes: count.optional(),
  accessLog: z.string().min(1).optional(),
});

type Path = YamlPath;

function dotted(path: Path): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function lookup(value: unknown, path: Path): unknown {
  let node = value;
  for (const key of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[String(key)];
  }
  return node;
}

const KNOWN: Record<string, string> = {
  "": Object.keys(fileSchema.shape).join(", "),
  upstreams: Object.keys(upstreamSchema.shape).join(", "),
  tenants: Object.keys(tenantSchema.shape).join(", "),
};

function schemaError(issue: z.core.$ZodIssue, value: unknown, at: YamlLocator): ConfigError {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const got = lookup(value, path);
  let expected: string;
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = issue.keys[0]!;
      const section = typeof path[0] === "string" ? path[0] : "";
      const known = KNOWN[path.length === 0 ? "" : section];
      return new ConfigError({
        field: dotted([...path, key]),
        expected: known ? `a known field (one of ${known})` : "a known field",
        got: key,
        where: at.where([...path, key]),
      });
    }
    case "invalid_type":
      expected =
        got === undefined
          ? `a ${issue.expected} (it is required)`
          : issue.expected === "int"
            ? "a whole number"
            : `a ${issue.expected}`;
      break;
    case "too_small":
      expected =
        issue.origin === "array"
          ? `at least ${issue.minimum} item(s)`
          : issue.origin === "string"
            ? "a non-empty string"
            : `a number ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
      break;
    case "too_big":
      expected = `a number ${issue.inclusive ? "<=" : "<"} ${issue.maximum}`;
      break;
    case "invalid_value":
      expected = `one of ${issue.values.map(String).join(", ")}`;
      break;
    case "invalid_union":
      expected = UNIONS[String(path[path.length - 1])] ?? "a valid value";
      break;
    default:
      expected = issue.message;
  }
  return new ConfigError({ field: dotted(path), expected, got, where: at.where(path) });
}

const UNIONS: Record<string, string> = {
  concurrency: "auto, or a whole number >= 1",
  audit: "a file path, or {file, content}",
  cache: "a directory, or {dir, ttl, force}",
  keyEnv: "the name of an environment variable, or a list of them",
  keySha256: "a SHA-256 digest, or a list of them",
  timeout: DURATION,
  maxRetryAfter: DURATION,
  maxWait: DURATION,
  grace: DURATION,
  ttl: DURATION,
};

function durationMs(value: string | number): number | undefined {
  const ms = typeof value === "number" ? value * 1000 : parseDurationMs(value);
  return ms !== undefined && ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

const DEFAULT_KEY_ENV = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" } as const;
const DEFAULT_BASE_URL = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
} as const;

/** Reads and checks a gateway config file (YAML or JSON); keys come from `env`. */
export async function loadGatewayConfig(
  path: string,
  env: Record<string, string | undefined>,
): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(
      {
        field: "--config",
        expected: "a readable YAML or JSON file",
        got: path,
        where: "command line",
      },
      { cause: error },
    );
  }
  return parseGatewayConfig(text, path, env);
}

/** Parses and checks gateway config text; `file` names it in errors. */
export function parseGatewayConfig(
  text: string,
  file: string,
  env: Record<string, string | undefined>,
): GatewayConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax)
    throw new ConfigError({
      field: "(file)",
      expected: "valid YAML or JSON",
      got: syntax.message.split("\n")[0],
      where: `${file}:${lines.linePos(syntax.pos[0]).line}`,
    });
  const at = new YamlLocator(doc, lines, file);
  const value: unknown = doc.toJS() ?? {};
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) throw schemaError(parsed.error.issues[0]!, value, at);
  const spec = parsed.data;
  const fail = (path: Path, expected: string, got: unknown): never => {
    throw new ConfigError({ field: dotted(path), expected, got, where: at.where(path) });
  };

  const upstreamNames = new Set<string>();
  const upstreams = spec.upstreams.map((u, i): UpstreamOptions => {
    const name = u.name ?? u.provider;
    if (upstreamNames.has(name))
      fail(
        ["upstreams", i, u.name === undefined ? "provider" : "name"],
        "a name no other upstream has (give each upstream of one provider a `name`)",
        name,
      );
    upstreamNames.add(name);
    if (u.concurrency !== undefined && u.concurrency !== "auto" && u.maxConcurrency !== undefined)
      fail(
        ["upstreams", i, "maxConcurrency"],
        "to be used with concurrency: auto",
        u.maxConcurrency,
      );
    const baseUrl = u.baseUrl ?? DEFAULT_BASE_URL[u.provider];
    const keyEnv = u.apiKeyEnv ?? DEFAULT_KEY_ENV[u.provider];
    let apiKey = env[keyEnv];
    if (apiKey === undefined || apiKey === "") {
      // Local servers (vLLM, Ollama, llama.cpp, the simulator) take any key; others need theirs.
      if (!isLoopback(new URL(baseUrl).hostname))
        fail(
          ["upstreams", i, u.apiKeyEnv === undefined ? "provider" : "apiKeyEnv"],
          `the upstream's API key in the environment variable ${keyEnv}`,
          `${keyEnv} unset`,
        );
      apiKey = "not-needed";
    }
    return {
      name,
      provider: u.provider,
      baseUrl,
      apiKey,
      models: u.models,
      headers: u.headers,
      concurrency: u.concurrency,
      maxConcurrency: u.maxConcurrency,
      requestsPerMinute: u.rpm,
      tokensPerMinute: u.tpm,
      inputTokensPerMinute: u.itpm,
      outputTokensPerMinute: u.otpm,
      burstSeconds: u.burstSeconds,
      retry: u.maxAttempts === undefined ? undefined : { maxAttempts: u.maxAttempts },
      timeoutMs: u.timeout === undefined ? undefined : durationMs(u.timeout),
      maxRetryAfterMs: u.maxRetryAfter === undefined ? undefined : durationMs(u.maxRetryAfter),
      maxCostUsd: u.maxCost,
      maxTokens: u.maxTokensTotal,
      maxQueued: u.queue?.max,
      maxWaitMs: u.queue?.maxWait === undefined ? undefined : durationMs(u.queue.maxWait),
      anthropicVersion: u.anthropicVersion,
    };
  });

  const tenantNames = new Set<string>();
  const seenKeys = new Map<string, string>();
  const tenants = (spec.tenants ?? []).map((t, i): TenantOptions => {
    if (tenantNames.has(t.name)) fail(["tenants", i, "name"], "a name no other tenant has", t.name);
    tenantNames.add(t.name);
    const keyEnvs = t.keyEnv === undefined ? [] : Array.isArray(t.keyEnv) ? t.keyEnv : [t.keyEnv];
    const keys = keyEnvs.map((name) => {
      const key = env[name];
      if (key === undefined || key.trim().length < 16)
        fail(
          ["tenants", i, "keyEnv"],
          `the tenant's gateway key (16 characters or more) in the environment variable ${name}`,
          key === undefined || key === "" ? `${name} unset` : `${name}: too short (not shown)`,
        );
      return key!.trim();
    });
    const digests =
      t.keySha256 === undefined
        ? []
        : (Array.isArray(t.keySha256) ? t.keySha256 : [t.keySha256]).map((d) => d.toLowerCase());
    if (keys.length + digests.length === 0)
      fail(["tenants", i], "keyEnv or keySha256: the tenant's gateway key(s)", t.name);
    for (const key of [...keys, ...digests]) {
      const other = seenKeys.get(key);
      if (other !== undefined)
        fail(["tenants", i, "name"], `keys of its own (one is also ${other}'s)`, t.name);
      seenKeys.set(key, t.name);
    }
    return {
      name: t.name,
      keys,
      keySha256: digests,
      priority: t.priority,
      requestsPerMinute: t.rpm,
      tokensPerMinute: t.tpm,
      burstSeconds: t.burstSeconds,
      maxConcurrency: t.maxConcurrency,
      maxCostUsd: t.maxCost,
      maxTokens: t.maxTokensTotal,
      models: t.models,
      admin: t.admin,
    };
  });

  const host = spec.listen?.host;
  if (host !== undefined && !isLoopback(host) && tenants.length === 0)
    fail(
      ["listen", "host"],
      "a loopback address (127.0.0.1, ::1, localhost) unless tenants with keys are configured",
      host,
    );
  const audit =
    spec.audit === undefined
      ? undefined
      : typeof spec.audit === "string"
        ? { file: spec.audit, content: "hash" as const }
        : { file: spec.audit.file, content: spec.audit.content ?? "hash" };
  const cache =
    spec.cache === undefined
      ? undefined
      : typeof spec.cache === "string"
        ? { dir: spec.cache, ttlMs: undefined, force: false }
        : {
            dir: spec.cache.dir,
            ttlMs: spec.cache.ttl === undefined ? undefined : durationMs(spec.cache.ttl),
            force: spec.cache.force ?? false,
          };
  return {
    listen: { host, port: spec.listen?.port },
    graceMs: spec.grace === undefined ? undefined : durationMs(spec.grace),
    upstreams,
    tenants,
    audit,
    cache,
    pricing: spec.pricing,
    maxBodyBytes: spec.maxBodyBytes,
    accessLog: spec.accessLog,
    file,
  };
}
