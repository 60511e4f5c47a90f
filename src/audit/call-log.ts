// The call log: one hash-chained `llm_call` record per attempt, carrying the audit context of the
// code that submitted the call. It is the `CallAuditor` the Salvo client calls
// (`new Salvo({provider, audit: callLog})`), and `salvo verify` checks it like any chained log.
import { randomUUID } from "node:crypto";
import { ConfigError } from "../errors.ts";
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";
import { type AuditContext, currentContext } from "./audit-context.ts";
import type { AttemptAudit, AttemptInfo, CallAuditor } from "./call-auditor.ts";
import {
  applyContentMode,
  buildCallRecord,
  type CallRecord,
  type ContentMode,
  DEFAULT_HEADER_ALLOWLIST,
} from "./call-record.ts";
import {
  type AppendResult,
  type ChainLog,
  type ChainLogOptions,
  openChainLog,
} from "./chain-log.ts";

export type CallLogOptions = Omit<ChainLogOptions, "kind"> & {
  /** How request and response bodies are recorded: `full`, `hash` (SHA-256 only) or `none`. @default "hash" */
  content?: ContentMode | undefined;
  /**
   * Runs on every record, bodies included, before the content mode is applied and before
   * anything is hashed or written; returns the record to write (e.g. with PII masked).
   * @default none
   */
  redact?: ((record: CallRecord) => CallRecord) | undefined;
  /** Response headers recorded when present; credentials are refused even if listed. @default DEFAULT_HEADER_ALLOWLIST */
  headerAllowlist?: readonly string[] | undefined;
  /** The run id written in every record. @default a random UUID */
  runId?: string | undefined;
};

/** A reference to one call record, for a decision that relied on it. */
export type CallRef = { attempt_id: string; writer: string; seq: number; hash: string };

/** Opens (or shares, within the process) the call log at `path`. */
export async function openCallLog(path: string, options: CallLogOptions = {}): Promise<CallLog> {
  return new CallLog(path, options);
}

export class CallLog implements CallAuditor {
  readonly runId: string;
  readonly #chain: ChainLog;
  readonly #content: ContentMode;
  readonly #redact: ((record: CallRecord) => CallRecord) | undefined;
  readonly #headers: readonly string[];
  readonly #refs = new WeakMap<object, CallRef>();

  constructor(path: string, options: CallLogOptions = {}) {
    const content = options.content ?? "hash";
    if (!["full", "hash", "none"].includes(content)) {
      throw new ConfigError({
        field: "content",
        expected: "full, hash or none",
        got: content,
        where: path,
      });
    }
    this.#content = content;
    this.#redact = options.redact;
    this.#headers = options.headerAllowlist ?? DEFAULT_HEADER_ALLOWLIST;
    this.runId = options.runId ?? randomUUID();
    this.#chain = openChainLog(path, { ...options, kind: "calls" });
  }

  /** The underlying chain (path, segment id, size, head, checkpoint()). */
  get chain(): ChainLog {
    return this.#chain;
  }

  capture(): AuditContext {
    return currentContext();
  }

  attempt(captured: AuditContext, request: ProviderRequest, info: AttemptInfo): AttemptAudit {
    const startedAt = Date.now();
    const started = performance.now();
    const attemptId = randomUUID();
    const end = (result: ProviderResult | undefined, error: unknown) =>
      this.#write(
        buildCallRecord({
          runId: this.runId,
          id: info.id,
          attemptId,
          attempt: info.attempt,
          index: info.index,
          startedAt,
          endedAt: Date.now(),
          durationMs: performance.now() - started,
          context: captured,
          provider: info.provider,
          request,
          result,
          error,
          headerAllowlist: this.#headers,
        }),
        result,
      );
    return {
      succeeded: async (result) => {
        await end(result, undefined);
      },
      failed: async (error) => {
        await end(undefined, error);
      },
    };
  }

  /** The record of the attempt that produced `result` (a value a Salvo call resolved with). */
  refOf(result: ProviderResult): CallRef | undefined {
    return this.#refs.get(result);
  }

  /** Writes a checkpoint now (also written every `checkpointEvery` records and at close). */
  checkpoint() {
    return this.#chain.checkpoint();
  }

  close(): Promise<void> {
    return this.#chain.close();
  }

  #write(record: CallRecord, result: ProviderResult | undefined): Promise<AppendResult> {
    const redacted = this.#redact ? this.#redact(record) : record;
    const fields = applyContentMode(redacted, this.#content);
    let queued: ReturnType<ChainLog["enqueue"]>;
    try {
      queued = this.#chain.enqueue("llm_call", fields);
    } catch (error) {
      return Promise.reject(error);
    }
    if (result !== null && typeof result === "object") {
      const { writer, seq, hash } = queued;
      this.#refs.set(result, { attempt_id: fields.attempt_id, writer, seq, hash });
    }
    return queued.written;
  }
}
