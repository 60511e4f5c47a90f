// A stream handed to its caller while the attempt that produced it still holds its slot: the
// caller reads it as it was; the attempt ends (and frees the slot) only when the caller has read
// it to the end, cancelled it, or the attempt's signal aborts it (its timeout, the caller's own
// abort), so a stream nobody reads holds its slot no longer than the attempt's timeout.

import { AbortedError } from "../errors.ts";

/** How the held stream ended. */
export type HeldEnd =
  | { kind: "done" }
  | { kind: "error"; error: unknown }
  | { kind: "cancelled"; error: AbortedError }
  | { kind: "aborted"; reason: unknown };

export type HeldStream<T> = {
  /** The stream to give the caller: the source's chunks, unchanged. */
  stream: ReadableStream<T>;
  /** Resolves once, when the stream has ended in one of the four ways. */
  ended: Promise<HeldEnd>;
};

/**
 * Passes `source` through, calling `see` with each chunk before the caller gets it and `finish`
 * once the source is exhausted (before the caller sees its end).
 */
export function holdStream<T>(
  source: ReadableStream<T>,
  signal: AbortSignal,
  see: (chunk: T) => void,
  finish: () => void = () => {},
): HeldStream<T> {
  const reader = source.getReader();
  let settle!: (end: HeldEnd) => void;
  const ended = new Promise<HeldEnd>((resolve) => {
    settle = resolve;
  });
  let over = false;
  let controller: ReadableStreamDefaultController<T> | undefined;
  const end = (how: HeldEnd) => {
    if (over) return;
    over = true;
    signal.removeEventListener("abort", onAbort);
    settle(how);
  };
  const onAbort = () => {
    const reason: unknown = signal.reason;
    if (!over) controller?.error(reason);
    reader.cancel(reason).catch(() => {});
    end({ kind: "aborted", reason });
  };
  const stream = new ReadableStream<T>({
    start(c) {
      controller = c;
    },
    async pull(c) {
      let read: Awaited<ReturnType<typeof reader.read>>;
      try {
        read = await reader.read();
      } catch (error) {
        if (!over) c.error(error);
        end(signal.aborted ? { kind: "aborted", reason: signal.reason } : { kind: "error", error });
        return;
      }
      if (over) return;
      if (read.done) {
        finish();
        c.close();
        end({ kind: "done" });
        return;
      }
      see(read.value);
      c.enqueue(read.value);
    },
    cancel(reason) {
      end({
        kind: "cancelled",
        error: new AbortedError("the caller cancelled the stream before its end", {
          cause: reason,
        }),
      });
      return reader.cancel(reason).catch(() => {});
    },
  });
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return { stream, ended };
}
