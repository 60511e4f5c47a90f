// The contenders: Salvo, and what people write today, each configured as its own documentation
// recommends and given the same work, the same concurrency and the same rate limits translated
// into its own terms. Every one calls the simulator through the official `openai` SDK, with the
// same instrumented `fetch`. Peer libraries are imported lazily, so a missing one is reported as
// unavailable instead of breaking the run.

import OpenAI from "openai";
import { AdaptiveConcurrency } from "../src/core/concurrency/adaptive-concurrency.ts";
import { OpenAIProvider } from "../src/providers/openai-provider.ts";
import { Salvo } from "../src/salvo.ts";
import type { BenchItem } from "./workload.ts";

/** What a contender is told about the run. */
export type ContenderContext = {
  baseURL: string;
  /** The instrumented fetch every client must use. */
  fetch: typeof fetch;
  /** The concurrency cap of the scenario. */
  concurrency: number;
  /** Per-attempt timeout, ms. */
  timeoutMs: number;
  /** The server's limits, when the scenario says they are known. */
  limits: {
    requestsPerMinute?: number | undefined;
    tokensPerMinute?: number | undefined;
    inputTokensPerMinute?: number | undefined;
    outputTokensPerMinute?: number | undefined;
    burstSeconds: number;
    /** All limits as one sustainable request rate (for request-counting peers), per second. */
    ratePerSecond?: number | undefined;
  };
  /** Read Salvo's results as a stream. */
  stream: boolean;
  /** `salvo-auto`'s highest limit; undefined: Salvo's default. */
  autoMax?: number | undefined;
  /** Attempts per item for Salvo; undefined: Salvo's default (5). */
  maxAttempts?: number | undefined;
  /** Counts Salvo's own retries (client-side), when observable. */
  onRetry: () => void;
};

/** Reports one item's end: the answer text, or the error. */
export type Settle = (index: number, content: string | undefined, error?: unknown) => void;

export type Runner = {
  /** Runs one stage's items to the end; every item is settled exactly once. */
  runStage(items: Iterable<BenchItem>, settle: Settle): Promise<void>;
  close?(): Promise<void>;
};

export type Contender = {
  name: string;
  /** One line for the results: library, version and settings. */
  describe(ctx: ContenderContext): string;
  create(ctx: ContenderContext): Promise<Runner>;
};

const API_KEY = "sk-bench-not-a-real-key";

/** The SDK as people use it: default retries (2) unless told otherwise, the scenario's timeout. */
function sdk(ctx: ContenderContext, maxRetries?: number): OpenAI {
  return new OpenAI({
    baseURL: ctx.baseURL,
    apiKey: API_KEY,
    fetch: ctx.fetch,
    timeout: ctx.timeoutMs,
    ...(maxRetries === undefined ? {} : { maxRetries }),
  });
}

function contentOf(completion: unknown): string | undefined {
  const choices = (completion as { choices?: Array<{ message?: { content?: unknown } }> })?.choices;
  const content = choices?.[0]?.message?.content;
  return typeof content === "string" ? content : undefined;
}

/** One call with the SDK, settled. */
async function callOnce(client: OpenAI, item: BenchItem, settle: Settle): Promise<void> {
  try {
    const completion = await client.chat.completions.create(item.body);
    settle(item.index, contentOf(completion));
  } catch (error) {
    settle(item.index, undefined, error);
  }
}

/**
 * A request-counting limiter's window: `cap` starts per `intervalMs`, matching the provider's
 * bucket (burstSeconds of the limit), the interval a multiple of 250 ms (Bottleneck's heartbeat).
 */
export function requestWindow(
  ratePerSecond: number,
  burstSeconds: number,
): { cap: number; intervalMs: number } {
  const intervalMs = Math.max(250, Math.ceil((burstSeconds * 1000) / 250) * 250);
  const cap = Math.floor((ratePerSecond * intervalMs) / 1000);
  if (cap >= 1) return { cap, intervalMs };
  return { cap: 1, intervalMs: Math.ceil(1000 / ratePerSecond) };
}

/** The OpenAI provider without its rate-limit readings: Salvo then paces by its own buckets only. */
class NoHeadersProvider extends OpenAIProvider {
  override async call(
    ...args: Parameters<OpenAIProvider["call"]>
  ): ReturnType<OpenAIProvider["call"]> {
    const result = await super.call(...args);
    return { ...result, rateLimits: undefined };
  }
}

function salvoContender(
  name: string,
  concurrency: (ctx: ContenderContext) => unknown,
  readHeaders = true,
): Contender {
  const fixed = /^salvo-fixed-(\d+)$/.exec(name)?.[1];
  return {
    name,
    describe: (ctx) =>
      `Salvo ${name === "salvo-auto" ? `concurrency auto${ctx.autoMax === undefined ? "" : `, max ${ctx.autoMax}`}` : `concurrency ${fixed ?? ctx.concurrency}`}` +
      (ctx.limits.requestsPerMinute ? `, RPM ${round(ctx.limits.requestsPerMinute)}` : "") +
      (ctx.limits.tokensPerMinute ? `, TPM ${round(ctx.limits.tokensPerMinute)}` : "") +
      (ctx.limits.inputTokensPerMinute ? `, ITPM ${round(ctx.limits.inputTokensPerMinute)}` : "") +
      (ctx.limits.outputTokensPerMinute
        ? `, OTPM ${round(ctx.limits.outputTokensPerMinute)}`
        : "") +
      `, burst ${ctx.limits.burstSeconds} s, ${ctx.maxAttempts === undefined ? "default retries (5 attempts)" : `${ctx.maxAttempts} attempts`}${ctx.stream ? ", stream" : ", map"}`,
    async create(ctx) {
      const provider = readHeaders
        ? new OpenAIProvider({ client: sdk(ctx) })
        : new NoHeadersProvider({ client: sdk(ctx) });
      const salvo = new Salvo({
        provider,
        concurrency: concurrency(ctx) as number | "auto" | AdaptiveConcurrency,
        requestsPerMinute: ctx.limits.requestsPerMinute,
        tokensPerMinute: ctx.limits.tokensPerMinute,
        inputTokensPerMinute: ctx.limits.inputTokensPerMinute,
        outputTokensPerMinute: ctx.limits.outputTokensPerMinute,
        burstSeconds: ctx.limits.burstSeconds,
        timeoutMs: ctx.timeoutMs,
        ...(ctx.maxAttempts === undefined ? {} : { retry: { maxAttempts: ctx.maxAttempts } }),
      });
      salvo.scheduler.on("retry-scheduled", ctx.onRetry);
      return {
        async runStage(items, settle) {
          // Salvo's map and stream number items from 0 per call; the bench's indexes are global.
          const indexes: number[] = [];
          const requests = (function* () {
            for (const item of items) {
              indexes.push(item.index);
              yield { path: "/chat/completions", body: item.body };
            }
          })();
          let n = 0;
          const settleOutcome = (outcome: Awaited<ReturnType<Salvo["settle"]>>) => {
            const index = indexes[n++]!;
            if (outcome.ok) settle(index, contentOf(outcome.value.body));
            else settle(index, undefined, outcome.error);
          };
          if (ctx.stream)
            for await (const outcome of salvo.stream(requests)) settleOutcome(outcome);
          else for (const outcome of await salvo.map(requests)) settleOutcome(outcome);
        },
        close: () => salvo.close(),
      };
    },
  };
}

function round(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** Whether Salvo's adaptive concurrency controller (`concurrency: "auto"`) is available. */
export function salvoAutoAvailable(): boolean {
  return typeof AdaptiveConcurrency === "function";
}

export const CONTENDERS: readonly Contender[] = [
  salvoContender("salvo", (ctx) => ctx.concurrency),
  // Salvo's default, concurrency "auto", as a user gets it: told the same known limits as every
  // contender (the scheduler passes them to its Little's-law ceiling), capped only where the
  // scenario says so (`autoMax`, a user's --max-concurrency). Finding the capacity is its job.
  salvoContender("salvo-auto", (ctx) =>
    ctx.autoMax === undefined ? "auto" : new AdaptiveConcurrency({ max: ctx.autoMax }),
  ),
  // A diagnostic, not run by default: Salvo ignoring the rate-limit headers (see the report).
  salvoContender("salvo-no-headers", (ctx) => ctx.concurrency, false),
  {
    name: "p-limit",
    describe: (ctx) => `p-limit(${ctx.concurrency}) around openai SDK (maxRetries 2)`,
    async create(ctx) {
      const { default: pLimit } = await import("p-limit");
      const client = sdk(ctx);
      const limit = pLimit(ctx.concurrency);
      return {
        async runStage(items, settle) {
          const calls: Array<Promise<void>> = [];
          for (const item of items) calls.push(limit(() => callOnce(client, item, settle)));
          await Promise.all(calls);
        },
      };
    },
  },
  {
    name: "p-queue",
    describe: (ctx) => {
      const rate = ctx.limits.ratePerSecond;
      if (rate === undefined)
        return `p-queue concurrency ${ctx.concurrency}, openai SDK (maxRetries 2)`;
      const w = requestWindow(rate, ctx.limits.burstSeconds);
      return `p-queue concurrency ${ctx.concurrency}, intervalCap ${w.cap} / interval ${w.intervalMs} ms, strict, openai SDK (maxRetries 2)`;
    },
    async create(ctx) {
      const { default: PQueue } = await import("p-queue");
      const client = sdk(ctx);
      const rate = ctx.limits.ratePerSecond;
      // README: "strict: true ... Use it when an API enforces strict rate limits."
      const queue =
        rate === undefined
          ? new PQueue({ concurrency: ctx.concurrency })
          : (() => {
              const w = requestWindow(rate, ctx.limits.burstSeconds);
              return new PQueue({
                concurrency: ctx.concurrency,
                intervalCap: w.cap,
                interval: w.intervalMs,
                strict: true,
              });
            })();
      return {
        async runStage(items, settle) {
          const calls: Array<Promise<void>> = [];
          for (const item of items) calls.push(queue.add(() => callOnce(client, item, settle)));
          await Promise.all(calls);
        },
      };
    },
  },
  {
    name: "bottleneck",
    describe: (ctx) => {
      const rate = ctx.limits.ratePerSecond;
      if (rate === undefined)
        return `Bottleneck maxConcurrent ${ctx.concurrency}, openai SDK (maxRetries 2)`;
      const w = requestWindow(rate, ctx.limits.burstSeconds);
      return `Bottleneck maxConcurrent ${ctx.concurrency}, reservoir ${w.cap} refreshed every ${w.intervalMs} ms, openai SDK (maxRetries 2)`;
    },
    async create(ctx) {
      const { default: Bottleneck } = await import("bottleneck");
      const client = sdk(ctx);
      const rate = ctx.limits.ratePerSecond;
      const w = rate === undefined ? undefined : requestWindow(rate, ctx.limits.burstSeconds);
      const limiter = new Bottleneck({
        maxConcurrent: ctx.concurrency,
        ...(w === undefined
          ? {}
          : {
              reservoir: w.cap,
              reservoirRefreshAmount: w.cap,
              reservoirRefreshInterval: w.intervalMs,
            }),
      });
      return {
        async runStage(items, settle) {
          const calls: Array<Promise<void>> = [];
          for (const item of items)
            calls.push(limiter.schedule(() => callOnce(client, item, settle)));
          await Promise.all(calls);
        },
        close: () => limiter.stop({ dropWaitingJobs: false }),
      };
    },
  },
  {
    name: "langchain",
    describe: (ctx) =>
      `LangChain AsyncCaller maxConcurrency ${ctx.concurrency}, maxRetries 6 (its default), openai SDK maxRetries 0`,
    async create(ctx) {
      const { AsyncCaller } = await import("@langchain/core/utils/async_caller");
      // As ChatOpenAI does: the SDK's own retries off, the caller retries.
      const client = sdk(ctx, 0);
      const caller = new AsyncCaller({ maxConcurrency: ctx.concurrency });
      return {
        async runStage(items, settle) {
          const calls: Array<Promise<void>> = [];
          for (const item of items) {
            calls.push(
              caller
                .call(() => client.chat.completions.create(item.body))
                .then(
                  (completion) => settle(item.index, contentOf(completion)),
                  (error: unknown) => settle(item.index, undefined, error),
                ),
            );
          }
          await Promise.all(calls);
        },
      };
    },
  },
  {
    name: "sequential",
    describe: () => "a for loop of awaited openai SDK calls (maxRetries 2)",
    async create(ctx) {
      const client = sdk(ctx);
      return {
        async runStage(items, settle) {
          for (const item of items) await callOnce(client, item, settle);
        },
      };
    },
  },
];

/** `salvo-fixed-N`: Salvo at the fixed limit N (a bench scenario's sweep). */
export function isSweepContender(name: string): boolean {
  return /^salvo-fixed-\d+$/.test(name);
}

export function contenderByName(name: string): Contender | undefined {
  const fixed = /^salvo-fixed-(\d+)$/.exec(name)?.[1];
  if (fixed !== undefined) return salvoContender(name, () => Number(fixed));
  return CONTENDERS.find((c) => c.name === name);
}
