// The simulator's settings: the input shape (what a scenario file or `startSimulator` takes, every
// field optional), its validation into `ConfigError`s that name the field, and the defaults,
// applied here and nowhere else.

import { z } from "zod";
import { ConfigError } from "../errors.ts";
import {
  type BatchApiConfig,
  type BatchApiInput,
  batchApiSchema,
  resolveBatchApiConfig,
} from "./batch-config.ts";
import type { FaultProbabilities } from "./fault-picker.ts";
import type { LatencySettings, OutputRange } from "./latency-model.ts";

/** How many requests the server holds. Both unlimited when absent. */
export type CapacityInput = {
  /** Requests in service at once; the rest wait in a FIFO queue. @default unlimited */
  slots?: number;
  /** Requests allowed to wait for a slot; beyond it, 503 (OpenAI) or 529 (Anthropic). @default unlimited */
  queue?: number;
  /**
   * A concurrency limit: a request arriving when this many are already in the server (in service
   * and queued) is answered 429 at once, with `retryAfterMs`. @default unlimited
   */
  rejectAbove?: number;
  /** The Retry-After of those 429s, ms. @default 1000 */
  retryAfterMs?: number;
};

/** Rate limits, each enforced as a continuously refilled token bucket. Absent = no limit. */
export type LimitsInput = {
  /** Requests per minute, on both paths. */
  rpm?: number;
  /**
   * Tokens per minute, OpenAI-style: prompt tokens + max_tokens charged at arrival (on either
   * path). A request asking for more than `tpm` is refused (429 "Request too large").
   */
  tpm?: number;
  /** Input tokens per minute, Anthropic-style: prompt tokens charged at arrival. */
  itpm?: number;
  /**
   * Output tokens per minute, Anthropic-style: the actual output charged when the answer ends;
   * a request is admitted while the bucket is positive.
   */
  otpm?: number;
  /** Bucket capacity in seconds of each limit ("60 RPM may be enforced as 1 per second"). @default 1 */
  burstSeconds?: number;
};

export type LatencyInput = {
  /** Time to first token, in ms. @default 0 */
  ttftMs?: number;
  /** Time per output token after the first, in ms. @default 0 */
  msPerToken?: number;
  /** Relative jitter of both times, uniform in [1 - jitter, 1 + jitter], 0..1. @default 0 */
  jitter?: number;
  /**
   * Contention: every time scales by 1 + loadFactor * (n - 1)^loadExponent, n the requests in
   * service when the request starts. @default 0
   */
  loadFactor?: number;
  /** Latency scales by `1 + loadFactor * (others in service) ^ loadExponent`. @default 1 */
  loadExponent?: number;
};

export type OutputInput = {
  /** Answer length in tokens: a whole number, or `{min, max}` drawn per prompt. @default 16 */
  tokens?: number | { min: number; max: number };
  /** Characters of the last user message echoed after the marker. @default 32 */
  echoChars?: number;
  /** The cap (and the TPM charge) when a request sets no max_tokens, in tokens. @default 4096 */
  defaultMaxTokens?: number;
};

/** Per-request fault probabilities (0..1, summing to at most 1). */
export type FaultsInput = {
  /** 500 server error. @default 0 */
  p500?: number;
  /** 503 (OpenAI path) or 529 overloaded_error (Anthropic path). @default 0 */
  p503?: number;
  /** Connection reset: the socket is destroyed without an answer. @default 0 */
  pReset?: number;
  /** Status 200 with a body that is not JSON. @default 0 */
  pMalformed?: number;
  /** Status 200 with the body cut in half. @default 0 */
  pTruncated?: number;
  /** Never answers (until the client gives up or the sim closes). @default 0 */
  pHang?: number;
  /** A normal answer whose first byte comes `slowMs` late. @default 0 */
  pSlow?: number;
  /** The delay of a slow first byte, in ms. @default 2000 */
  slowMs?: number;
  /** Send `x-should-retry: true` on injected 5xx faults. @default false */
  shouldRetry?: boolean;
  /**
   * Echo the caller's credential (its `Authorization` or `x-api-key` header, as sent) back, as a
   * careless proxy would: in the request-id header of every answer. Tests that keys never leak.
   * @default false
   */
  echoKeyHeader?: boolean;
  /** Echo the caller's credential at the end of every successful answer's text. @default false */
  echoKeyAnswer?: boolean;
  /**
   * Probability of a 401 whose error message quotes the caller's credential. Drawn from its own
   * seeded stream, so it does not change the other faults' sequence. @default 0
   */
  pEchoKeyError?: number;
};

/** A path with its own slots, queue and buckets; unset fields come from the top level. */
export type PathInput = { capacity?: CapacityInput; limits?: LimitsInput };

export type SimConfigInput = {
  /** Seeds latency jitter, faults and answer lengths. @default 1 */
  seed?: number;
  /** The interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** The port; 0 picks a free one. @default 0 */
  port?: number;
  latency?: LatencyInput;
  output?: OutputInput;
  capacity?: CapacityInput;
  limits?: LimitsInput;
  faults?: FaultsInput;
  /** Answer every request with a quota error (OpenAI 429 insufficient_quota; Anthropic 400). @default false */
  quota?: boolean;
  /** Most requests kept in the stats timeline; later ones are counted, not kept. @default 100_000 */
  timelineLimit?: number;
  /**
   * The work a bench scenario runs against this server (`salvo bench`, scenarios/bench/); the
   * simulator ignores it, so a bench scenario also runs as `salvo sim --scenario FILE`.
   */
  bench?: unknown;
  /**
   * Paths that get their own capacity and buckets. By default both protocol paths share one set
   * of slots, queue and limits.
   */
  paths?: { openai?: PathInput; anthropic?: PathInput };
  /** The batch APIs (OpenAI Batch + Files, Anthropic Message Batches): timing, expiry, failures, limits. */
  batch?: BatchApiInput;
};

/** One pool of capacity and limits, resolved. */
export type PoolConfig = {
  slots: number;
  queue: number;
  rejectAbove: number;
  retryAfterMs: number;
  rpm: number | undefined;
  tpm: number | undefined;
  itpm: number | undefined;
  otpm: number | undefined;
  burstSeconds: number;
};

/** The settings with every default applied. Unlimited is `Infinity`. */
export type SimConfig = {
  seed: number;
  host: string;
  port: number;
  latency: LatencySettings;
  output: { range: OutputRange; echoChars: number; defaultMaxTokens: number };
  faults: FaultProbabilities & {
    slowMs: number;
    shouldRetry: boolean;
    echoKeyHeader: boolean;
    echoKeyAnswer: boolean;
    pEchoKeyError: number;
  };
  quota: boolean;
  timelineLimit: number;
  /** The pool each path uses; the same object when the paths share one. */
  pools: { openai: PoolConfig; anthropic: PoolConfig };
  batch: BatchApiConfig;
};

const count = (min: number) => z.number().int().min(min);
const rate = z.number().positive().finite();
const probability = z.number().min(0).max(1);

const capacitySchema = z.strictObject({
  slots: count(1).optional(),
  queue: count(0).optional(),
  rejectAbove: count(1).optional(),
  retryAfterMs: z.number().min(0).finite().optional(),
});
const limitsSchema = z.strictObject({
  rpm: rate.optional(),
  tpm: rate.optional(),
  itpm: rate.optional(),
  otpm: rate.optional(),
  burstSeconds: rate.optional(),
});
const pathSchema = z.strictObject({
  capacity: capacitySchema.optional(),
  limits: limitsSchema.optional(),
});
const rangeSchema = z
  .strictObject({ min: count(1), max: count(1) })
  .refine((r) => r.min <= r.max, { message: "min <= max", path: ["max"] });

const faultsSchema = z
  .strictObject({
    p500: probability.optional(),
    p503: probability.optional(),
    pReset: probability.optional(),
    pMalformed: probability.optional(),
    pTruncated: probability.optional(),
    pHang: probability.optional(),
    pSlow: probability.optional(),
    slowMs: z.number().min(0).finite().optional(),
    shouldRetry: z.boolean().optional(),
    echoKeyHeader: z.boolean().optional(),
    echoKeyAnswer: z.boolean().optional(),
    pEchoKeyError: probability.optional(),
  })
  .refine(
    (f) =>
      (f.p500 ?? 0) +
        (f.p503 ?? 0) +
        (f.pReset ?? 0) +
        (f.pMalformed ?? 0) +
        (f.pTruncated ?? 0) +
        (f.pHang ?? 0) +
        (f.pSlow ?? 0) <=
      1 + 1e-12,
    { message: "fault probabilities that add up to at most 1" },
  );

/** The schema of a scenario; unknown fields are errors. */
export const simConfigSchema = z.strictObject({
  seed: z.number().int().optional(),
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65_535).optional(),
  latency: z
    .strictObject({
      ttftMs: z.number().min(0).finite().optional(),
      msPerToken: z.number().min(0).finite().optional(),
      jitter: z.number().min(0).max(1).optional(),
      loadFactor: z.number().min(0).finite().optional(),
      loadExponent: z.number().positive().finite().optional(),
    })
    .optional(),
  output: z
    .strictObject({
      tokens: z.union([count(1), rangeSchema]).optional(),
      echoChars: count(0).optional(),
      defaultMaxTokens: count(1).optional(),
    })
    .optional(),
  capacity: capacitySchema.optional(),
  limits: limitsSchema.optional(),
  faults: faultsSchema.optional(),
  quota: z.boolean().optional(),
  timelineLimit: count(0).optional(),
  bench: z.unknown().optional(),
  paths: z
    .strictObject({ openai: pathSchema.optional(), anthropic: pathSchema.optional() })
    .optional(),
  batch: batchApiSchema.optional(),
}) satisfies z.ZodType<SimConfigInput>;

/** Where a config came from, for error messages. */
export type ConfigSource = {
  /** A file path or `command line`. */
  where?: string;
  /** The line of a field in the source, when known (scenario files). */
  lineOf?: (path: readonly PropertyKey[]) => number | undefined;
  /** How a field is named to the user, e.g. `limits.rpm` -> `--rpm`. @default the dotted path */
  fieldName?: (dotted: string) => string;
};

const UNION_EXPECTED: Record<string, string> = {
  "output.tokens": "a whole number >= 1 or {min, max} of whole numbers >= 1",
};

/**
 * Validates `input` as a `SimConfigInput`, throwing a `ConfigError` for the first bad field with
 * its dotted path, what was expected, what was given and where.
 */
export function validateSimConfig(input: unknown, source: ConfigSource = {}): SimConfigInput {
  const result = simConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let path: PropertyKey[] = [...issue.path];
  let expected: string;
  let got: unknown;
  switch (issue.code) {
    case "unrecognized_keys": {
      const key = issue.keys[0]!;
      const known = knownKeys(path);
      path = [...path, key];
      expected = `a known field${known.length ? ` (one of ${known.join(", ")})` : ""}`;
      got = key;
      break;
    }
    case "invalid_type":
      expected = issue.expected === "int" ? "a whole number" : `a ${issue.expected}`;
      if (issue.expected === "object") expected = "an object";
      got = valueAt(input, path);
      break;
    case "too_small":
      expected = `a number ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
      if (issue.origin === "string") expected = "a non-empty string";
      got = valueAt(input, path);
      break;
    case "too_big":
      expected = `a number ${issue.inclusive ? "<=" : "<"} ${issue.maximum}`;
      got = valueAt(input, path);
      break;
    case "invalid_union":
      expected = UNION_EXPECTED[path.join(".")] ?? "a valid value";
      got = valueAt(input, path);
      break;
    default:
      expected = issue.message;
      got = valueAt(input, path);
  }
  const dotted = path.map(String).join(".") || "(top level)";
  const line = source.lineOf?.(path);
  const where =
    source.where === undefined ? undefined : line ? `${source.where}:${line}` : source.where;
  throw new ConfigError({
    field: source.fieldName ? source.fieldName(dotted) : dotted,
    expected,
    got,
    ...(where === undefined ? {} : { where }),
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

// The field names of the object schema at `path`, for "did you mean" help on unknown fields.
function knownKeys(path: readonly PropertyKey[]): string[] {
  // biome-ignore lint/suspicious/noExplicitAny: walking zod's internal definitions
  let schema: any = simConfigSchema;
  const unwrap = () => {
    for (;;) {
      const def = schema?._zod?.def;
      if (def?.type === "optional" || def?.type === "default") schema = def.innerType;
      else if (def?.type === "pipe") schema = def.in;
      else if (def?.type === "union")
        schema = def.options.find(
          (o: { _zod: { def: { type: string } } }) => o._zod.def.type === "object",
        );
      else return;
    }
  };
  unwrap();
  for (const key of path) {
    schema = schema?._zod?.def?.shape?.[key];
    unwrap();
  }
  const shape = schema?._zod?.def?.shape;
  return shape ? Object.keys(shape) : [];
}

/** Deep-merges plain objects; `override`'s defined values win. For flags over a scenario file. */
export function mergeSimConfig(base: SimConfigInput, override: SimConfigInput): SimConfigInput {
  return mergeObjects(base, override) as SimConfigInput;
}

function mergeObjects(base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override))
    return override === undefined ? base : override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    out[key] = key in base ? mergeObjects(base[key], value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Validates `input` and applies every default. */
export function resolveSimConfig(input: SimConfigInput = {}, source?: ConfigSource): SimConfig {
  const c = validateSimConfig(input, source);
  const tokens = c.output?.tokens ?? 16;
  const range = typeof tokens === "number" ? { min: tokens, max: tokens } : tokens;
  const f = c.faults ?? {};
  const shared = pool(c.capacity, c.limits);
  const paths = c.paths ?? {};
  const pathPool = (p: PathInput | undefined) =>
    p === undefined ? shared : pool({ ...c.capacity, ...p.capacity }, { ...c.limits, ...p.limits });
  return {
    seed: c.seed ?? 1,
    host: c.host ?? "127.0.0.1",
    port: c.port ?? 0,
    latency: {
      ttftMs: c.latency?.ttftMs ?? 0,
      msPerToken: c.latency?.msPerToken ?? 0,
      jitter: c.latency?.jitter ?? 0,
      loadFactor: c.latency?.loadFactor ?? 0,
      loadExponent: c.latency?.loadExponent ?? 1,
    },
    output: {
      range,
      echoChars: c.output?.echoChars ?? 32,
      defaultMaxTokens: c.output?.defaultMaxTokens ?? 4096,
    },
    faults: {
      server_error: f.p500 ?? 0,
      overloaded: f.p503 ?? 0,
      reset: f.pReset ?? 0,
      malformed: f.pMalformed ?? 0,
      truncated: f.pTruncated ?? 0,
      hang: f.pHang ?? 0,
      slow_first_byte: f.pSlow ?? 0,
      slowMs: f.slowMs ?? 2000,
      shouldRetry: f.shouldRetry ?? false,
      echoKeyHeader: f.echoKeyHeader ?? false,
      echoKeyAnswer: f.echoKeyAnswer ?? false,
      pEchoKeyError: f.pEchoKeyError ?? 0,
    },
    quota: c.quota ?? false,
    timelineLimit: c.timelineLimit ?? 100_000,
    pools: { openai: pathPool(paths.openai), anthropic: pathPool(paths.anthropic) },
    batch: resolveBatchApiConfig(c.batch),
  };
}

function pool(capacity: CapacityInput | undefined, limits: LimitsInput | undefined): PoolConfig {
  return {
    slots: capacity?.slots ?? Infinity,
    queue: capacity?.queue ?? Infinity,
    rejectAbove: capacity?.rejectAbove ?? Infinity,
    retryAfterMs: capacity?.retryAfterMs ?? 1000,
    rpm: limits?.rpm,
    tpm: limits?.tpm,
    itpm: limits?.itpm,
    otpm: limits?.otpm,
    burstSeconds: limits?.burstSeconds ?? 1,
  };
}
