// The audit context: who a call was made for (claim, document, step...). It travels with the
// async call stack (AsyncLocalStorage), so concurrent callers never see each other's context and
// no client holds mutable per-call state.
import { AsyncLocalStorage } from "node:async_hooks";

/** Context fields recorded with every call and decision, e.g. `{claim_id, doc_id, step}`. */
export type AuditContext = Readonly<Record<string, unknown>>;

const EMPTY: AuditContext = Object.freeze({});
const storage = new AsyncLocalStorage<AuditContext>();

/**
 * Runs `fn` with `fields` merged over the current context (inner keys win). Everything `fn`
 * starts, synchronously or asynchronously, sees the merged context; the caller's is unchanged.
 */
export function withContext<T>(fields: Readonly<Record<string, unknown>>, fn: () => T): T {
  const merged = Object.freeze({ ...currentContext(), ...fields });
  return storage.run(merged, fn);
}

/** The context of the calling code: a frozen object, `{}` outside any `withContext`. */
export function currentContext(): AuditContext {
  return storage.getStore() ?? EMPTY;
}
