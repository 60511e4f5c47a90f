// Downloads an ended provider batch's results into the results file: each of its items once
// (found by the custom_id `i<index>` it was submitted with), in 500-record fsynced appends, so a
// crash mid-download keeps what was appended and a retry (or a rerun) fetches only the rest. An
// item the results do not mention did not run.
import type { Spend } from "../cost/budget.ts";
import type { ResultSpool, SpooledResult } from "./batch-results.ts";
import type { ProviderBatchClient } from "./provider-batch-client.ts";

export type DownloadOptions = {
  client: Pick<ProviderBatchClient, "results">;
  batchId: string;
  /** The batch's items whose results are not in the results file yet; emptied as they arrive. */
  pending: Set<number>;
  spool: ResultSpool;
  /** How the provider ended the batch, and why it failed (if it did). */
  outcome: "completed" | "expired" | "cancelled" | "failed";
  failure: string | undefined;
  /** Runs the download, retrying it on failures that waiting fixes (the backend's policy). */
  call: (operation: string, run: (signal: AbortSignal) => Promise<void>) => Promise<void>;
  /** What an answer's body cost, at the batch price, for the budget. */
  spendOf: (body: unknown) => Spend;
};

export type Downloaded = {
  answered: number;
  errored: number;
  notRun: number;
  /** What the answered items cost, at the batch price. */
  spent: Spend;
};

const FLUSH_EVERY = 500;

/** The item a batch result answers: the custom_id it was submitted with is `i<index>`. */
export function indexOfCustomId(customId: string): number {
  return /^i\d+$/.test(customId) ? Number(customId.slice(1)) : Number.NaN;
}

export async function downloadBatch(o: DownloadOptions): Promise<Downloaded> {
  const { pending, spool, batchId } = o;
  const done: Downloaded = { answered: 0, errored: 0, notRun: 0, spent: { usd: 0, tokens: 0 } };
  let buffer: SpooledResult[] = [];
  let buffered = new Set<number>();
  const flush = async () => {
    await spool.append(buffer);
    for (const result of buffer) {
      pending.delete(result.i);
      const response = result.response;
      if (response && response.status < 300) {
        done.answered += 1;
        const spend = o.spendOf(response.body);
        done.spent = {
          usd: done.spent.usd + spend.usd,
          tokens: done.spent.tokens + spend.tokens,
        };
      } else if (response) done.errored += 1;
      else done.notRun += 1;
    }
    buffer = [];
    buffered = new Set();
  };
  await o.call("results", async (signal) => {
    // A retried download starts again; what was appended stays appended.
    buffer = [];
    buffered = new Set();
    for await (const result of o.client.results(batchId, signal)) {
      const index = indexOfCustomId(result.customId);
      if (!pending.has(index) || buffered.has(index)) continue; // not ours, or seen already
      buffered.add(index);
      buffer.push({
        i: index,
        batch: batchId,
        ...(result.response
          ? {
              response: {
                status: result.response.status,
                body: result.response.body,
                request_id: result.response.requestId ?? null,
              },
            }
          : { not_run: result.notRun ?? "failed", message: result.message ?? o.failure }),
      });
      if (buffer.length >= FLUSH_EVERY) await flush();
    }
    await flush();
  });
  for (const i of pending)
    buffer.push({
      i,
      batch: batchId,
      not_run: o.outcome === "failed" ? "failed" : "missing",
      message: o.failure,
    });
  await flush();
  return done;
}
