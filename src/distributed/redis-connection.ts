// A connection to the Redis that holds a scale-out's shared state (admission, batch queues). It
// fails fast and clearly at start (Redis is not there: `RedisUnavailableError`), and once up it
// rides out outages: commands wait in ioredis's offline queue and go out when Redis returns, and
// the time Redis was unreachable is counted (the summary reports it as paused admission).
// ioredis is loaded here, lazily: nothing imports it unless a `--redis` option is given.
import type { Redis, RedisOptions } from "ioredis";
import { ConfigError, RedisUnavailableError } from "../errors.ts";

/** The URL with its password (if any) replaced by `***`: what messages and reports show. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(an unparsable URL)";
  }
}

/** Checks a `--redis` value: `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS). */
export function checkRedisUrl(url: string, field = "--redis"): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !["redis:", "rediss:"].includes(parsed.protocol) || !parsed.hostname)
    throw new ConfigError({
      field,
      expected: "a Redis URL such as redis://127.0.0.1:6379 (or rediss:// for TLS)",
      got: parsed === undefined ? "(not a URL)" : redactRedisUrl(url),
    });
  return url;
}

export type RedisConnectionOptions = {
  /** How long to wait for the first connection before giving up, ms. @default 5_000 */
  connectTimeoutMs?: number | undefined;
  /** A name for the connection in `CLIENT LIST` (debugging). @default "salvo" */
  name?: string | undefined;
};

/**
 * One Redis client, and the record of its outages. `client` is an ioredis `Redis` whose commands
 * wait while it reconnects (they are never failed for being offline).
 */
export class RedisConnection {
  readonly url: string;
  /** @internal The ioredis client (its types are not part of Salvo's public ones). */
  readonly client: Redis;
  #downSince: number | undefined;
  #unavailableMs = 0;
  #outages = 0;
  #closed = false;
  readonly #listeners = new Set<(up: boolean) => void>();

  private constructor(url: string, client: Redis) {
    this.url = url;
    this.client = client;
    client.on("close", () => this.#down());
    client.on("ready", () => this.#up());
    // ioredis reports a lost connection on `error` too; the outage is counted by `close`.
    client.on("error", () => {});
  }

  /**
   * Connects to `url`; rejects with RedisUnavailableError if Redis cannot be reached (or refuses
   * the credentials) within the timeout. Once connected, reconnects for ever.
   */
  static async open(url: string, options: RedisConnectionOptions = {}): Promise<RedisConnection> {
    checkRedisUrl(url);
    const client = await connectClient(url, options);
    return new RedisConnection(url, client);
  }

  /**
   * @internal Another connection to the same server with the same behaviour (for blocking or
   * pub/sub use).
   */
  async duplicate(name: string): Promise<Redis> {
    return connectClient(this.url, { name });
  }

  /** Whether the connection is up now. */
  get available(): boolean {
    return this.#downSince === undefined;
  }

  /** How long Redis has been unreachable in all, ms (an ongoing outage counted up to now). */
  get unavailableMs(): number {
    return this.#unavailableMs + (this.#downSince === undefined ? 0 : Date.now() - this.#downSince);
  }

  /** How many times the connection was lost. */
  get outages(): number {
    return this.#outages;
  }

  /** Called with false when the connection is lost and true when it is back. */
  onAvailability(listener: (up: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends QUIT (after the commands already sent) and stops reconnecting. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#up();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  #down(): void {
    if (this.#closed || this.#downSince !== undefined) return;
    this.#downSince = Date.now();
    this.#outages++;
    for (const listener of this.#listeners) listener(false);
  }

  #up(): void {
    if (this.#downSince === undefined) return;
    this.#unavailableMs += Date.now() - this.#downSince;
    this.#downSince = undefined;
    for (const listener of this.#listeners) listener(true);
  }
}

/**
 * A connected ioredis client. Until it first connects, a failure ends the attempt (a clear error
 * now beats waiting for ever); from then on it reconnects with a short backoff, and commands
 * wait for it (`maxRetriesPerRequest: null`, which BullMQ's workers need too).
 */
async function connectClient(url: string, options: RedisConnectionOptions): Promise<Redis> {
  const { Redis: RedisClient } = await import("ioredis");
  let connected = false;
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    connectionName: options.name ?? "salvo",
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: (times) => (connected ? Math.min(50 * times, 1_000) : null),
  };
  const client = new RedisClient(url, redisOptions);
  let lastError: unknown;
  const onError = (error: unknown) => {
    lastError = error;
  };
  client.on("error", onError);
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    const cause = lastError ?? error;
    const reason =
      (cause as { code?: unknown }).code ??
      (cause instanceof Error ? cause.message : String(cause));
    throw new RedisUnavailableError(
      `cannot reach Redis at ${redactRedisUrl(url)} (${String(reason)}): start redis-server there, or give --redis the URL of a running one`,
      { url: redactRedisUrl(url) },
      { cause },
    );
  } finally {
    client.off("error", onError);
  }
  connected = true;
  client.on("error", () => {}); // reconnection errors: counted as outages by RedisConnection
  return client;
}
