// The batch backend's state file, `<output>.batches.json`: which items went to which provider
// batch, and how far each batch got. It is replaced atomically (temp file, fsync, rename) at every
// step, so a crash at any moment leaves the state before or after that step, and a rerun
// re-attaches to the batches already submitted instead of paying for them again.
//
// A batch's steps: `uploaded` (OpenAI: its input file is at the provider) -> `creating` (the create
// call was sent: on a rerun the batch is looked for before anything is resent) -> `submitted` ->
// `downloaded` (its results are in the results file). `abandoned`: cancelled for the run deadline,
// or never created; its items run in real time.
import { readFile, rm } from "node:fs/promises";
import { ResumeRefusedError } from "../errors.ts";
import { writeFileAtomic } from "../pipeline/atomic-write.ts";
import type { ProviderName } from "../providers/provider-names.ts";
import type { JournalHeader } from "./journal.ts";

export type ChunkPhase = "uploaded" | "creating" | "submitted" | "downloaded" | "abandoned";

/** One provider batch of this run. */
export type ChunkRecord = {
  /** This run's name for it: `c1`, `c2`, ... */
  key: string;
  /** Which requests it may hold (endpoint and model). */
  group: { key: string; endpoint: string; model: string | undefined };
  /** Its items, as inclusive ranges of input indices, ascending. */
  items: Array<[number, number]>;
  requests: number;
  bytes: number;
  phase: ChunkPhase;
  /** The provider's input file (OpenAI). */
  fileId?: string | undefined;
  /** The provider's batch id, once known. */
  batchId?: string | undefined;
  /** When the create call was sent, epoch ms (to find the batch again after a crash). */
  creatingAt?: number | undefined;
  submittedAt?: number | undefined;
  endedAt?: number | undefined;
  /** How the provider ended it. */
  outcome?: "completed" | "expired" | "cancelled" | "failed" | undefined;
  /** Why it failed, in the provider's words. */
  failure?: string | undefined;
  /** Salvo asked the provider to cancel it (the run deadline was near). */
  cancelRequested?: boolean | undefined;
};

/** The whole state file. */
export type BatchState = {
  salvo_provider_batches: 1;
  /** The run it belongs to: the journal header's input and options (a resume must match). */
  input: { sha256: string; bytes: number };
  options_sha256: string;
  provider: ProviderName;
  /** Tags this run's batches at the provider. */
  run_id: string;
  /** When the run first started, epoch ms: a `--run-deadline` duration counts from here. */
  started_at: number;
  /** The run deadline, epoch ms, fixed when the run first started; null for none. */
  deadline_at: number | null;
  chunks: ChunkRecord[];
};

/** The state file beside an output. */
export function statePath(output: string): string {
  return `${output}.batches.json`;
}

/** The results file beside an output. */
export function resultsPath(output: string): string {
  return `${output}.batches.jsonl`;
}

/**
 * Reads the state of the run `header` describes; undefined if there is none. A state written for
 * another input or other options is refused (ResumeRefusedError), as the journal's is.
 */
export async function loadBatchState(
  path: string,
  header: JournalHeader,
): Promise<BatchState | undefined> {
  const state = await readBatchState(path);
  if (state === undefined) return undefined;
  if (
    state.input?.sha256 !== header.input.sha256 ||
    state.input.bytes !== header.input.bytes ||
    state.options_sha256 !== header.options_sha256
  )
    throw new ResumeRefusedError(
      path,
      `it was written for another input or other options (input sha256 ${String(state.input?.sha256).slice(0, 12)}, this run ${header.input.sha256.slice(0, 12)}); its batches may still be running at the provider`,
    );
  return state;
}

/** Reads a state file, whatever run it belongs to; undefined if there is none. */
export async function readBatchState(path: string): Promise<BatchState | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let state: BatchState;
  try {
    state = JSON.parse(text) as BatchState;
  } catch {
    throw new ResumeRefusedError(path, "it is not valid JSON (the file is corrupt)");
  }
  if (state?.salvo_provider_batches !== 1 || !Array.isArray(state.chunks))
    throw new ResumeRefusedError(path, "it is not a Salvo batch-backend state file");
  return state;
}

/** Replaces the state file atomically. */
export function saveBatchState(path: string, state: BatchState): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(state)}\n`);
}

/** How many batches an earlier run left at the provider (submitted, not downloaded). */
export async function liveBatchesOf(output: string): Promise<number> {
  const state = await readBatchState(statePath(output)).catch(() => undefined);
  return (state?.chunks ?? []).filter((c) => c.phase === "submitted" || c.phase === "creating")
    .length;
}

/** Removes the state and results files (a finished or fresh run). */
export async function removeBatchFiles(output: string): Promise<void> {
  await rm(statePath(output), { force: true });
  await rm(resultsPath(output), { force: true });
}

/** Ranges of sorted indices: [0,1,2,5] -> [[0,2],[5,5]]. */
export function toRanges(indices: readonly number[]): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const i of indices) {
    const last = ranges.at(-1);
    if (last !== undefined && last[1] === i - 1) last[1] = i;
    else ranges.push([i, i]);
  }
  return ranges;
}

/** Every index of `ranges`, ascending. */
export function* fromRanges(ranges: ReadonlyArray<readonly [number, number]>): Generator<number> {
  for (const [from, to] of ranges) for (let i = from; i <= to; i++) yield i;
}
