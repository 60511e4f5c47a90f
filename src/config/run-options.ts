// What `salvo run`'s settings mean for the library calls behind it: the batch backend's options
// (`runBatchFile`) and a distributed run's (`runDistributedBatch`, with `--redis`).
import type { DistributedBatchOptions } from "../distributed/run-distributed-batch.ts";
import { batchTurnaroundMs, type SimHandle } from "../sim/index.ts";
import { type RunSettings, rateOptionsFromSettings, SIM_KEY } from "./run-settings.ts";

/** The batch backend's options (`--backend` and its flags), and what the simulator's scenario says. */
export function backendOptionsFromSettings(settings: RunSettings, sim: SimHandle | undefined) {
  const turnaround =
    settings.batchTurnaroundMs !== undefined
      ? { ms: settings.batchTurnaroundMs, source: "--batch-turnaround" }
      : sim !== undefined
        ? {
            ms: (requests: number) => batchTurnaroundMs(sim.config.batch, requests),
            source: "the simulator's batch settings",
          }
        : undefined;
  let realtimeLatency: { ms: number; source: string } | undefined;
  if (sim !== undefined) {
    const { latency, output } = sim.config;
    const tokens = (output.range.min + output.range.max) / 2;
    realtimeLatency = {
      ms: latency.ttftMs + Math.max(0, tokens - 1) * latency.msPerToken,
      source: "the simulator's latency model",
    };
  }
  return {
    backend: settings.backend,
    runDeadline: settings.runDeadline,
    batchTurnaround: turnaround,
    batchSize: settings.batchSize,
    realtimeLatency,
  };
}

/**
 * A distributed run's options (`--redis` and its flags) from the settings, but for the input,
 * the output and what the caller observes (progress, signal, events).
 */
export function distributedOptionsFromSettings(
  settings: RunSettings,
  redis: string,
  sim: SimHandle | undefined,
): Omit<DistributedBatchOptions, "input" | "output"> & { redis: string } {
  const workerTimeoutMs =
    settings.workerTimeoutMs === undefined ? undefined : Math.round(settings.workerTimeoutMs);
  return {
    redis,
    workers: settings.workers,
    workerConcurrency: settings.workerConcurrency,
    leaseTtlMs: workerTimeoutMs,
    lockDurationMs: workerTimeoutMs,
    providerName: settings.provider,
    model: settings.model,
    baseUrl: settings.baseUrl,
    apiKeyEnv: settings.apiKeyEnv,
    simulator:
      sim === undefined ? undefined : { baseUrl: sim.baseUrl, origin: sim.origin, apiKey: SIM_KEY },
    endpoint: settings.sim === undefined ? settings.baseUrl : `simulator:${settings.sim}`,
    concurrency: settings.concurrency,
    maxConcurrency: settings.maxConcurrency,
    ...rateOptionsFromSettings(settings),
    timeoutMs: settings.timeoutMs,
    deadlineMs: Number.isFinite(settings.deadlineMs) ? settings.deadlineMs : undefined,
    maxAttempts: settings.maxAttempts,
    fresh: settings.fresh,
    retryFailed: settings.retryFailed,
    strict: settings.strict,
    graceMs: settings.graceMs,
    report: settings.report,
  };
}
