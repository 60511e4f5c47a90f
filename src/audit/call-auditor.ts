// The hook the Salvo client calls for audit: once per submission, in the caller's async context
// (the scheduler later runs attempts from its own queue, where that context is gone), and once
// at the start and once at the end of every attempt.
import type { ItemId } from "../core/outcome.ts";
import type { ProviderRequest, ProviderResult } from "../providers/provider.ts";
import type { AuditContext } from "./audit-context.ts";

/** Which attempt of which item is starting. */
export type AttemptInfo = {
  /** The scheduler's item id (the caller's `id`, or a number in submission order). */
  id: ItemId;
  /** The input position for `map`/`stream`, else 0. */
  index: number;
  /** 1 for the first attempt, 2 for the first retry, ... */
  attempt: number;
  /** The provider's name: `openai`, `anthropic`, `custom`. */
  provider: string;
};

/** The end of one attempt. The client awaits it before it settles the attempt. */
export interface AttemptAudit {
  succeeded(result: ProviderResult): void | Promise<void>;
  failed(error: unknown): void | Promise<void>;
}

export interface CallAuditor {
  /**
   * Called synchronously by `call`/`settle`/`map`/`stream`, in the caller's async context:
   * returns the context every attempt of that submission is recorded with.
   */
  capture(): AuditContext;
  /** Called when an attempt starts, with what `capture` returned at submission. */
  attempt(captured: AuditContext, request: ProviderRequest, info: AttemptInfo): AttemptAudit;
}
