// The simulator's batch APIs' settings (OpenAI Batch + Files, Anthropic Message Batches): how
// long a batch takes, when it expires, how many of its requests fail, and the providers' size
// limits. The input shape, its schema and the defaults, applied here and nowhere else.

import { z } from "zod";

/** Every field optional; `batch:` in a scenario file, `batch` in `startSimulator`'s options. */
export type BatchApiInput = {
  /** Time a new OpenAI batch spends `validating` before it starts, ms. @default 0 */
  validatingMs?: number;
  /**
   * Time the provider takes to process a batch, from its start to its last request, ms; the
   * requests finish one by one over it, in a seeded order. @default 1000
   */
  completionMs?: number;
  /** Processing time added per request of the batch, ms (a bigger batch takes longer). @default 0 */
  msPerRequest?: number;
  /** Time an OpenAI batch spends `finalizing` after its last request, ms. @default 0 */
  finalizingMs?: number;
  /** Time a cancelled batch spends `cancelling` before it ends, ms. @default 0 */
  cancellingMs?: number;
  /**
   * The completion window, ms from creation: requests not processed by then expire
   * (`batch_expired` / `expired`) and the batch ends as `expired`. @default 86_400_000 (24 h)
   */
  expiryMs?: number;
  /** Probability (0..1) that a request fails with a 500 server error, drawn per request. @default 0 */
  pError?: number;
  /** Most requests in one batch. @default 50_000 (OpenAI), 100_000 (Anthropic) */
  maxRequests?: number;
  /** Most bytes of one batch: the input file (OpenAI) or the request body (Anthropic). @default 200 MB (OpenAI), 256 MB (Anthropic) */
  maxBytes?: number;
};

/** The settings with every default applied. */
export type BatchApiConfig = {
  validatingMs: number;
  completionMs: number;
  msPerRequest: number;
  finalizingMs: number;
  cancellingMs: number;
  expiryMs: number;
  pError: number;
  limits: {
    openai: { maxRequests: number; maxBytes: number };
    anthropic: { maxRequests: number; maxBytes: number };
  };
};

/** OpenAI's documented limits: 50,000 requests and 200 MB per batch input file. */
export const OPENAI_BATCH_LIMITS = { maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 } as const;
/** Anthropic's documented limits: 100,000 requests and 256 MB per Message Batch. */
export const ANTHROPIC_BATCH_LIMITS = {
  maxRequests: 100_000,
  maxBytes: 256 * 1024 * 1024,
} as const;

const ms = z.number().min(0).finite();

export const batchApiSchema = z.strictObject({
  validatingMs: ms.optional(),
  completionMs: ms.optional(),
  msPerRequest: ms.optional(),
  finalizingMs: ms.optional(),
  cancellingMs: ms.optional(),
  expiryMs: z.number().positive().finite().optional(),
  pError: z.number().min(0).max(1).optional(),
  maxRequests: z.number().int().min(1).optional(),
  maxBytes: z.number().int().min(1).optional(),
}) satisfies z.ZodType<BatchApiInput>;

export function resolveBatchApiConfig(input: BatchApiInput = {}): BatchApiConfig {
  const limit = (defaults: { maxRequests: number; maxBytes: number }) => ({
    maxRequests: input.maxRequests ?? defaults.maxRequests,
    maxBytes: input.maxBytes ?? defaults.maxBytes,
  });
  return {
    validatingMs: input.validatingMs ?? 0,
    completionMs: input.completionMs ?? 1000,
    msPerRequest: input.msPerRequest ?? 0,
    finalizingMs: input.finalizingMs ?? 0,
    cancellingMs: input.cancellingMs ?? 0,
    expiryMs: input.expiryMs ?? 86_400_000,
    pError: input.pError ?? 0,
    limits: { openai: limit(OPENAI_BATCH_LIMITS), anthropic: limit(ANTHROPIC_BATCH_LIMITS) },
  };
}

/**
 * How long the simulator takes to end a batch of `requests` requests under `config`, ms from
 * creation (validating + processing + finalizing), ignoring expiry: what a client planning
 * around this simulator can expect.
 */
export function batchTurnaroundMs(config: BatchApiConfig, requests: number): number {
  return (
    config.validatingMs + config.completionMs + requests * config.msPerRequest + config.finalizingMs
  );
}
