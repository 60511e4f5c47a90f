// An admission authority outside the scheduler, shared with other processes (the Redis one in
// src/distributed). The scheduler stays the authority of its own process (queue order, slots,
// local buckets, cooldown) and, given a gate, asks it for every attempt between its own admission
// and the attempt's start: the attempt holds its local slot while it waits, but its timeout, its
// `started` event and its latency count from the grant, so waiting for other processes' calls is
// never mistaken for a slow or timed-out call. When the attempt gives its slot back, the gate is
// told how it ended, to reconcile the shared state. Core code: the interface only, no I/O.

import type { AttemptResult } from "./concurrency/concurrency-controller.ts";
import type { Charge } from "./limits/limit.ts";
import type { ItemId } from "./outcome.ts";
import type { RateLimitSnapshot } from "./rate-limit-snapshot.ts";

export type GateRequest = {
  /** What the attempt reserves, per dimension (the local reservation's estimate). */
  readonly charge: Readonly<Charge>;
  readonly id: ItemId;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /**
   * Aborted when the attempt is stopped while it waits (its item's abort or deadline, `drain`,
   * `close`). The gate then gives back whatever it took and rejects with the signal's reason.
   */
  readonly signal: AbortSignal;
};

/** How an attempt the gate admitted ended: what a shared limiter reconciles with. */
export type GateReport = {
  /**
   * Whether the attempt started (its task ran). False when it was stopped between the grant and
   * its start: nothing was sent, the whole charge can be given back.
   */
  started: boolean;
  /**
   * `success`, a provider failure class (`rate_limit`, `overload`, `timeout`, ...), `task_error`,
   * or `cancelled` (aborted, or it never started).
   */
  result: AttemptResult;
  /** From the grant to the end of the attempt, ms. */
  latencyMs: number;
  /** The estimate the attempt was admitted with. */
  reserved: Charge;
  /** What it was charged after its real usage was reported; `reserved` when none was. */
  charged: Charge;
  /** Whether usage was reported (`charged` is then the provider's count, not an estimate). */
  usageReported: boolean;
  /** The provider's rate-limit readings of the attempt's response (or error), if any. */
  snapshot: RateLimitSnapshot | undefined;
  /** The provider's retry hint on a failure that carried one, ms. */
  retryAfterMs: number | undefined;
};

/** An attempt's admission by the gate; ended exactly once. */
export interface GatePass {
  /** Called once, when the attempt gives its slot back (its call has really ended). */
  end(report: GateReport): void;
}

export interface AdmissionGate {
  /**
   * Resolves when the attempt may start, with the pass the scheduler ends when the attempt ends.
   * Rejects with `signal.reason` if the signal aborts first (having given back what it took);
   * any other rejection fails the attempt with that error (e.g. `RequestTooLargeError`).
   */
  admit(request: GateRequest): Promise<GatePass>;
}
