// How one task of a pipeline run ended: what its output file holds, what the journal keeps of a
// succeeded task, and what the report is built from.
import type { ContextReport } from "./context-budget.ts";

/**
 * `succeeded`: it has a value. `failed`: it ran and failed (it may carry a `fallback`).
 * `skipped`: a dependency had no result and its stage skips dependants. `cancelled`: the run
 * stopped (interrupted, or `onFailure: fail`) before it ended; a rerun runs it.
 */
export type TaskStatus = "succeeded" | "failed" | "skipped" | "cancelled";

/**
 * `succeeded`: every task succeeded. `partial`: every task ended, some without a result.
 * `failed`: a task failed in a stage with `onFailure: fail`. `interrupted`: the run was stopped
 * by its signal; a rerun resumes it.
 */
export type RunStatus = "succeeded" | "partial" | "failed" | "interrupted";

export type TaskRecord = {
  /** `stage/key`. */
  task: string;
  stage: string;
  key: string;
  status: TaskStatus;
  /** Taken from the run directory's journal: an earlier run produced it, no call was made now. */
  reused: boolean;
  /** The task's value (succeeded). */
  value?: unknown;
  /** The answer's text, when the value is something else (a `parse` made it). */
  text?: string;
  /** The value dependants got instead, for a failed task with a fallback. */
  fallback?: unknown;
  /** Why it failed, was skipped or cancelled: the error's stable code and message. */
  error?: { code: string; message: string };
  /** It ran although some of its inputs had no result (their stage continues on failure). */
  partial: boolean;
  /** Its inputs without a result. */
  missing: string[];
  /** Attempts started (0 if it never started). */
  attempts: number;
  /** The named client it went through (`TaskSettings.client`); absent for the default client. */
  client?: string;
  /** Tokens the provider reported (LLM tasks). */
  usage?: { inputTokens: number; outputTokens: number };
  /** Estimated prompt tokens of its request (o200k), LLM tasks. */
  promptTokens?: number;
  /** `max_tokens` of its request, LLM tasks. */
  maxTokens?: number;
  /** The answer stopped at `max_tokens`. */
  truncatedAnswer?: boolean;
  /** What its context assembly kept and dropped. */
  context?: ContextReport;
  /** When it became ready, started (its first attempt) and ended, ms since the run started. */
  readyAtMs?: number;
  startedAtMs?: number;
  endedAtMs?: number;
  /** From ready to its first attempt, ms. */
  waitMs?: number;
  /** From its first attempt to its end (retries included), ms. */
  latencyMs?: number;
};

/** The error of a record, from anything thrown. */
export function errorInfo(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown } | undefined)?.code;
  return {
    code: typeof code === "string" ? code : "SALVO_TASK_FAILED",
    message: error instanceof Error ? error.message : String(error),
  };
}
