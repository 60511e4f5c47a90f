// What Salvo learned about an endpoint's capacity, kept for the next run: the concurrency limit a
// run's adaptive controller settled on, or `salvo probe`'s recommendation. A short job that starts
// from it pays for no search (a slow start costs a job of a few round trips the most). One small
// JSON file, keyed by endpoint and model, written whole and atomically (a temporary file renamed
// into place), 0600. A missing, unreadable or damaged file is no memory, never an error: it is a
// hint, and the controller probes around any start it is given.
//
//   { "version": 1, "limits": { "<endpoint> <model>": { "limit": 6, "source": "previous-run",
//     "at": "2026-11-24T10:00:00.000Z" } } }

import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { StartSource } from "../core/concurrency/adaptive-concurrency.ts";
import { writeFileAtomic } from "../pipeline/atomic-write.ts";

/** Where a remembered limit came from. */
export type RememberedSource = Extract<StartSource, "previous-run" | "probe">;

export type RememberedLimit = {
  /** The concurrency limit, an integer >= 1. */
  limit: number;
  source: RememberedSource;
  /** When it was learned, ISO 8601. */
  at: string;
};

/** Which endpoint a limit belongs to: its base URL and the model called. */
export type EndpointKey = { endpoint: string; model: string };

export type ReadLimitOptions = {
  /** Older entries are ignored: the endpoint may have changed since. @default 30 days */
  maxAgeMs?: number | undefined;
  /** The current time, ms since the epoch. @default Date.now() */
  now?: number | undefined;
};

/** The file's name in a cache directory. */
export const LIMIT_MEMORY_FILE = "limits.json";
/** At most this many endpoints are kept (the most recent). */
const MAX_ENTRIES = 200;
const DAY_MS = 86_400_000;

type MemoryFile = { version: 1; limits: Record<string, RememberedLimit> };

/**
 * Where the memory lives: `limits.json` in the cache directory when there is one (shared by every
 * run that uses it), else beside the output (`<output>.limits.json`).
 */
export function limitMemoryPath(place: { cacheDir?: string | undefined; output: string }): string {
  return place.cacheDir !== undefined
    ? join(place.cacheDir, LIMIT_MEMORY_FILE)
    : `${place.output}.limits.json`;
}

/**
 * The key of an endpoint: its URL without credentials, query or fragment (a key never reaches a
 * file), and the model.
 */
export function endpointKey(key: EndpointKey): string {
  let endpoint = key.endpoint;
  try {
    const url = new URL(key.endpoint);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    endpoint = url.toString().replace(/\/+$/, "");
  } catch {
    // Not a URL (a provider's name, a custom function's label): kept as given.
  }
  return `${endpoint} ${key.model}`;
}

/** The remembered limit of an endpoint, or undefined (none, too old, or an unreadable file). */
export async function readRememberedLimit(
  path: string,
  key: EndpointKey,
  options: ReadLimitOptions = {},
): Promise<RememberedLimit | undefined> {
  const file = await readMemory(path);
  const entry = file.limits[endpointKey(key)];
  if (entry === undefined) return undefined;
  const age = (options.now ?? Date.now()) - Date.parse(entry.at);
  if (!(age <= (options.maxAgeMs ?? 30 * DAY_MS))) return undefined;
  return entry;
}

/**
 * Remembers an endpoint's limit: reads the file, sets the entry, keeps the most recent
 * `MAX_ENTRIES`, and writes it back atomically with mode 0600 (creating the directory, 0700).
 * Two runs writing at once: the last rename wins, each file whole.
 */
export async function rememberLimit(
  path: string,
  key: EndpointKey,
  entry: { limit: number; source: RememberedSource; at?: Date | undefined },
): Promise<void> {
  if (!(Number.isInteger(entry.limit) && entry.limit >= 1)) {
    throw new RangeError(`a remembered limit is an integer >= 1, got ${entry.limit}`);
  }
  const file = await readMemory(path);
  file.limits[endpointKey(key)] = {
    limit: entry.limit,
    source: entry.source,
    at: (entry.at ?? new Date()).toISOString(),
  };
  const kept = Object.entries(file.limits)
    .sort((a, b) => Date.parse(b[1].at) - Date.parse(a[1].at))
    .slice(0, MAX_ENTRIES);
  const text = `${JSON.stringify({ version: 1, limits: Object.fromEntries(kept) }, null, 2)}\n`;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, text, { mode: 0o600 });
}

async function readMemory(path: string): Promise<MemoryFile> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch {
    return { version: 1, limits: {} };
  }
  const limits: Record<string, RememberedLimit> = {};
  const raw = (parsed as { version?: unknown; limits?: unknown } | null)?.limits;
  if ((parsed as { version?: unknown } | null)?.version !== 1 || !isRecord(raw)) {
    return { version: 1, limits };
  }
  for (const [key, value] of Object.entries(raw)) {
    // Entries that do not look right are dropped one by one, not the whole file.
    if (!isRecord(value)) continue;
    const { limit, source, at } = value;
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) continue;
    if (source !== "previous-run" && source !== "probe") continue;
    if (typeof at !== "string" || Number.isNaN(Date.parse(at))) continue;
    limits[key] = { limit, source, at };
  }
  return { version: 1, limits };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
