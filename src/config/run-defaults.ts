// The defaults of `salvo run`'s settings (and of the commands that share them), in one place: the
// settings resolver applies them, and the commands' --help shows them.

export const RUN_DEFAULTS = {
  concurrency: "auto",
  maxConcurrency: undefined,
  burstSeconds: 1,
  maxAttempts: 5,
  timeoutMs: 120_000,
  maxRetryAfterMs: 120_000,
  deadlineMs: Number.POSITIVE_INFINITY,
  progress: "auto",
  fresh: false,
  retryFailed: false,
  strict: false,
  graceMs: 30_000,
  auditContent: "hash",
} as const;
