// `salvo worker --redis URL` as a library call: takes the lines of every running distributed
// batch (or of one) from their BullMQ queues and calls them through a Salvo client whose
// admission is shared in Redis, so any number of workers on any number of machines hold the
// upstream's limits together.
//
// A line's life on a worker: its job is taken (BullMQ locks it; the lock is renewed while the
// worker lives); if the batch's results hash already has its answer (an earlier worker journaled
// it, then lost its lock or died before acknowledging), that answer is used and nothing is called;
// otherwise the client calls it (retries, timeouts, the shared admission), the answer is journaled
// in the results hash, and only then is the job acknowledged. A worker killed mid-call loses its
// lock within `lockDurationMs`, and BullMQ gives the job to another worker. A worker asked to
// stop finishes its calls in flight (up to `graceMs`), puts back the jobs it had not started, and
// leaves.
import { hostname } from "node:os";
import type { Worker as BullWorker, Job } from "bullmq";
import { itemOutcomeFrom } from "../batch/output-line.ts";
import { ConfigError } from "../errors.ts";
import type { Provider } from "../providers/provider.ts";
import { BASE_URL_ENV, DEFAULT_BASE_URL, KEY_ENV } from "../providers/provider-names.ts";
import { Salvo } from "../salvo.ts";
import {
  BATCH_REGISTRY,
  type BatchSettings,
  batchKeys,
  type LineJob,
  QUEUE_PREFIX,
} from "./batch-keys.ts";
import { EventRelay } from "./event-relay.ts";
import { RedisConnection } from "./redis-connection.ts";
import { SharedAdmission } from "./shared-admission.ts";
import { SharedConcurrency } from "./shared-concurrency.ts";
import { upstreamKey } from "./upstream-key.ts";

export type RunWorkerOptions = {
  /** The Redis URL the coordinators use. */
  redis: string;
  /** Work on this batch only, and return once it is finished. @default every running batch, until the signal */
  batch?: string | undefined;
  /**
   * Builds a batch's provider. @default from its settings: the simulator's when the coordinator
   * runs one, else the key from the variable it names (OPENAI_API_KEY / ANTHROPIC_API_KEY) in `env`
   */
  provider?: ((settings: BatchSettings) => Provider) | undefined;
  /** Where the API key and base URL variables are read. @default process.env */
  env?: Record<string, string | undefined> | undefined;
  /** After the signal, how long calls in flight may finish before they are put back, ms. @default 30_000 */
  graceMs?: number | undefined;
  /** Stops the worker gracefully (see `graceMs`). */
  signal?: AbortSignal | undefined;
  /** What the worker does, for its log. A listener that throws is ignored. */
  onEvent?: ((event: WorkerEvent) => void) | undefined;
};

export type WorkerEvent =
  | { type: "joined"; batch: string; upstream: string; concurrency: number | "auto" }
  | { type: "left"; batch: string; lines: number }
  | { type: "warning"; message: string };

export type WorkerSummary = {
  /** Batches this worker took lines of. */
  batches: number;
  /** Lines it finished (answered or failed for good), and of those, found already journaled. */
  lines: number;
  journaled: number;
  /** Redis unavailable in all while it ran, ms. */
  redisUnavailableMs: number;
};

/** Journals a line's answer unless one for the same request is there; then says it is done. */
const JOURNAL_LUA = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and string.sub(old, 1, #ARGV[3]) == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '\\n' .. ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '1000000', '*', 'k', 'd', 'i', ARGV[1], 'w', ARGV[4])
return 1
`;

/**
 * The provider a batch's settings describe, with the key from this worker's environment (the
 * rules of `providerFromEnv`), and the name of its shared budget. Only the SDK it needs is loaded:
 * a worker starts in a fraction of the time.
 */
export async function providerForBatch(
  settings: BatchSettings,
  env: Record<string, string | undefined>,
): Promise<{ provider: Provider; upstream: string }> {
  const name = settings.provider;
  const sim = settings.simulator;
  let baseURL: string | undefined;
  let apiKey: string | undefined;
  if (sim !== undefined) {
    baseURL = name === "anthropic" ? sim.origin : sim.baseUrl;
    apiKey = sim.apiKey;
  } else {
    const keyEnv = settings.apiKeyEnv ?? KEY_ENV[name];
    baseURL = settings.baseUrl ?? env[BASE_URL_ENV[name]];
    apiKey = env[keyEnv];
    if (apiKey === undefined || apiKey === "") {
      if (baseURL === undefined)
        throw new ConfigError({
          field: keyEnv,
          expected: `the ${name} API key in the environment variable ${keyEnv} of this worker's machine`,
          got: undefined,
          where: "environment",
        });
      apiKey = "sk-salvo-no-key-set"; // a local server that takes no key (see providerFromEnv)
    }
  }
  const provider =
    name === "anthropic"
      ? new (await import("../providers/anthropic-provider.ts")).AnthropicProvider({
          baseURL,
          apiKey,
        })
      : new (await import("../providers/openai-provider.ts")).OpenAIProvider({ baseURL, apiKey });
  const upstream =
    settings.upstream ?? upstreamKey(name, baseURL ?? DEFAULT_BASE_URL[name], apiKey);
  return { provider, upstream };
}

/** One batch this worker takes lines of. */
class BatchRun {
  lines = 0;
  journaled = 0;
  readonly batchId: string;
  readonly #worker: BullWorker<LineJob>;
  readonly #salvo: Salvo;
  readonly #relay: EventRelay;
  /** Aborted when the grace period after a stop ends: the calls still in flight are put back. */
  readonly #abort: AbortController;
  readonly #offLimit: () => void;

  private constructor(
    batchId: string,
    worker: BullWorker<LineJob>,
    salvo: Salvo,
    relay: EventRelay,
    abort: AbortController,
    offLimit: () => void,
  ) {
    this.batchId = batchId;
    this.#worker = worker;
    this.#salvo = salvo;
    this.#relay = relay;
    this.#abort = abort;
    this.#offLimit = offLimit;
  }

  static async start(
    connection: RedisConnection,
    batchId: string,
    settings: BatchSettings,
    admissionFor: (upstream: string, settings: BatchSettings) => Promise<SharedAdmission>,
    options: RunWorkerOptions,
    emit: (event: WorkerEvent) => void,
  ): Promise<BatchRun> {
    const { Worker, WaitingError } = await import("bullmq");
    const env = options.env ?? process.env;
    const built = options.provider
      ? { provider: options.provider(settings), upstream: settings.upstream }
      : await providerForBatch(settings, env);
    const provider = built.provider;
    const upstream =
      built.upstream ?? upstreamKey(provider.name, settings.baseUrl ?? "", "custom-provider");
    const admission = await admissionFor(upstream, settings);
    const salvo = new Salvo({
      provider,
      gate: admission,
      concurrency: new SharedConcurrency(admission, settings.workerConcurrency),
      requestsPerMinute: settings.requestsPerMinute,
      tokensPerMinute: settings.tokensPerMinute,
      inputTokensPerMinute: settings.inputTokensPerMinute,
      outputTokensPerMinute: settings.outputTokensPerMinute,
      burstSeconds: settings.burstSeconds,
      timeoutMs: settings.timeoutMs ?? Number.POSITIVE_INFINITY,
      deadlineMs: settings.deadlineMs ?? Number.POSITIVE_INFINITY,
      retry: settings.maxAttempts === undefined ? undefined : { maxAttempts: settings.maxAttempts },
    });
    const keys = batchKeys(batchId);
    const client = connection.client;
    if (typeof (client as unknown as Record<string, unknown>).salvoJournal !== "function")
      client.defineCommand("salvoJournal", { numberOfKeys: 2, lua: JOURNAL_LUA });
    const journal = (client as unknown as Record<string, (...a: string[]) => Promise<number>>)
      .salvoJournal!;
    const abort = new AbortController();
    const relay = new EventRelay({
      redis: client,
      stream: keys.events,
      worker: workerName(),
      scheduler: salvo.scheduler,
      figures: () => ({ ...admission.stats(), unavailableMs: connection.unavailableMs }),
    });
    let run: BatchRun | undefined;
    const processor = async (job: Job<LineJob>, token?: string): Promise<string> => {
      const { i, d, request } = job.data;
      const field = String(i);
      const existing = await client.hget(keys.results, field);
      if (existing?.startsWith(`${d}\n`)) {
        if (run) run.journaled++;
        return "journaled";
      }
      const outcome = itemOutcomeFrom(await salvo.settle(request, { id: i, signal: abort.signal }));
      if (!outcome.ok && ["SALVO_ABORTED", "SALVO_CLOSED"].includes(outcome.error.code)) {
        // Stopped, not finished: back to the queue, for this worker's successor or another.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      await journal.call(
        client,
        keys.results,
        keys.events,
        field,
        JSON.stringify(outcome),
        d,
        workerName(),
      );
      if (run) run.lines++;
      return "done";
    };
    // Jobs taken ahead of the client's slots wait in its queue: twice its limit keeps it fed
    // without holding (and, if this worker dies, stalling) much more than it can run.
    const jobsFor = (limit: number) =>
      Math.max(2, 2 * Math.min(limit, settings.workerConcurrency ?? Number.POSITIVE_INFINITY));
    const worker = new Worker<LineJob>(keys.queue, processor, {
      connection: client,
      prefix: QUEUE_PREFIX,
      concurrency: jobsFor(admission.limit),
      lockDuration: settings.lockDurationMs,
      stalledInterval: Math.max(500, Math.round(settings.lockDurationMs / 2)),
      maxStalledCount: settings.maxStalledCount,
      runRetryDelay: 1_000,
      autorun: false,
    });
    worker.on("error", () => {}); // connection errors: the worker retries; outages are counted
    const offLimit = admission.onLimit((limit) => {
      worker.concurrency = jobsFor(limit);
    });
    run = new BatchRun(batchId, worker, salvo, relay, abort, offLimit);
    void worker.run().catch((error: unknown) =>
      emit({
        type: "warning",
        message: `batch ${batchId}: the queue worker stopped: ${(error as Error).message}`,
      }),
    );
    emit({ type: "joined", batch: batchId, upstream, concurrency: settings.concurrency });
    return run;
  }

  /** Takes no more jobs, lets the calls in flight finish (up to `graceMs`), then closes. */
  async stop(graceMs: number): Promise<void> {
    const timer = setTimeout(() => this.#abort.abort(new Error("grace period over")), graceMs);
    timer.unref();
    try {
      await this.#worker.close();
    } finally {
      clearTimeout(timer);
      this.#offLimit();
      await this.#relay.close();
      await this.#salvo.close();
    }
  }
}

let name: string | undefined;
/** This process's name in the events stream. */
function workerName(): string {
  name ??= `${hostname()}:${process.pid}`;
  return name;
}

/**
 * Works on the running distributed batches until the signal (or, with `batch`, until that batch
 * is finished). Rejects with RedisUnavailableError if Redis cannot be reached at start.
 */
export async function runWorker(options: RunWorkerOptions): Promise<WorkerSummary> {
  const emit = (event: WorkerEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // A listener must not stop a worker.
    }
  };
  const graceMs = options.graceMs ?? 30_000;
  if (!(graceMs >= 0))
    throw new ConfigError({ field: "graceMs", expected: "a number >= 0", got: graceMs });
  const connection = await RedisConnection.open(options.redis, { name: "salvo-worker" });
  const registry = await connection.duplicate("salvo-worker-registry");
  const admissions = new Map<string, Promise<SharedAdmission>>();
  const runs = new Map<string, BatchRun>();
  const starting = new Map<string, Promise<void>>();
  const refused = new Set<string>();
  let batches = 0;
  let lines = 0;
  let journaled = 0;
  let stopping = false;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });

  const admissionFor = (upstream: string, settings: BatchSettings) => {
    let admission = admissions.get(upstream);
    if (admission === undefined) {
      admission = SharedAdmission.open({
        redis: connection,
        key: upstream,
        requestsPerMinute: settings.requestsPerMinute,
        tokensPerMinute: settings.tokensPerMinute,
        inputTokensPerMinute: settings.inputTokensPerMinute,
        outputTokensPerMinute: settings.outputTokensPerMinute,
        burstSeconds: settings.burstSeconds,
        concurrency: settings.concurrency,
        maxConcurrency: settings.maxConcurrency,
        leaseTtlMs: settings.leaseTtlMs,
        onWarning: (message) => emit({ type: "warning", message }),
      });
      admissions.set(upstream, admission);
      admission.catch(() => admissions.delete(upstream));
    }
    return admission;
  };

  const leave = async (batchId: string) => {
    const run = runs.get(batchId);
    if (run === undefined) return;
    runs.delete(batchId);
    await run.stop(graceMs);
    lines += run.lines;
    journaled += run.journaled;
    emit({ type: "left", batch: batchId, lines: run.lines });
  };

  const join = async (batchId: string) => {
    const text = await connection.client.get(batchKeys(batchId).settings);
    if (text === null) return;
    let settings: BatchSettings;
    try {
      settings = JSON.parse(text) as BatchSettings;
    } catch {
      return;
    }
    try {
      const run = await BatchRun.start(connection, batchId, settings, admissionFor, options, emit);
      if (stopping) await run.stop(graceMs);
      else {
        runs.set(batchId, run);
        batches++;
      }
    } catch (error) {
      // e.g. no API key in this machine's environment: say so once, keep serving other batches.
      refused.add(batchId);
      emit({
        type: "warning",
        message: `cannot work on batch ${batchId}: ${(error as Error).message}`,
      });
    }
  };

  let refreshing = Promise.resolve();
  const refresh = () => {
    refreshing = refreshing.then(async () => {
      if (stopping) return;
      const ids = await connection.client.zrange(BATCH_REGISTRY, 0, -1);
      const wanted = new Set(
        ids.filter((id) => options.batch === undefined || id === options.batch),
      );
      for (const id of wanted)
        if (!runs.has(id) && !starting.has(id) && !refused.has(id)) {
          const started = join(id).finally(() => starting.delete(id));
          starting.set(id, started);
          await started;
        }
      for (const id of [...runs.keys()]) if (!wanted.has(id)) await leave(id);
      if (options.batch !== undefined && !wanted.has(options.batch) && runs.size === 0) {
        // The coordinator removed the batch (finished): a batch worker's work is done.
        if (joinedOnce) done();
      }
      if (options.batch !== undefined && wanted.has(options.batch)) joinedOnce = true;
    });
    return refreshing.catch((error: unknown) =>
      emit({
        type: "warning",
        message: `reading the batch registry failed: ${(error as Error).message}`,
      }),
    );
  };
  let joinedOnce = false;

  registry.on("message", () => void refresh());
  await registry.subscribe(BATCH_REGISTRY);
  const poll = setInterval(() => void refresh(), 2_000);
  poll.unref();
  const onAbort = () => done();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) done();
  await refresh();

  try {
    await finished;
  } finally {
    stopping = true;
    clearInterval(poll);
    options.signal?.removeEventListener("abort", onAbort);
    await refreshing.catch(() => {});
    await Promise.allSettled([...starting.values()]);
    for (const id of [...runs.keys()]) await leave(id);
    for (const admission of admissions.values())
      await (await admission.catch(() => undefined))?.close();
    registry.disconnect();
    await connection.close();
  }
  return { batches, lines, journaled, redisUnavailableMs: connection.unavailableMs };
}
