// Every error Salvo raises or reports. One base class, each subclass with a literal `code` that
// never changes once released, a default message, and `cause` where one exists.
// A message says what went wrong, where (file:line, option, field) and what was expected.

import type { RateLimitSnapshot } from "./core/rate-limit-snapshot.ts";

export type ErrorOptions = { cause?: unknown };

export class SalvoError extends Error {
  readonly code: string = "SALVO_ERROR";
  constructor(message = "Salvo error", options?: ErrorOptions) {
    super(message, options);
    this.name = "SalvoError";
  }
}

/** Where a bad value came from: an option, a field of a file, a line of an input. */
export type ConfigErrorDetails = {
  /** The option or field path, e.g. `--rpm`, `faults.p500`, `line 12: body.model`. */
  field: string;
  /** What a valid value looks like, e.g. `an integer >= 1`. */
  expected: string;
  /** The value that was given (shown abbreviated; never a secret). */
  got?: unknown;
  /** The source: a file path with an optional line, or `command line`. */
  where?: string;
};

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  let text: string;
  try {
    text =
      typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    // A cycle or a value too deep to serialise (String() of a deep array recurses too).
    text = Array.isArray(value) ? "an array" : typeof value;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A setting, option or input value that is not valid. */
export class ConfigError extends SalvoError {
  override readonly code = "SALVO_CONFIG_INVALID";
  readonly field: string;
  readonly expected: string;
  readonly got: unknown;
  readonly where: string | undefined;
  constructor(details: ConfigErrorDetails, options?: ErrorOptions) {
    const place = details.where ? `${details.where}: ` : "";
    super(
      `${place}${details.field}: expected ${details.expected}, got ${show(details.got)}`,
      options,
    );
    this.name = "ConfigError";
    this.field = details.field;
    this.expected = details.expected;
    this.got = details.got;
    this.where = details.where;
  }
}

/** How a failed attempt is classed; drives retries, cooldowns and adaptive concurrency. */
export type FailureClass =
  | "rate_limit"
  | "quota"
  | "overload"
  | "server"
  | "client"
  | "network"
  | "timeout"
  | "invalid_response";

export type ProviderErrorDetails = {
  /** The HTTP status, when there was a response. */
  status?: number | undefined;
  /** The provider's own error code or type, e.g. `insufficient_quota`, `overloaded_error`. */
  providerCode?: string | undefined;
  /** How long the provider asked us to wait before retrying, in milliseconds. */
  retryAfterMs?: number | undefined;
  /** The provider's `x-should-retry` header, when present. */
  shouldRetry?: boolean | undefined;
  /** The provider's request id, for support tickets. */
  requestId?: string | undefined;
  /** Which provider adapter saw it: `openai`, `anthropic`, `custom`. */
  provider?: string | undefined;
  /** The rate-limit headers of the failed response, normalised. */
  rateLimits?: RateLimitSnapshot | undefined;
};

/** A failed call to a provider. Subclasses fix the `code` and the failure class. */
export class ProviderError extends SalvoError {
  override readonly code: string = "SALVO_PROVIDER_ERROR";
  readonly failureClass: FailureClass = "server";
  readonly status: number | undefined;
  readonly providerCode: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly shouldRetry: boolean | undefined;
  readonly requestId: string | undefined;
  readonly provider: string | undefined;
  readonly rateLimits: RateLimitSnapshot | undefined;
  constructor(message: string, details: ProviderErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProviderError";
    this.status = details.status;
    this.providerCode = details.providerCode;
    this.retryAfterMs = details.retryAfterMs;
    this.shouldRetry = details.shouldRetry;
    this.requestId = details.requestId;
    this.provider = details.provider;
    this.rateLimits = details.rateLimits;
  }
}

/** 429: a temporary rate limit. Retried after the provider's hint; pauses the key. */
export class RateLimitError extends ProviderError {
  override readonly code = "SALVO_RATE_LIMITED";
  override readonly failureClass = "rate_limit";
  constructor(
    message = "rate limited by the provider (429)",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "RateLimitError";
  }
}

/** 429 `insufficient_quota` or a spend limit: waiting will not help; never retried. */
export class QuotaExceededError extends ProviderError {
  override readonly code = "SALVO_QUOTA_EXCEEDED";
  override readonly failureClass = "quota";
  constructor(
    message = "the provider's quota or spend limit is exhausted",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "QuotaExceededError";
  }
}

/** 529 `overloaded_error`, or 503: the server is congested. Retried; lowers adaptive concurrency. */
export class OverloadedError extends ProviderError {
  override readonly code = "SALVO_OVERLOADED";
  override readonly failureClass = "overload";
  constructor(
    message = "the provider is overloaded",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "OverloadedError";
  }
}

/** Another 5xx. Retried. */
export class ServerError extends ProviderError {
  override readonly code = "SALVO_SERVER_ERROR";
  override readonly failureClass = "server";
  constructor(
    message = "the provider answered with a server error",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "ServerError";
  }
}

/** A 4xx other than 429 (400, 401, 403, 404, 413, ...). Not retried, except 408 and 409. */
export class ClientError extends ProviderError {
  override readonly code = "SALVO_CLIENT_ERROR";
  override readonly failureClass = "client";
  constructor(
    message = "the provider rejected the request",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "ClientError";
  }
}

/** The connection failed or was reset before a complete answer arrived. Retried. */
export class NetworkError extends ProviderError {
  override readonly code = "SALVO_NETWORK_ERROR";
  override readonly failureClass = "network";
  constructor(
    message = "network error talking to the provider",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "NetworkError";
  }
}

/** A 2xx answer whose body could not be parsed or lacks required fields. Retried. */
export class InvalidResponseError extends ProviderError {
  override readonly code = "SALVO_INVALID_RESPONSE";
  override readonly failureClass = "invalid_response";
  constructor(
    message = "the provider's answer was malformed",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "InvalidResponseError";
  }
}

/** One attempt took longer than its timeout; the attempt was aborted. Retried. */
export class TimeoutError extends ProviderError {
  override readonly code = "SALVO_TIMEOUT";
  override readonly failureClass = "timeout";
  constructor(
    message = "the attempt timed out",
    details?: ProviderErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, details, options);
    this.name = "TimeoutError";
  }
}

// --- Scheduler errors. Raised by `src/core`, never by a provider. ---

/** The caller's AbortSignal fired (or a stream was closed early); the item was settled at once. */
export class AbortedError extends SalvoError {
  override readonly code = "SALVO_ABORTED";
  constructor(message = "the operation was aborted", options?: ErrorOptions) {
    super(message, options);
    this.name = "AbortedError";
  }
}

/** The item's total deadline (across all attempts and waits) passed; `cause` is the last error. */
export class DeadlineExceededError extends SalvoError {
  override readonly code = "SALVO_DEADLINE_EXCEEDED";
  /** The deadline that passed, in milliseconds from submission. */
  readonly deadlineMs: number | undefined;
  constructor(
    message = "the deadline was exceeded",
    details: { deadlineMs?: number | undefined } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DeadlineExceededError";
    this.deadlineMs = details.deadlineMs;
  }
}

/**
 * The provider asked to wait longer before a retry (its Retry-After) than the scheduler's
 * `maxRetryAfterMs`: the item failed at once instead of sleeping. `cause` is the provider's error.
 */
export class RetryAfterTooLongError extends SalvoError {
  override readonly code = "SALVO_RETRY_AFTER_TOO_LONG";
  /** The provider's hint, ms. */
  readonly retryAfterMs: number | undefined;
  /** The longest wait allowed, ms. */
  readonly maxRetryAfterMs: number | undefined;
  constructor(
    details: { retryAfterMs?: number | undefined; maxRetryAfterMs?: number | undefined } = {},
    options?: ErrorOptions,
  ) {
    const { retryAfterMs, maxRetryAfterMs } = details;
    super(
      retryAfterMs === undefined
        ? "the provider asked to wait longer before a retry than allowed"
        : `the provider asked to wait ${seconds(retryAfterMs)} before a retry (Retry-After), longer than the ${maxRetryAfterMs === undefined ? "allowed wait" : `${seconds(maxRetryAfterMs)} allowed (maxRetryAfterMs)`}: not retried`,
      options,
    );
    this.name = "RetryAfterTooLongError";
    this.retryAfterMs = retryAfterMs;
    this.maxRetryAfterMs = maxRetryAfterMs;
  }
}

/** A duration for a message: "3600 s", "1.5 s". */
function seconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** Which rate-limit bucket a cost is charged to. */
export type RateDimension = "requests" | "tokens" | "inputTokens" | "outputTokens";

/**
 * A request whose estimated cost exceeds a whole per-minute limit: it can never be admitted, so
 * it is rejected at once instead of stalling the queue behind it.
 */
export class RequestTooLargeError extends SalvoError {
  override readonly code = "SALVO_REQUEST_TOO_LARGE";
  readonly dimension: RateDimension | undefined;
  /** The per-minute limit of that dimension. */
  readonly limit: number | undefined;
  /** The request's cost in that dimension. */
  readonly cost: number | undefined;
  constructor(
    details: { dimension?: RateDimension; limit?: number; cost?: number } = {},
    options?: ErrorOptions,
  ) {
    super(
      details.dimension === undefined
        ? "the request is larger than a rate limit allows"
        : `the request costs ${details.cost} ${details.dimension} but the limit is ${details.limit} per minute`,
      options,
    );
    this.name = "RequestTooLargeError";
    this.dimension = details.dimension;
    this.limit = details.limit;
    this.cost = details.cost;
  }
}

/**
 * Salvo would not send the request as it is (e.g. JSON nested deeper than MAX_JSON_DEPTH, which
 * the serialisers on the path could not handle): nothing was sent, and it is not retried.
 */
export class RequestInvalidError extends SalvoError {
  override readonly code = "SALVO_REQUEST_INVALID";
  constructor(message = "the request cannot be sent as it is", options?: ErrorOptions) {
    super(message, options);
    this.name = "RequestInvalidError";
  }
}

/** The scheduler was closed: queued and waiting items are settled with this; new work is refused. */
export class SchedulerClosedError extends SalvoError {
  override readonly code = "SALVO_CLOSED";
  constructor(message = "the scheduler is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "SchedulerClosedError";
  }
}

// --- Audit errors. Raised by `src/audit`. ---

/**
 * A call's `keep` (see `SalvoCallOptions.keep`) rejected: the provider answered, and writing the
 * answer down failed. Not retried (the answer was paid for; asking again would pay twice).
 */
export class KeepFailedError extends SalvoError {
  override readonly code = "SALVO_KEEP_FAILED";
  constructor(message = "keeping the answer failed", options?: ErrorOptions) {
    super(message, options);
    this.name = "KeepFailedError";
  }
}

/**
 * Writing or syncing an audit file failed (EIO, ENOSPC, EBADF, ...). Fatal for that file: after a
 * failed write or fsync the kernel may have dropped the data, so no later append is accepted and
 * every pending append rejects with this error.
 */
export class AuditWriteError extends SalvoError {
  override readonly code = "SALVO_AUDIT_WRITE_FAILED";
  /** The audit file. */
  readonly path: string | undefined;
  constructor(
    message = "writing the audit log failed",
    details: { path?: string | undefined } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "AuditWriteError";
    this.path = details.path;
  }
}

/** An append to an audit log that has been closed. */
export class AuditClosedError extends SalvoError {
  override readonly code = "SALVO_AUDIT_CLOSED";
  constructor(message = "the audit log is closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "AuditClosedError";
  }
}

/**
 * A record that cannot be chained: not canonical-JSON-able (NaN, Infinity, BigInt, a lone
 * surrogate, a cycle) or using a field name the chain reserves (`type`, `writer`, `seq`, ...).
 */
export class AuditRecordError extends SalvoError {
  override readonly code = "SALVO_AUDIT_RECORD_INVALID";
  constructor(message = "the audit record is not valid", options?: ErrorOptions) {
    super(message, options);
    this.name = "AuditRecordError";
  }
}

// --- batch input files ---

/** Where and why one input line is not a valid request. */
export type InputLineErrorDetails = {
  /** The input file's path, as given. */
  file: string;
  /** The 1-based line of the file. */
  line: number;
  /** The field at fault, e.g. `body.messages`, `params.max_tokens`, `custom_id`; `JSON` for a parse error. */
  field: string;
  /** What a valid value looks like, e.g. `a non-empty array`. */
  expected: string;
  /** The value that was found (abbreviated in the message). */
  got?: unknown;
  /** Shown instead of `got` when the problem is not a value, e.g. the JSON parser's message. */
  gotText?: string;
};

/**
 * One line of a batch input file is not a valid request. Message shape:
 * `<file>:<line>: <field>: expected <expected>, got <got>`. In a run, it becomes that item's
 * output line (`error.code` = `SALVO_INPUT_INVALID`) instead of stopping the run, unless `strict`.
 */
export class InputLineError extends SalvoError {
  override readonly code = "SALVO_INPUT_INVALID";
  readonly file: string;
  readonly line: number;
  readonly field: string;
  readonly expected: string;
  readonly got: unknown;
  constructor(details: InputLineErrorDetails) {
    super(
      `${details.file}:${details.line}: ${details.field}: expected ${details.expected}, got ${
        details.gotText ?? show(details.got)
      }`,
    );
    this.name = "InputLineError";
    this.file = details.file;
    this.line = details.line;
    this.field = details.field;
    this.expected = details.expected;
    this.got = details.got;
  }
}

/** Two input lines with the same `custom_id`. */
export type DuplicateId = {
  customId: string;
  /** The 1-based line where the id first appeared. */
  firstLine: number;
  /** The 1-based line that repeats it. */
  line: number;
};

/**
 * The input file was refused before any call was made: duplicate `custom_id`s (always), or invalid
 * lines under `strict`. `errors` holds the first few problems; `errorCount` counts them all.
 */
export class InputRejectedError extends SalvoError {
  override readonly code = "SALVO_INPUT_REJECTED";
  readonly file: string;
  /** The first invalid lines (at most `maxErrors` of the scan), in file order. */
  readonly errors: readonly InputLineError[];
  /** How many lines are invalid in all. */
  readonly errorCount: number;
  /** Every repeated `custom_id`, with both lines. */
  readonly duplicates: readonly DuplicateId[];
  constructor(details: {
    file: string;
    errors: readonly InputLineError[];
    errorCount: number;
    duplicates: readonly DuplicateId[];
  }) {
    const parts: string[] = [];
    if (details.errorCount > 0) {
      const more = details.errorCount - details.errors.length;
      parts.push(
        `${details.errorCount} invalid line${details.errorCount === 1 ? "" : "s"}:`,
        ...details.errors.map((e) => `  ${e.message}`),
      );
      if (more > 0) parts.push(`  ... and ${more} more`);
    }
    if (details.duplicates.length > 0) {
      parts.push(
        `${details.duplicates.length} duplicate custom_id${details.duplicates.length === 1 ? "" : "s"}:`,
        ...details.duplicates
          .slice(0, 20)
          .map(
            (d) =>
              `  ${details.file}:${d.line}: custom_id ${JSON.stringify(d.customId)} already used at line ${d.firstLine}`,
          ),
      );
      if (details.duplicates.length > 20)
        parts.push(`  ... and ${details.duplicates.length - 20} more`);
    }
    super(`${details.file} was refused; no call was made.\n${parts.join("\n")}`);
    this.name = "InputRejectedError";
    this.file = details.file;
    this.errors = details.errors;
    this.errorCount = details.errorCount;
    this.duplicates = details.duplicates;
  }
}

/**
 * An existing output or journal cannot be resumed: it was written for another input or other
 * options, or it is corrupt. Nothing was called or changed; `--fresh` starts over.
 */
export class ResumeRefusedError extends SalvoError {
  override readonly code = "SALVO_RESUME_REFUSED";
  /** The file that could not be resumed (the output or its journal). */
  readonly file: string;
  constructor(file: string, reason: string) {
    super(
      `cannot resume ${file}: ${reason}. Rerun with --fresh to start over (this deletes the output and its journal), or choose another --output.`,
    );
    this.name = "ResumeRefusedError";
    this.file = file;
  }
}

/** Who holds a run's lock: what a refused second run names. */
export type LockHolder = {
  /** The holder's process id, on its host. */
  pid: number;
  /** The holder's host name. */
  host: string;
  /** When it took the lock, ISO 8601. */
  since: string;
};

/**
 * Another run holds the output (or the pipeline's run directory): two runs on one output would
 * interleave their lines and pay for every item twice. Nothing was called or changed. The lock
 * goes with its holder (a killed holder's lock is taken over at once on its own host).
 */
export class RunLockedError extends SalvoError {
  override readonly code = "SALVO_LOCKED";
  /** The output or run directory that is busy. */
  readonly target: string;
  /** The lock file. */
  readonly lockFile: string;
  readonly holder: LockHolder;
  constructor(target: string, lockFile: string, holder: LockHolder, options?: ErrorOptions) {
    super(
      `${target} is in use by another salvo run: pid ${holder.pid} on host ${holder.host}, since ${holder.since} (lock file ${lockFile}). Wait for that run to end or stop it; nothing was called or changed. If it is not running (it ran on another host, or it is a stale copy), delete the lock file.`,
      options,
    );
    this.name = "RunLockedError";
    this.target = target;
    this.lockFile = lockFile;
    this.holder = holder;
  }
}

// --- pipelines. Raised by `src/pipeline`. ---

/**
 * A run directory cannot be used for this run: it was created for another pipeline definition or
 * input (their hashes are in its `metadata.json`), it is not a Salvo run directory, or its
 * journal is corrupt. Nothing was called or changed; `--fresh` starts over.
 */
export class RunDirRefusedError extends SalvoError {
  override readonly code = "SALVO_RUN_DIR_REFUSED";
  /** The run directory. */
  readonly dir: string;
  constructor(dir: string, reason: string) {
    super(
      `cannot use run directory ${dir}: ${reason}. Rerun with --fresh to start over (this deletes the run's files in it), or choose another --run-dir.`,
    );
    this.name = "RunDirRefusedError";
    this.dir = dir;
  }
}

/** A pipeline task was skipped: a task it depends on has no result, and that stage skips dependants. */
export class DependencyFailedError extends SalvoError {
  override readonly code = "SALVO_DEPENDENCY_FAILED";
  /** The skipped task, `stage/key`. */
  readonly task: string;
  /** The dependency without a result, `stage/key`. */
  readonly dependency: string;
  constructor(task: string, dependency: string, dependencyCode: string, options?: ErrorOptions) {
    super(
      `${task} was skipped: its input ${dependency} has no result (${dependencyCode}) and stage ${dependency.split("/")[0]} skips the dependants of a failed task (onFailure: skip)`,
      options,
    );
    this.name = "DependencyFailedError";
    this.task = task;
    this.dependency = dependency;
  }
}

/** A pipeline task was cancelled because the run stopped: a task failed in a stage with `onFailure: fail`. */
export class PipelineStoppedError extends SalvoError {
  override readonly code = "SALVO_PIPELINE_STOPPED";
  /** The task whose failure stopped the run, `stage/key`. */
  readonly failedTask: string;
  constructor(failedTask: string, options?: ErrorOptions) {
    super(
      `the pipeline run stopped because ${failedTask} failed and its stage fails the run (onFailure: fail)`,
      options,
    );
    this.name = "PipelineStoppedError";
    this.failedTask = failedTask;
  }
}

/** A pipeline task's own code (its request builder, `run`, `parse` or `context`) threw; `cause` is what it threw. */
export class TaskFailedError extends SalvoError {
  override readonly code = "SALVO_TASK_FAILED";
  /** The task, `stage/key`. */
  readonly task: string;
  constructor(task: string, step: string, options?: ErrorOptions) {
    const cause = options?.cause;
    super(
      `${task}: its ${step} threw: ${cause instanceof Error ? cause.message : String(cause)}`,
      options,
    );
    this.name = "TaskFailedError";
    this.task = task;
  }
}

// --- Budgets, prices and the response cache. Raised by `src/cost` and `src/cache`. ---

/** Which budget a call would exceed: `--max-cost` (USD) or `--max-tokens-total` (tokens). */
export type BudgetDimension = "cost" | "tokens";

/**
 * Admitting the call would take the run past its budget, so it was not made. Once one call is
 * refused the budget is exhausted: every later call is refused too, while calls in flight
 * finish. In a batch the item's line carries this code and a rerun (with a raised budget) runs
 * it; nothing was spent on it.
 */
export class BudgetExceededError extends SalvoError {
  override readonly code = "SALVO_BUDGET_EXCEEDED";
  readonly dimension: BudgetDimension | undefined;
  /** The budget, in USD or tokens. */
  readonly limit: number | undefined;
  /** What had been spent when the call was refused. */
  readonly spent: number | undefined;
  /** The refused call's estimate (its upper bound). */
  readonly cost: number | undefined;
  constructor(
    details: { dimension?: BudgetDimension; limit?: number; spent?: number; cost?: number } = {},
    options?: ErrorOptions,
  ) {
    const { dimension, limit, spent, cost } = details;
    const amount = (n: number | undefined) =>
      n === undefined ? "?" : dimension === "cost" ? `$${n.toFixed(6)}` : `${Math.round(n)} tokens`;
    super(
      dimension === undefined
        ? "the run's budget is exhausted: the call was not made"
        : `the ${dimension === "cost" ? "--max-cost" : "--max-tokens-total"} budget of ${amount(limit)} is exhausted: ${amount(spent)} spent, and this call may take up to ${amount(cost)}; it was not made (rerun with a larger budget to run it)`,
      options,
    );
    this.name = "BudgetExceededError";
    this.dimension = dimension;
    this.limit = limit;
    this.spent = spent;
    this.cost = cost;
  }
}

/**
 * A cost budget is set but the request's model has no known price, so its cost cannot be kept
 * within the budget. Add the model under `pricing:` in the config file.
 */
export class PriceUnknownError extends SalvoError {
  override readonly code = "SALVO_PRICE_UNKNOWN";
  /** The model without a price. */
  readonly model: string | undefined;
  constructor(model?: string, options?: ErrorOptions) {
    super(
      `no price is known for model ${JSON.stringify(model ?? null)}, so --max-cost cannot bound its cost: add it under pricing: {${model ?? "MODEL"}: {input, output}} (USD per million tokens) in the config file`,
      options,
    );
    this.name = "PriceUnknownError";
    this.model = model;
  }
}

/**
 * The response cache directory cannot be used (not creatable, not writable, not a cache), or a
 * cache operation failed for another reason than a missing or corrupt entry.
 */
export class CacheError extends SalvoError {
  override readonly code = "SALVO_CACHE_FAILED";
  /** The cache directory. */
  readonly dir: string | undefined;
  constructor(
    message = "the response cache failed",
    details: { dir?: string | undefined } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CacheError";
    this.dir = details.dir;
  }
}

// --- The providers' batch APIs as a backend of `salvo run`. Raised by `src/batch`. ---

/** Why a provider's batch API did not run a line. */
export type BatchNotRunReason = "expired" | "cancelled" | "failed";

/**
 * The provider's batch API never ran this line (its batch expired or was cancelled first, or the
 * whole batch was refused), and the run deadline (`--run-deadline`) had passed, so it was not run
 * in real time either. Nothing was paid for it; a rerun runs it.
 */
export class BatchLineNotRunError extends SalvoError {
  override readonly code = "SALVO_BATCH_NOT_RUN";
  readonly reason: BatchNotRunReason | undefined;
  /** The provider's batch id. */
  readonly batchId: string | undefined;
  constructor(
    details: { reason?: BatchNotRunReason; batchId?: string; detail?: string } = {},
    options?: ErrorOptions,
  ) {
    const { reason, batchId, detail } = details;
    const why =
      reason === "expired"
        ? "expired before it ran this line"
        : reason === "cancelled"
          ? "was cancelled before it ran this line"
          : reason === "failed"
            ? `was refused by the provider${detail ? ` (${detail})` : ""}`
            : "did not run this line";
    super(
      `the provider's batch${batchId ? ` ${batchId}` : ""} ${why}, and the run deadline had passed, so it was not run in real time; nothing was paid for it (rerun to run it)`,
      options,
    );
    this.name = "BatchLineNotRunError";
    this.reason = reason;
    this.batchId = batchId;
  }
}

/**
 * A call to a provider's batch API (upload, create, retrieve, results, cancel) failed in a way
 * that waiting does not fix (a refused key, a batch the provider does not know): the batch
 * backend stops. The batches it submitted are kept in its state file; a rerun re-attaches.
 */
export class BatchApiError extends SalvoError {
  override readonly code = "SALVO_BATCH_API_FAILED";
  /** `openai` or `anthropic`. */
  readonly provider: string | undefined;
  /** What was being done: `upload`, `create`, `retrieve`, `results`, `cancel`, `find`. */
  readonly operation: string | undefined;
  /** The HTTP status, when there was an answer. */
  readonly status: number | undefined;
  constructor(
    message = "a call to the provider's batch API failed",
    details: { provider?: string; operation?: string; status?: number | undefined } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "BatchApiError";
    this.provider = details.provider;
    this.operation = details.operation;
    this.status = details.status;
  }
}

/**
 * Redis (the shared state of `--redis`) cannot be reached, or answered with an error, when a run,
 * a worker or a gateway starts. Mid-run an outage is not an error: admission pauses until Redis
 * returns. The URL in the message never shows a password.
 */
export class RedisUnavailableError extends SalvoError {
  override readonly code = "SALVO_REDIS_UNAVAILABLE";
  /** The Redis URL, its password replaced by `***`. */
  readonly url: string | undefined;
  constructor(
    message = "Redis is unavailable",
    details: { url?: string | undefined } = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RedisUnavailableError";
    this.url = details.url;
  }
}

/**
 * A distributed batch's line whose job was lost by its workers more times than allowed (each
 * worker died, or lost its lock, while calling): the line ends with this error instead of
 * being retried forever. A rerun runs it again.
 */
export class WorkerLostError extends SalvoError {
  override readonly code = "SALVO_WORKER_LOST";
  constructor(message = "the line's workers were lost while calling", options?: ErrorOptions) {
    super(message, options);
    this.name = "WorkerLostError";
  }
}
