// `salvo serve`: the OpenAI- and Anthropic-compatible gateway. One upstream from flags
// (`--base-url URL --concurrency 8 --rpm 600`, the same limit flags as `salvo run`), or any
// number of upstreams and tenants from `--config gateway.yaml`. Prints its base URL as the first
// line of standard output, serves until SIGTERM or Ctrl-C, then stops accepting, lets the calls
// in flight finish within `--grace`, and exits. The gateway (hono, prom-client) loads only when
// the command runs, so `salvo --help` stays fast.
import { constants, createWriteStream, type WriteStream } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../../errors.ts";
import { RUN_DEFAULTS } from "../call-options.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

/** Flags that define the one upstream; with --config the file defines the upstreams instead. */
const UPSTREAM_FLAGS = [
  "provider",
  "baseUrl",
  "apiKeyEnv",
  "concurrency",
  "maxConcurrency",
  "rpm",
  "tpm",
  "itpm",
  "otpm",
  "burstSeconds",
  "maxAttempts",
  "timeout",
  "maxRetryAfter",
  "sim",
  "audit",
  "auditContent",
  "cache",
  "cacheTtl",
  "cacheForce",
  "maxCost",
  "maxTokensTotal",
  "maxQueue",
  "maxWait",
  "models",
] as const;

const FLAG_NAMES: Record<string, string> = {
  baseUrl: "--base-url",
  apiKeyEnv: "--api-key-env",
  maxConcurrency: "--max-concurrency",
  burstSeconds: "--burst-seconds",
  maxAttempts: "--max-attempts",
  maxRetryAfter: "--max-retry-after",
  auditContent: "--audit-content",
  cacheTtl: "--cache-ttl",
  cacheForce: "--cache-force",
  maxCost: "--max-cost",
  maxTokensTotal: "--max-tokens-total",
  maxQueue: "--max-queue",
  maxWait: "--max-wait",
};

/** The gateway's default per-attempt timeout: a long stream must not be cut. */
const SERVE_TIMEOUT_MS = 600_000;
const DEFAULT_PORT = 8787;

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

function integer(raw: unknown, flag: string, min: number, max: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError({
      field: flag,
      expected: `a whole number from ${min} to ${max}`,
      got: raw,
      where: "command line",
    });
  return value;
}

export function serveCommand(io: CliIo): Command {
  return cliCommand("serve", io)
    .description(
      "serve an OpenAI- and Anthropic-compatible gateway: every client, in any language, points its base URL here and shares one admission authority per upstream (limits, retries, cache, budgets, audit), with tenants, a live dashboard at / and Prometheus /metrics; prints its base URL first",
    )
    .option(
      "--config <file>",
      "gateway.yaml: upstreams, tenants, audit, cache, prices (default: one upstream from the flags)",
    )
    .option(
      "--host <host>",
      "address to bind; another than loopback needs tenants with keys (default: 127.0.0.1)",
    )
    .option("--port <n>", `port; 0 picks a free one (default: ${DEFAULT_PORT})`)
    .option(
      "--provider <name>",
      "the upstream's API: openai or anthropic (default: openai; with --sim both)",
    )
    .option(
      "--base-url <url>",
      "the upstream's base URL (default: $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL, else the provider's)",
    )
    .option(
      "--api-key-env <name>",
      "environment variable holding the upstream's API key (default: OPENAI_API_KEY / ANTHROPIC_API_KEY)",
    )
    .option(
      "--models <patterns>",
      "comma-separated models the upstream serves, * as a wildcard (default: every model)",
    )
    .option(
      "--concurrency <n|auto>",
      `calls in flight at once, or auto: adaptive (default: ${RUN_DEFAULTS.concurrency})`,
    )
    .option("--max-concurrency <n>", "the most calls auto may have in flight (default: 256)")
    .option("--rpm <n>", "requests per minute (default: none; learned from rate-limit headers)")
    .option(
      "--tpm <n>",
      "tokens per minute, prompt + max_tokens (default: none; learned from headers)",
    )
    .option("--itpm <n>", "Anthropic input tokens per minute (default: none)")
    .option("--otpm <n>", "Anthropic output tokens per minute (default: none)")
    .option(
      "--burst-seconds <s>",
      `seconds of each per-minute limit that may go at once (default: ${RUN_DEFAULTS.burstSeconds})`,
    )
    .option(
      "--max-attempts <n>",
      `attempts per call inside the gateway, the first included (default: ${RUN_DEFAULTS.maxAttempts})`,
    )
    .option(
      "--timeout <duration>",
      "per-attempt timeout, a stream's whole length included (default: 10m)",
    )
    .option(
      "--max-retry-after <duration>",
      "the longest Retry-After the upstream may ask for: a longer one fails the call at once (SALVO_RETRY_AFTER_TOO_LONG) instead of holding the client (default: 2m)",
    )
    .option(
      "--max-queue <n>",
      "most requests waiting for the upstream; past it, 429 with a computed retry-after (default: 1024)",
    )
    .option(
      "--max-wait <duration>",
      "longest expected wait for admission; a longer one is a 429 at once (default: 2m)",
    )
    .option(
      "--grace <duration>",
      "after SIGTERM or Ctrl-C, how long calls in flight may finish (default: 30s)",
    )
    .option(
      "--sim [scenario]",
      "serve the built-in simulator as the upstream(s): a scenario name in scenarios/ or a file (default scenario: demo)",
    )
    .option(
      "--audit <file>",
      "call log: one hash-chained record per attempt, with each call's context (default: none)",
    )
    .option(
      "--audit-content <mode>",
      "what the call log keeps of requests and answers: full, hash or none (default: hash)",
    )
    .option("--cache <dir>", "response cache shared by every client (default: none)")
    .option("--cache-ttl <duration>", "how long a cached answer stays fresh (default: forever)")
    .option("--cache-force", "also cache and share sampled answers (default: off)")
    .option("--max-cost <usd>", "the upstream's budget while the gateway runs, USD (default: none)")
    .option("--max-tokens-total <n>", "the same in tokens (default: none)")
    .option(
      "--redis <url>",
      "share every upstream's limits with the other gateways (and `salvo run --redis` workers) using this Redis, e.g. redis://10.0.0.5:6379: behind a load balancer, N gateways hold one budget, not N (default: none)",
    )
    .option(
      "--access-log <where>",
      "stderr, none, or a file: one JSON line per request (default: stderr)",
    )
    .option(
      "--state <dir>",
      "the batch APIs' state directory (OpenAI files and batches, Anthropic message batches): a restart resumes every batch (default: $XDG_STATE_HOME/salvo/serve, else ~/.local/state/salvo/serve)",
    )
    .addHelpText(
      "after",
      "\nPoint an SDK at the gateway: OpenAI(base_url=<printed URL>, api_key=<gateway key, or anything\n" +
        "without tenants>); Anthropic(base_url=<printed URL without /v1>). Audit context per call:\n" +
        "the header `x-salvo-context: claim_id=C1,call_purpose=coverage` or the body's metadata.\n" +
        "GET / is the live dashboard, /metrics Prometheus, /salvo/status JSON, /healthz health.\n",
    )
    .action(async (options: Record<string, unknown>) => {
      io.exitCode = await serve(options, io);
    });
}

type Started = {
  options: import("../../gateway/gateway.ts").GatewayOptions & { stateDir: string };
  listen: { host: string | undefined; port: number | undefined; graceMs: number };
  accessLog: string;
  cleanup: Array<() => Promise<void>>;
};

async function serve(options: Record<string, unknown>, io: CliIo): Promise<number> {
  const { createGateway, listen } = await import("../../gateway/index.ts");
  const { safeUrl } = await import("../../gateway/gateway-status.ts");
  const started = await settingsFrom(options, io);
  let log: WriteStream | undefined;
  const accessLog = started.accessLog;
  const onAccess =
    accessLog === "none"
      ? undefined
      : accessLog === "stderr"
        ? (record: object) => io.stderr.write(`${JSON.stringify(record)}\n`)
        : (record: object) => log?.write(`${JSON.stringify(record)}\n`);
  if (accessLog !== "none" && accessLog !== "stderr")
    log = createWriteStream(accessLog, { flags: "a", mode: 0o600 });
  try {
    if (typeof options.redis === "string") await shareUpstreams(options.redis, started, io);
    const gateway = createGateway({ ...started.options, onAccess });
    const server = await listen(gateway, {
      host: started.listen.host,
      port: started.listen.port ?? DEFAULT_PORT,
      graceMs: started.listen.graceMs,
      // This process only serves: the adapter's lighter Request/Response save CPU per call.
      overrideGlobalObjects: true,
    });
    const upstreams = gateway
      .status()
      .upstreams.map((u) => `${u.name} (${u.provider}, ${safeUrl(u.baseUrl)})`)
      .join(", ");
    const tenants = started.options.tenants?.length ?? 0;
    io.stdout.write(
      `${server.baseUrl}\n` +
        `salvo serve: listening on ${server.origin}: ${upstreams}; ${tenants === 0 ? "no tenants (open, loopback only)" : `${tenants} tenant(s), keys required`}\n` +
        `OPENAI_BASE_URL=${server.baseUrl}\n` +
        `ANTHROPIC_BASE_URL=${server.origin}\n` +
        `dashboard ${server.origin}/  metrics ${server.origin}/metrics  status ${server.origin}/salvo/status (Ctrl-C to stop)\n` +
        `batch APIs (files, batches, message batches): state in ${started.options.stateDir}; a restart resumes every batch\n`,
    );
    await untilAborted(io.signal);
    io.stderr.write(
      `salvo serve: stopping: no new calls; finishing ${gateway.active} call(s) in flight (up to ${Math.round(started.listen.graceMs / 1000)}s)\n`,
    );
    const { abandoned } = await server.close(started.listen.graceMs);
    const totals = gateway.status().upstreams.map((u) => {
      const answered = Object.values(u.calls.byStatus).reduce((a, b) => a + b, 0);
      return `${u.name}: ${u.calls.requests} requests, ${answered} answered, ${u.attempts} attempts, ${u.rateLimited} upstream 429s`;
    });
    io.stdout.write(
      `salvo serve: stopped${abandoned > 0 ? `; ${abandoned} call(s) still running at the end of the grace period were aborted` : ""}. ${totals.join("; ")}\n`,
    );
    return abandoned > 0 ? 1 : 0;
  } finally {
    for (const step of started.cleanup) await step();
    await new Promise<void>((resolve) => (log ? log.end(() => resolve()) : resolve()));
  }
}

/** The gateway's options from --config or from the flags (and SALVO_* variables). */
async function settingsFrom(options: Record<string, unknown>, io: CliIo): Promise<Started> {
  const { openCallLog } = await import("../../audit/call-log.ts");
  const { ResponseCache } = await import("../../cache/response-cache.ts");
  const { Pricing } = await import("../../cost/pricing.ts");
  const { rateOptionsFromSettings, resolveRunSettings, startSimulatorFor, SIM_KEY } = await import(
    "../../config/run-settings.ts"
  );
  const { parseDurationMs } = await import("../../providers/rate-limit-headers.ts");
  const cleanup: Array<() => Promise<void>> = [];
  const { config, host, port, grace, accessLog, state, redis: _redis, ...flags } = options;
  const stateDir = await stateDirFrom(state, io.env);
  const duration = (raw: unknown, flag: string): number => {
    const ms = parseDurationMs(String(raw));
    if (ms === undefined || !(ms > 0))
      throw new ConfigError({
        field: flag,
        expected: "a duration such as 30s, 500ms, 2m (a bare number is seconds)",
        got: raw,
        where: "command line",
      });
    return ms;
  };
  const listenFrom = (fileHost?: string, filePort?: number, fileGrace?: number) => ({
    host: typeof host === "string" ? host : fileHost,
    port: port === undefined ? filePort : integer(port, "--port", 0, 65_535),
    graceMs: grace === undefined ? (fileGrace ?? RUN_DEFAULTS.graceMs) : duration(grace, "--grace"),
  });
  const openAudit = async (file: string, content: "full" | "hash" | "none") => {
    const log = await openCallLog(file, { content, env: io.env });
    cleanup.push(() => log.close());
    return log;
  };
  const openCache = async (dir: string, ttlMs: number | undefined) =>
    ResponseCache.open(dir, {
      ttlMs,
      onError: (error, operation) =>
        io.stderr.write(
          `salvo serve: warning: response cache ${operation} failed in ${dir}: ${(error as Error).message}\n`,
        ),
    });

  if (typeof config === "string") {
    const given = UPSTREAM_FLAGS.filter((f) => flags[f] !== undefined);
    if (given.length > 0)
      throw new ConfigError({
        field: FLAG_NAMES[given[0]!] ?? `--${given[0]}`,
        expected: `no upstream flags with --config (set it in ${config}); only --host, --port, --grace, --access-log, --state and --redis go beside it`,
        got: flags[given[0]!],
        where: "command line",
      });
    const { loadGatewayConfig } = await import("../../gateway/gateway-config.ts");
    const file = await loadGatewayConfig(config, io.env);
    return {
      options: {
        upstreams: file.upstreams,
        tenants: file.tenants,
        audit: file.audit ? await openAudit(file.audit.file, file.audit.content) : undefined,
        cache: file.cache ? await openCache(file.cache.dir, file.cache.ttlMs) : undefined,
        shareSamples: file.cache?.force ?? false,
        pricing: new Pricing(file.pricing),
        maxBodyBytes: file.maxBodyBytes,
        stateDir,
      },
      listen: listenFrom(file.listen.host, file.listen.port, file.graceMs),
      accessLog: typeof accessLog === "string" ? accessLog : (file.accessLog ?? "stderr"),
      cleanup,
    };
  }

  if (flags.sim === true) flags.sim = "demo";
  const settings = resolveRunSettings({ flags, env: io.env });
  const timeoutSet = flags.timeout !== undefined || (io.env.SALVO_TIMEOUT ?? "") !== "";
  const maxQueued =
    flags.maxQueue === undefined ? undefined : integer(flags.maxQueue, "--max-queue", 1, 1e9);
  const maxWaitMs = flags.maxWait === undefined ? undefined : duration(flags.maxWait, "--max-wait");
  const models =
    typeof flags.models === "string"
      ? flags.models
          .split(",")
          .map((m) => m.trim())
          .filter((m) => m !== "")
      : undefined;
  const common = {
    models,
    concurrency: settings.concurrency,
    maxConcurrency: settings.maxConcurrency,
    ...rateOptionsFromSettings(settings),
    retry: { maxAttempts: settings.maxAttempts },
    timeoutMs: timeoutSet ? settings.timeoutMs : SERVE_TIMEOUT_MS,
    maxRetryAfterMs: settings.maxRetryAfterMs,
    maxCostUsd: settings.maxCost,
    maxTokens: settings.maxTokensTotal,
    maxQueued,
    maxWaitMs,
  };
  let upstreams: import("../../gateway/upstream.ts").UpstreamOptions[];
  if (settings.sim !== undefined) {
    const sim = await startSimulatorFor(settings.sim);
    cleanup.push(() => sim.close());
    const both = settings.provider === undefined;
    upstreams = [];
    if (both || settings.provider === "openai")
      upstreams.push({ ...common, provider: "openai", baseUrl: sim.baseUrl, apiKey: SIM_KEY });
    if (both || settings.provider === "anthropic")
      upstreams.push({ ...common, provider: "anthropic", baseUrl: sim.origin, apiKey: SIM_KEY });
  } else {
    const provider = settings.provider ?? "openai";
    upstreams = [{ ...common, provider, ...upstreamFrom(provider, settings, io.env) }];
  }
  return {
    options: {
      upstreams,
      audit: settings.audit ? await openAudit(settings.audit, settings.auditContent) : undefined,
      cache: settings.cache ? await openCache(settings.cache, settings.cacheTtlMs) : undefined,
      shareSamples: settings.cacheForce ?? false,
      pricing: new Pricing(settings.pricing),
      stateDir,
    },
    listen: listenFrom(),
    accessLog: typeof accessLog === "string" ? accessLog : "stderr",
    cleanup,
  };
}

/**
 * The batch APIs' state directory: `--state` (created now, 0700, so that one that cannot be used
 * is a usage error before the gateway starts), else the XDG state directory (created by the
 * first batch: a gateway that serves none leaves nothing behind).
 */
async function stateDirFrom(
  raw: unknown,
  env: Record<string, string | undefined>,
): Promise<string> {
  if (typeof raw !== "string")
    return join(
      env.XDG_STATE_HOME && env.XDG_STATE_HOME !== ""
        ? env.XDG_STATE_HOME
        : join(env.HOME ?? homedir(), ".local", "state"),
      "salvo",
      "serve",
    );
  const dir = resolve(raw);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.R_OK | constants.W_OK);
  } catch (error) {
    throw new ConfigError(
      {
        field: "--state",
        expected: "a directory the gateway may create, read and write",
        got: dir,
        where: "command line",
      },
      { cause: error },
    );
  }
  return dir;
}

/**
 * `--redis`: every upstream's admission is shared in Redis (one budget per provider, base URL and
 * key, whichever gateway or worker calls it), and its concurrency follows the shared limit.
 * Redis unreachable at start is a clear error; an outage later pauses admission until it returns.
 */
async function shareUpstreams(url: string, started: Started, io: CliIo): Promise<void> {
  const { RedisConnection } = await import("../../distributed/redis-connection.ts");
  const { SharedAdmission } = await import("../../distributed/shared-admission.ts");
  const { SharedConcurrency } = await import("../../distributed/shared-concurrency.ts");
  const { upstreamKey } = await import("../../distributed/upstream-key.ts");
  const connection = await RedisConnection.open(url, { name: "salvo-serve" });
  const admissions: Array<{ close(): Promise<void> }> = [];
  started.cleanup.unshift(async () => {
    for (const admission of admissions) await admission.close();
    await connection.close();
  });
  for (const upstream of started.options.upstreams) {
    const concurrency = upstream.concurrency;
    if (concurrency !== undefined && typeof concurrency === "object")
      throw new ConfigError({
        field: "--redis",
        expected: "upstreams whose concurrency is a number or auto",
        got: upstream.name ?? upstream.provider,
      });
    const admission = await SharedAdmission.open({
      redis: connection,
      key: upstreamKey(upstream.provider, upstream.baseUrl, upstream.apiKey),
      requestsPerMinute: upstream.requestsPerMinute,
      tokensPerMinute: upstream.tokensPerMinute,
      inputTokensPerMinute: upstream.inputTokensPerMinute,
      outputTokensPerMinute: upstream.outputTokensPerMinute,
      burstSeconds: upstream.burstSeconds,
      concurrency: concurrency ?? "auto",
      maxConcurrency: upstream.maxConcurrency,
      onWarning: (message) => io.stderr.write(`salvo serve: warning: ${message}\n`),
    });
    admissions.push(admission);
    upstream.gate = admission;
    upstream.concurrency = new SharedConcurrency(admission);
  }
}

const KEY_ENV = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" } as const;
const BASE_URL_ENV = { openai: "OPENAI_BASE_URL", anthropic: "ANTHROPIC_BASE_URL" } as const;
const DEFAULT_BASE_URL = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
} as const;

/**
 * The upstream's base URL and key: `--base-url` or the provider's variable, the key from
 * `--api-key-env` or the provider's variable. A local server (loopback) needs no key; another
 * does, and its absence is an error naming the variable (never a value).
 */
function upstreamFrom(
  provider: "openai" | "anthropic",
  settings: { baseUrl: string | undefined; apiKeyEnv: string | undefined },
  env: Record<string, string | undefined>,
): { baseUrl: string; apiKey: string } {
  const baseUrl = settings.baseUrl ?? env[BASE_URL_ENV[provider]] ?? DEFAULT_BASE_URL[provider];
  const keyEnv = settings.apiKeyEnv ?? KEY_ENV[provider];
  const key = env[keyEnv];
  if (key !== undefined && key !== "") return { baseUrl, apiKey: key };
  const host = new URL(baseUrl).hostname;
  if (/^(127(\.\d{1,3}){3}|::1|\[::1\]|localhost)$/i.test(host))
    return { baseUrl, apiKey: "not-needed" };
  throw new ConfigError({
    field: keyEnv,
    expected: `the upstream's ${provider} API key in the environment variable ${keyEnv} (or --api-key-env NAME; a loopback --base-url needs none)`,
    got: undefined,
    where: "environment",
  });
}
