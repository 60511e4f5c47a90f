// The decision log: every decision a program takes (a claim approved, a payout computed) as a
// hash-chained `decision` record with the audit context it was taken in and references to the
// call records it relied on, so the chain commits to the evidence behind each decision.
//
// Several processes may append to one decision log: each writes its own segment of the file
// (see chain-log.ts); a segment is totally ordered, segments interleave by batch.
import type { AuditContext } from "./audit-context.ts";
import { currentContext } from "./audit-context.ts";
import type { CallRef } from "./call-log.ts";
import {
  type AppendResult,
  type ChainLog,
  type ChainLogOptions,
  openChainLog,
} from "./chain-log.ts";

export type DecisionLogOptions = Omit<ChainLogOptions, "kind">;

/** What a decision relied on. */
export type DecisionInputs = {
  /** The call records (from `callLog.refOf(result)`) the decision was based on. */
  calls?: ReadonlyArray<CallRef | undefined> | undefined;
  /** Who or what took it, e.g. `claims-assessor@1.4`. @default none */
  actor?: string | undefined;
};

/** Opens (or shares, within the process) the decision log at `path`. */
export async function openDecisionLog(
  path: string,
  options: DecisionLogOptions = {},
): Promise<DecisionLog> {
  return new DecisionLog(openChainLog(path, { ...options, kind: "decisions" }));
}

export class DecisionLog {
  readonly #chain: ChainLog;

  constructor(chain: ChainLog) {
    this.#chain = chain;
  }

  get chain(): ChainLog {
    return this.#chain;
  }

  /**
   * Appends `decision` (any canonical-JSON-able object) with the current audit context; resolves
   * with its place in the chain once written.
   */
  append(
    decision: Readonly<Record<string, unknown>>,
    inputs: DecisionInputs = {},
  ): Promise<AppendResult> {
    const context: AuditContext = currentContext();
    const calls = (inputs.calls ?? []).filter((ref): ref is CallRef => ref !== undefined);
    return this.#chain.append("decision", {
      context,
      decision,
      ...(inputs.actor === undefined ? {} : { actor: inputs.actor }),
      ...(calls.length > 0 ? { inputs: { llm_calls: calls } } : {}),
    });
  }

  checkpoint() {
    return this.#chain.checkpoint();
  }

  close(): Promise<void> {
    return this.#chain.close();
  }
}
