// The run's status as fields, shared by the live bar (fitted to the terminal's width) and plain
// mode (every field): counts, in flight against the limit, rates, 429s, retries, elapsed, ETA.
import type { RunSnapshot } from "../metrics/run-metrics.ts";
import { type Field, REQUIRED, SEPARATOR } from "./fit-line.ts";
import { formatCount, formatDuration } from "./format.ts";

/**
 * In flight against the limit. After the limit is lowered (adaptive concurrency), the calls
 * already started run on, so in flight may be above the new limit for a while: that is said in
 * words, never as a fraction over 1.
 */
export function inFlightField(inFlight: number, limit: number, priority: number): Field {
  if (!Number.isFinite(limit)) return { text: `in flight ${inFlight}`, priority };
  if (inFlight <= limit) return { text: `in flight ${inFlight}/${limit}`, priority };
  return {
    text: `in flight ${inFlight} (limit lowered to ${limit})`,
    short: `in flight ${inFlight} (limit ${limit})`,
    priority,
    shortPriority: 55,
  };
}

/** The items done (succeeded, failed or resumed), out of the total or, unknown, those submitted. */
export function doneOf(s: RunSnapshot): number {
  return s.succeeded + s.failed + s.skipped;
}

export type StatusOptions = {
  /** A word after the counts (`done` in plain mode). */
  doneWord?: string | undefined;
  /** A note on the run's state (e.g. an interrupt), shown before everything optional. */
  note?: string | undefined;
};

/** The status fields, most important first in priority, in reading order. */
export function statusFields(s: RunSnapshot, options: StatusOptions = {}): Field[] {
  const total = s.total ?? s.submitted;
  // Without a total, more items may still come while any runs.
  const more = s.total === undefined && (doneOf(s) + s.stopped < s.submitted || s.inFlight > 0);
  const word = options.doneWord ? ` ${options.doneWord}` : "";
  const fields: Field[] = [
    { text: `${doneOf(s)}/${total}${more ? "+" : ""}${word}`, priority: REQUIRED },
    { text: `${s.failed} failed`, priority: REQUIRED },
  ];
  // Stopped by an interrupt or abort: not failures, and a resumed run runs them.
  if (s.stopped > 0) fields.push({ text: `${s.stopped} stopped`, priority: REQUIRED });
  if (options.note) fields.push({ text: options.note, priority: 95 });
  fields.push(
    inFlightField(s.inFlight, s.limit, 70),
    { text: `${formatCount(s.requestsPerMinute)} req/min`, priority: 30 },
    { text: `${formatCount(s.tokensPerMinute)} tok/min`, priority: 20 },
    { text: `429s ${s.rateLimited}`, priority: 60 },
    { text: `retries ${s.retries}`, priority: 50 },
    {
      text: `elapsed ${formatDuration(s.elapsedMs)}`,
      short: formatDuration(s.elapsedMs),
      priority: 10,
    },
  );
  if (s.etaMs !== undefined && s.etaMs > 0 && s.stopped === 0 && !options.note)
    fields.push({ text: `eta ${formatDuration(s.etaMs)}`, priority: 80 });
  if (s.paused)
    fields.push({
      text: `paused ${formatDuration(s.pausedForMs)} (rate limit)`,
      short: `paused ${formatDuration(s.pausedForMs)}`,
      priority: 85,
      shortPriority: 55,
    });
  // A retry waiting a noticeable time (a long backoff, the provider's Retry-After) is said, with
  // how long it still waits; the field goes when the wait ends.
  if (s.waitingToRetry > 0 && s.retryWaitMs >= 1000)
    fields.push({
      text: `${s.waitingToRetry} waiting to retry (up to ${formatDuration(s.retryWaitMs)})`,
      short: `retry wait ${formatDuration(s.retryWaitMs)}`,
      priority: 75,
      shortPriority: 45,
    });
  return fields;
}

/** Every field, for plain mode: one line in logs and CI. */
export function statusLine(s: RunSnapshot, options: StatusOptions = {}): string {
  return statusFields(s, { doneWord: "done", ...options })
    .map((f) => f.text)
    .join(SEPARATOR);
}
