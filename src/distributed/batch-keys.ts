// Where a distributed batch lives in Redis, and what its coordinator tells its workers. One
// BullMQ queue per batch (its jobs are the batch's lines), a settings record the workers build
// their client from, the results hash (the batch's journal in Redis: a line's answer is written
// there before its job is acknowledged), an events stream (answers done, the workers' scheduler
// events, their admission figures), and a registry of the running batches that `salvo worker`s
// watch. Nothing here is secret: the API key stays in each worker's environment.
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { resolve } from "node:path";
import type { ProviderName } from "../providers/provider-from-env.ts";

/** The registry of running batches (ZSET id -> registration time) and its channel. */
export const BATCH_REGISTRY = "salvo:batches";
/** BullMQ's key prefix for the batch queues. */
export const QUEUE_PREFIX = "salvo";

/** A batch is its output file on its coordinator's host: a rerun there resumes the same batch. */
export function batchIdOf(output: string): string {
  return createHash("sha256")
    .update(`salvo-batch\0${hostname()}\0${resolve(output)}`)
    .digest("hex")
    .slice(0, 20);
}

export type BatchKeys = {
  /** The BullMQ queue's name (under QUEUE_PREFIX). */
  queue: string;
  /** JSON of the BatchSettings. */
  settings: string;
  /** HASH line index -> JSON {d: request digest, o: the line's ItemOutcome}. */
  results: string;
  /** STREAM of done notices, relayed scheduler events and admission figures. */
  events: string;
};

export function batchKeys(batchId: string): BatchKeys {
  const base = `salvo:batch:{${batchId}}:`;
  return {
    queue: `batch-${batchId}`,
    settings: `${base}settings`,
    results: `${base}results`,
    events: `${base}events`,
  };
}

/** The job id of a line: its index and request digest (an edited line is another job). */
export function jobIdOf(index: number, digest: string): string {
  return `line-${index}-${digest.slice(0, 16)}`;
}

/** What a worker needs to run a batch's lines: the upstream and the limits, no secret. */
export type BatchSettings = {
  version: 1;
  batchId: string;
  /** The API the lines are shaped for. */
  provider: ProviderName;
  /** The API base URL; undefined: the worker's OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the provider's. */
  baseUrl: string | undefined;
  /** The variable holding the API key in each worker's environment. @default the provider's */
  apiKeyEnv: string | undefined;
  /**
   * The coordinator's built-in simulator (`--sim`), reachable by workers on its host only, and
   * the fixed placeholder key it is called with (not a secret).
   */
  simulator: { baseUrl: string; origin: string; apiKey: string } | undefined;
  /** Names the shared budget; undefined: derived by each worker from provider, URL and key. */
  upstream: string | undefined;
  /** Shared calls in flight, or auto (one AIMD limit for all). */
  concurrency: number | "auto";
  maxConcurrency: number | undefined;
  /** The most calls one worker process has in flight (a small machine); undefined: the shared limit. */
  workerConcurrency: number | undefined;
  requestsPerMinute: number | undefined;
  tokensPerMinute: number | undefined;
  inputTokensPerMinute: number | undefined;
  outputTokensPerMinute: number | undefined;
  burstSeconds: number | undefined;
  /** Per attempt, ms; null for none (JSON has no Infinity). */
  timeoutMs: number | null;
  /** Per line across attempts, ms; null for none. */
  deadlineMs: number | null;
  maxAttempts: number | undefined;
  /** A shared lease outlives its holder's last renewal by this much, ms. */
  leaseTtlMs: number;
  /** A job's lock outlives its worker's last renewal by this much, ms (BullMQ `lockDuration`). */
  lockDurationMs: number;
  /** Times a line's job may be lost with its worker before the line fails (SALVO_WORKER_LOST). */
  maxStalledCount: number;
};

/** The job of one line: what to call, and the digest its answer is journaled under. */
export type LineJob = {
  /** The line's index in the input. */
  i: number;
  /** The request's digest, hex (`requestDigest`). */
  d: string;
  request: { path: string; body: Record<string, unknown> };
};
