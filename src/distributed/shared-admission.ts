// The admission of one upstream (provider, base URL, key) shared by every process that calls it,
// on Redis: the scheduler's `AdmissionGate` (core/admission-gate.ts), the Redis implementation of
// what its local buckets, slots and cooldown do in one process (STYLE.md §2).
//
// Why a gate and not a second scheduler: the local scheduler keeps its queue order, retries,
// timeouts and events; for each attempt it has admitted locally it asks this gate, which takes a
// shared slot (a lease) and every rate dimension at once in one Lua script (admission-scripts.ts),
// and tells it, after the call, what the call really used, what the provider's headers said and
// whether it was a 429 (one more script). So:
// - Round trips: one for admission, one for the reconcile, per attempt (a pass its process was too
//   late to use in step costs one more of each: see `admit`). A rate the budget cannot
//   meet now is reserved ahead (the script says when to start); a slot that is not free queues
//   the attempt in Redis, and the slot is handed over by the script that frees it, heard on this
//   process's channel: waiting costs no round trips. Only a waiter that hears nothing for
//   `checkAfterMs` asks again (a message lost while the subscriber reconnected).
// - A local slot is held while the attempt waits for a shared one; its timeout and latency count
//   from the grant (the gate contract), so waiting for other processes is not a slow call.
// - A retry is a new attempt: it re-enters the local admission, then this one.
// - Leases are renewed by their holder every `leaseTtlMs / 3`; a dead process's leases expire
//   within `leaseTtlMs` and its queued attempts are skipped (its heartbeat stops).
// - `concurrency: "auto"`: the limit is one number in Redis, moved by every process's outcomes in
//   the reconcile script (AIMD: slow start, +1 per round trip, x0.7 on a 429, x0.5 on overload or
//   timeout, at most once per round trip, under a Little's-law ceiling from the rate limits). Every
//   process reads the same value on each reply, so they agree by construction.
// - Redis unavailable mid-run: commands wait for it (RedisConnection); admission pauses and resumes
//   when it returns; reconciles are sent then. Scripts are idempotent per attempt id, so a command
//   resent after a lost reply is harmless.
import { hostname } from "node:os";
import type { AdmissionGate, GatePass, GateReport, GateRequest } from "../core/admission-gate.ts";
import { type Clock, realClock, sleepOn } from "../core/clock.ts";
import type { Charge } from "../core/limits/limit.ts";
import type { Random } from "../core/random.ts";
import { ConfigError, type RateDimension, RequestTooLargeError } from "../errors.ts";
import { ADMISSION_SCRIPTS, type AdmissionScript, admissionKeys } from "./admission-scripts.ts";
import type { RedisConnection } from "./redis-connection.ts";

export type SharedAdmissionOptions = {
  /** The Redis connection (its owner closes it, after this). */
  redis: RedisConnection;
  /**
   * Names the upstream whose budget is shared: every process that admits under the same key
   * shares one set of limits (see `upstreamKey`). Not a secret: a digest.
   */
  key: string;
  /** Requests per minute. @default none (learned from headers when `learnLimits`) */
  requestsPerMinute?: number | undefined;
  /** Input + output tokens per minute (OpenAI TPM). @default none */
  tokensPerMinute?: number | undefined;
  /** Input tokens per minute (Anthropic ITPM). @default none */
  inputTokensPerMinute?: number | undefined;
  /** Output tokens per minute (Anthropic OTPM). @default none */
  outputTokensPerMinute?: number | undefined;
  /** Seconds of each per-minute limit the shared buckets hold, in (0, 60]. @default 1 */
  burstSeconds?: number | undefined;
  /**
   * How much arrival jitter between processes the buckets absorb, ms: they hold what refills in
   * this long less than the provider's (at most half of it), so requests paced at exactly the
   * limit by several processes, reaching the provider a little out of step, still find room.
   * The rate stays the limit's; only the first burst is that much smaller. @default 250
   */
  jitterAllowanceMs?: number | undefined;
  /** Create or lower a limit from the providers' rate-limit headers. @default true */
  learnLimits?: boolean | undefined;
  /** Shared calls in flight: a number, or `auto` (one AIMD limit for all processes). @default "auto" */
  concurrency?: number | "auto" | undefined;
  /** `auto`'s lowest, starting and highest limit. @default 1, 4, 256 */
  minConcurrency?: number | undefined;
  initialConcurrency?: number | undefined;
  maxConcurrency?: number | undefined;
  /** How long a lease outlives its holder's last renewal, ms; renewed every third of it. @default 10_000 */
  leaseTtlMs?: number | undefined;
  /** How long a 429 without a Retry-After pauses every process, ms. @default 1_000 */
  cooldownMs?: number | undefined;
  /** Jitter of a pause, as a fraction of it. @default 0.1 */
  cooldownJitter?: number | undefined;
  /** After how long without a grant message a waiter asks where it stands, ms. @default 5_000 */
  checkAfterMs?: number | undefined;
  /** Where the state lives: `<keyPrefix>{<key>}:...`. @default "salvo:admission:" */
  keyPrefix?: string | undefined;
  /** The clock for sleeps and waits (Redis keeps its own for the buckets). @default realClock */
  clock?: Clock | undefined;
  random?: Random | undefined;
  /** Told when another process had set other limits for this key (the newest settings win). */
  onWarning?: ((message: string) => void) | undefined;
};

/** What a shared admission did, for reports and the scale-out bench. */
export type SharedAdmissionStats = {
  /** Attempts that asked (`admit` calls). */
  admissions: number;
  /** Attempts admitted. */
  admitted: number;
  /** Attempts that had to wait in Redis's queue for a slot. */
  queued: number;
  /** Redis round trips by script (one each). */
  roundTrips: {
    init: number;
    admit: number;
    check: number;
    cancel: number;
    reconcile: number;
    renew: number;
  };
  /** Time from asking to starting, summed over admitted attempts, ms (slots, rates, cooldowns). */
  waitMs: number;
  /**
   * Passes given back unused because this process woke too late to send them in step (its event
   * loop stalled past its start by more than half the jitter allowance): each was asked again.
   */
  late: number;
  /** Leases Redis had lost (an outage longer than their TTL, a restart) that their holder put back. */
  leasesRestored: number;
};

/**
 * How late a pass may start before it is given back, at least, ms: a timer fires a little late
 * even on an idle machine, and a zero allowance must not make every reserved start a re-ask.
 */
const LATE_FLOOR_MS = 20;
/** Passes given back per attempt at most: a process starved for longer sends anyway. */
const MAX_LATE_RETURNS = 2;

const DIMENSIONS: readonly RateDimension[] = ["requests", "tokens", "inputTokens", "outputTokens"];
const NOTHING: Charge = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 };

type Reply = {
  status: number;
  a: string;
  b: string;
  c: string;
  limit: number;
  leases: number;
  coolMs: number;
};

type Waiter = {
  resolve: (waitMs: number) => void;
  reject: (error: unknown) => void;
};

type Held = { charge: Charge };

type ScriptCall = (...args: Array<string | number>) => Promise<unknown>;

function chargeArgs(charge: Readonly<Charge>): string[] {
  return [charge.requests, charge.tokens, charge.inputTokens, charge.outputTokens].map(String);
}

function positive(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0)
    throw new ConfigError({ field, expected: "a finite number > 0", got: value });
  return value;
}

export class SharedAdmission implements AdmissionGate {
  readonly key: string;
  readonly #redis: RedisConnection;
  readonly #subscriber: import("ioredis").Redis;
  readonly #keys: string[];
  readonly #prefix: string;
  readonly #worker: string;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #ttlMs: number;
  readonly #checkAfterMs: number;
  readonly #cooldownMs: number;
  readonly #cooldownJitter: number;
  /** A pass whose start this process overslept by more than this is given back, ms. */
  readonly #lateAfterMs: number;
  /** The fastest ADMIT round trip yet, ms: the reply's normal delay, not lateness. */
  #fastestRoundTripMs = Number.POSITIVE_INFINITY;
  readonly #held = new Map<string, Held>();
  readonly #waiters = new Map<string, Waiter>();
  /** Grants heard before their ADMIT reply (the subscriber and the command connection race). */
  readonly #early = new Map<string, string[]>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #limitListeners = new Set<(limit: number) => void>();
  #limit = 1;
  #cooldownUntil = Number.NEGATIVE_INFINITY;
  #seq = 0;
  #renewTimer: unknown;
  #offAvailability: (() => void) | undefined;
  /** The INIT script's arguments, to put the settings back if Redis loses them. */
  #init: string[] = [];
  #closed = false;
  readonly #stats: SharedAdmissionStats = {
    admissions: 0,
    admitted: 0,
    queued: 0,
    roundTrips: { init: 0, admit: 0, check: 0, cancel: 0, reconcile: 0, renew: 0 },
    waitMs: 0,
    late: 0,
    leasesRestored: 0,
  };

  private constructor(
    options: SharedAdmissionOptions,
    subscriber: import("ioredis").Redis,
    prefix: string,
  ) {
    this.key = options.key;
    this.#redis = options.redis;
    this.#subscriber = subscriber;
    this.#prefix = prefix;
    this.#keys = admissionKeys(prefix);
    this.#worker = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#ttlMs = positive("leaseTtlMs", options.leaseTtlMs, 10_000);
    this.#checkAfterMs = positive("checkAfterMs", options.checkAfterMs, 5_000);
    this.#cooldownMs = options.cooldownMs ?? 1_000;
    this.#cooldownJitter = options.cooldownJitter ?? 0.1;
    this.#lateAfterMs = Math.max(LATE_FLOOR_MS, (options.jitterAllowanceMs ?? 250) / 2);
  }

  /**
   * Registers this process for the upstream's shared admission: sets the limits (if another
   * process had set other ones, these win and `onWarning` says so), subscribes to its grants and
   * cooldowns, and starts renewing its leases. Rejects with a ConfigError on a bad option.
   */
  static async open(options: SharedAdmissionOptions): Promise<SharedAdmission> {
    const limits = {
      requests: options.requestsPerMinute,
      tokens: options.tokensPerMinute,
      inputTokens: options.inputTokensPerMinute,
      outputTokens: options.outputTokensPerMinute,
    };
    for (const [dimension, value] of Object.entries(limits))
      if (value !== undefined) positive(`${dimension} per minute`, value, 1);
    const burst = options.burstSeconds ?? 1;
    if (!(burst > 0 && burst <= 60))
      throw new ConfigError({ field: "burstSeconds", expected: "a number in (0, 60]", got: burst });
    const concurrency = options.concurrency ?? "auto";
    if (concurrency !== "auto" && !(Number.isInteger(concurrency) && concurrency >= 1))
      throw new ConfigError({
        field: "concurrency",
        expected: "an integer >= 1, or auto",
        got: concurrency,
      });
    const min = options.minConcurrency ?? 1;
    const max = options.maxConcurrency ?? 256;
    const initial = Math.min(max, Math.max(min, options.initialConcurrency ?? 4));
    if (!(Number.isInteger(min) && min >= 1 && Number.isInteger(max) && max >= min))
      throw new ConfigError({
        field: "maxConcurrency",
        expected: `integers with 1 <= min <= max`,
        got: { min, max },
      });
    if (!/^[A-Za-z0-9:._-]{1,128}$/.test(options.key))
      throw new ConfigError({
        field: "key",
        expected: "1 to 128 letters, digits, ':', '.', '_' or '-'",
        got: options.key,
      });
    const client = options.redis.client;
    for (const [name, lua] of Object.entries(ADMISSION_SCRIPTS))
      if (typeof (client as unknown as Record<string, unknown>)[name] !== "function")
        client.defineCommand(name, { numberOfKeys: 6, lua });
    const prefix = `${options.keyPrefix ?? "salvo:admission:"}{${options.key}}:`;
    const subscriber = await options.redis.duplicate("salvo-admission-events");
    const admission = new SharedAdmission(options, subscriber, prefix);
    try {
      const jitter = options.jitterAllowanceMs ?? 250;
      if (!(jitter >= 0))
        throw new ConfigError({
          field: "jitterAllowanceMs",
          expected: "a number >= 0",
          got: jitter,
        });
      const signature = JSON.stringify({
        limits,
        burst,
        jitter,
        ttl: admission.#ttlMs,
        concurrency,
        ...(concurrency === "auto" ? { min, max, initial } : {}),
      });
      const init = [
        admission.#worker,
        signature,
        String(burst),
        String(admission.#ttlMs),
        options.learnLimits === false ? "0" : "1",
        concurrency === "auto" ? "auto" : "static",
        String(concurrency === "auto" ? initial : concurrency),
        String(concurrency === "auto" ? min : concurrency),
        String(concurrency === "auto" ? max : concurrency),
        ...DIMENSIONS.map((d) => (limits[d] === undefined ? "" : String(limits[d]))),
        String(jitter),
      ];
      admission.#init = init;
      const reply = await admission.#run("salvoAdmissionInit", "init", [...init, "0"]);
      // A Redis that comes back without its data (no persistence) has no limits: this process
      // puts its settings back (unless another already did), so nothing runs unlimited.
      admission.#offAvailability = options.redis.onAvailability((up) => {
        if (up && !admission.#closed)
          admission.#track(admission.#run("salvoAdmissionInit", "init", [...init, "1"]));
      });
      if (reply.status === 1 && reply.a !== "")
        options.onWarning?.(
          `the shared limits of upstream ${options.key} were ${reply.a}; this process sets ${signature} for every process sharing it`,
        );
      subscriber.on("message", (channel: string, message: string) =>
        admission.#onMessage(channel, message),
      );
      await subscriber.subscribe(`${prefix}grant:${admission.#worker}`, `${prefix}cooldown`);
      admission.#scheduleRenewal();
      return admission;
    } catch (error) {
      subscriber.disconnect();
      throw error;
    }
  }

  /** The shared concurrency limit as last heard from Redis. */
  get limit(): number {
    return this.#limit;
  }

  /** Calls `listener` when the shared concurrency limit changes; returns an unsubscribe. */
  onLimit(listener: (limit: number) => void): () => void {
    this.#limitListeners.add(listener);
    return () => this.#limitListeners.delete(listener);
  }

  /** How long Redis was unreachable while this process used it, ms. */
  get unavailableMs(): number {
    return this.#redis.unavailableMs;
  }

  stats(): SharedAdmissionStats {
    return { ...this.#stats, roundTrips: { ...this.#stats.roundTrips } };
  }

  async admit(request: GateRequest): Promise<GatePass> {
    const { signal } = request;
    signal.throwIfAborted();
    if (this.#closed) throw new Error("SharedAdmission: admit after close");
    const asked = this.#clock.now();
    this.#stats.admissions++;
    const charge = { ...request.charge };
    const attempt = { queued: false };
    for (let returned = 0; ; returned++) {
      const id = `${this.#worker}:${(this.#seq++).toString(36)}`;
      const lateMs = await this.#take(id, charge, signal, attempt);
      // Paced at the limit, the buckets absorb `jitterAllowanceMs` of arrival jitter, no more: a
      // process that starts much later than its reserved start (its event loop stalled: a busy
      // machine) would send requests reserved apart together, and the provider's bucket would
      // refuse them. Such a pass gives its slot back and is asked again, at the back of the
      // line. Its charge stays spent: refunded, the next late pass (or this one, asking again)
      // would take it straight back and start at once, and passes late together would still go
      // together. What is lost is one request's share of the budget, on a stall.
      if (lateMs > this.#lateAfterMs && returned < MAX_LATE_RETURNS) {
        this.#stats.late++;
        this.#end(id, {
          started: false,
          result: "cancelled",
          latencyMs: 0,
          reserved: NOTHING,
          charged: NOTHING,
          usageReported: false,
          snapshot: undefined,
          retryAfterMs: undefined,
        });
        if (this.#closed) throw new Error("SharedAdmission: closed while admitting");
        signal.throwIfAborted();
        continue;
      }
      this.#stats.admitted++;
      this.#stats.waitMs += this.#clock.now() - asked;
      let ended = false;
      return {
        end: (report) => {
          if (ended) return;
          ended = true;
          this.#end(id, report);
        },
      };
    }
  }

  /**
   * Takes a shared slot and the charge for `id`, waiting for both; resolves once it may start,
   * with how much later than its reserved start this process got there, ms. An attempt that
   * waits in Redis's queue for a slot is counted once in `queued`, however many times it asks.
   */
  async #take(
    id: string,
    charge: Charge,
    signal: AbortSignal,
    attempt: { queued: boolean },
  ): Promise<number> {
    const sentAt = this.#clock.now();
    const reply = await this.#unlessAborted(this.#ask(id, charge), signal, () => this.#cancel(id));
    let due: number;
    if (reply.status === 1) {
      // Redis reserved the start while the command was on its way; at this process's fastest
      // round trip its reply would have been here then: any more is this process's own delay
      // (an event loop stalled before it read the reply), and counts as lateness.
      const roundTrip = this.#clock.now() - sentAt;
      if (roundTrip < this.#fastestRoundTripMs) this.#fastestRoundTripMs = roundTrip;
      due = sentAt + this.#fastestRoundTripMs + Number(reply.a);
    } else if (reply.status === 0) {
      if (!attempt.queued) {
        attempt.queued = true;
        this.#stats.queued++;
      }
      // A grant's start is counted from when it is heard (its send time is Redis's own).
      const waitMs = await this.#waitForGrant(id, charge, signal);
      due = this.#clock.now() + waitMs;
    } else if (reply.status === -1) {
      throw tooLarge(reply.a, reply.b, reply.c);
    } else {
      throw new Error(`SharedAdmission: Redis answered ${reply.status} to a new admission`);
    }
    this.#held.set(id, { charge });
    try {
      return await this.#sleepUntil(due, signal);
    } catch (error) {
      this.#held.delete(id);
      void this.#cancel(id);
      throw error;
    }
  }

  /**
   * Stops renewing, waits (up to `timeoutMs`) for the reconciles not yet acknowledged, and leaves
   * the grant channel. Leases still held expire within the TTL.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offAvailability?.();
    if (this.#renewTimer !== undefined) this.#clock.clearTimeout(this.#renewTimer);
    for (const [id, waiter] of this.#waiters) {
      this.#waiters.delete(id);
      void this.#cancel(id);
      waiter.reject(new Error("SharedAdmission closed"));
    }
    const pending = Promise.allSettled([...this.#pending]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      pending,
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    this.#subscriber.disconnect();
  }

  // --- Redis ---

  async #run(
    script: AdmissionScript,
    count: keyof SharedAdmissionStats["roundTrips"],
    args: string[],
  ) {
    this.#stats.roundTrips[count]++;
    const call = (this.#redis.client as unknown as Record<AdmissionScript, ScriptCall>)[script];
    const raw = (await call.call(
      this.#redis.client,
      ...this.#keys,
      this.#prefix,
      ...args,
    )) as Array<string | number>;
    const reply: Reply = {
      status: Number(raw[0]),
      a: String(raw[1] ?? ""),
      b: String(raw[2] ?? ""),
      c: String(raw[3] ?? ""),
      limit: Number(raw[4]),
      leases: Number(raw[5]),
      coolMs: Number(raw[6]),
    };
    this.#heard(reply);
    return reply;
  }

  /**
   * The ADMIT script; if Redis has lost the settings (a restart without persistence), puts them
   * back and asks again, so no attempt is ever admitted without limits.
   */
  async #ask(id: string, charge: Charge): Promise<Reply> {
    for (;;) {
      const reply = await this.#run("salvoAdmissionAdmit", "admit", [
        id,
        this.#worker,
        ...chargeArgs(charge),
      ]);
      if (reply.status !== -4) return reply;
      await this.#run("salvoAdmissionInit", "init", [...this.#init, "1"]);
    }
  }

  /** Every reply carries the shared limit and cooldown: this process follows them. */
  #heard(reply: Reply): void {
    const limit = Math.max(1, Math.floor(reply.limit));
    if (Number.isFinite(limit) && limit !== this.#limit) {
      this.#limit = limit;
      for (const listener of this.#limitListeners) listener(limit);
    }
    if (reply.coolMs > 0) this.#coolUntil(this.#clock.now() + reply.coolMs);
  }

  #coolUntil(until: number): void {
    if (until > this.#cooldownUntil) this.#cooldownUntil = until;
  }

  /** Tracks a command whose reply nobody waits for (reconcile, cancel), so close() can. */
  #track(promise: Promise<unknown>): void {
    const tracked = promise.catch(() => {}).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  #cancel(id: string): Promise<unknown> {
    const cancelled = this.#run("salvoAdmissionCancel", "cancel", [id, this.#worker]);
    this.#track(cancelled);
    return cancelled.catch(() => undefined);
  }

  #end(id: string, report: GateReport): void {
    this.#held.delete(id);
    const readings: string[] = [];
    for (const dimension of DIMENSIONS) {
      const reading = report.snapshot?.[dimension];
      const value = (n: number | undefined) =>
        n !== undefined && Number.isFinite(n) ? String(n) : "";
      readings.push(
        value(reading?.limit),
        value(reading?.remaining),
        value(reading?.resetMs),
        reading?.fixedWindow === true ? "1" : "0",
      );
    }
    const factor = 1 + this.#random() * this.#cooldownJitter;
    this.#track(
      this.#run("salvoAdmissionReconcile", "reconcile", [
        id,
        this.#worker,
        report.started ? "1" : "0",
        report.result,
        String(Math.max(0, report.latencyMs)),
        ...chargeArgs(report.reserved),
        ...chargeArgs(report.charged),
        report.retryAfterMs === undefined ? "" : String(report.retryAfterMs),
        String(this.#cooldownMs),
        String(factor),
        ...readings,
      ]),
    );
  }

  #scheduleRenewal(): void {
    if (this.#closed) return;
    this.#renewTimer = this.#clock.setTimeout(() => {
      const args = [this.#worker];
      for (const [id, held] of this.#held) args.push(id, ...chargeArgs(held.charge), "0");
      const renewed = this.#run("salvoAdmissionRenew", "renew", args).then((reply) => {
        this.#stats.leasesRestored += reply.status;
      });
      this.#track(renewed);
      // The next renewal waits for this one: an outage does not pile renewals up.
      void renewed.finally(() => this.#scheduleRenewal());
    }, this.#ttlMs / 3);
  }

  // --- waiting ---

  /** Resolves with `promise`, or rejects with the signal's reason; then `cleanup` once it settles. */
  async #unlessAborted<T>(
    promise: Promise<T>,
    signal: AbortSignal,
    cleanup: () => unknown,
  ): Promise<T> {
    if (signal.aborted) {
      void promise.then(cleanup, () => {});
      throw signal.reason;
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        void promise.then(cleanup, () => {});
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      promise.then(
        (value) => {
          signal.removeEventListener("abort", onAbort);
          if (!signal.aborted) resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(error);
        },
      );
    });
  }

  /** Waits for the slot to be handed over (a grant message), asking again if none comes. */
  #waitForGrant(id: string, charge: Charge, signal: AbortSignal): Promise<number> {
    if (signal.aborted) {
      void this.#cancel(id);
      return Promise.reject(signal.reason);
    }
    return new Promise<number>((resolve, reject) => {
      let timer: unknown;
      const finish = () => {
        this.#waiters.delete(id);
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        finish();
        void this.#cancel(id);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        resolve: (waitMs) => {
          finish();
          resolve(waitMs);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      const check = () => {
        timer = undefined;
        if (!this.#waiters.has(id)) return;
        const asked = this.#run("salvoAdmissionCheck", "check", [id, this.#worker]).then(
          async (reply) => {
            if (!this.#waiters.has(id)) return;
            if (reply.status === 1) waiter.resolve(Number(reply.a));
            else if (reply.status === 0) arm();
            else if (reply.status === -3) {
              // Redis lost the queue (a restart without persistence): ask afresh, same id.
              const again = await this.#ask(id, charge);
              if (!this.#waiters.has(id)) return;
              if (again.status === 1) waiter.resolve(Number(again.a));
              else if (again.status === -1) waiter.reject(tooLarge(again.a, again.b, again.c));
              else arm();
            } else
              waiter.reject(new Error(`SharedAdmission: waiter ${id} ended (${reply.status})`));
          },
        );
        asked.catch((error: unknown) => waiter.reject(error));
      };
      const arm = () => {
        timer = this.#clock.setTimeout(check, this.#checkAfterMs);
      };
      this.#waiters.set(id, waiter);
      signal.addEventListener("abort", onAbort, { once: true });
      const early = this.#early.get(id);
      if (early !== undefined) {
        this.#early.delete(id);
        this.#grant(id, early);
        return;
      }
      arm();
    });
  }

  #onMessage(channel: string, message: string): void {
    if (channel === `${this.#prefix}cooldown`) {
      const ms = Number(message);
      if (Number.isFinite(ms) && ms > 0) this.#coolUntil(this.#clock.now() + ms);
      return;
    }
    const [id, ...rest] = message.split(" ");
    if (id === undefined) return;
    if (!this.#waiters.has(id)) {
      // Heard before the ADMIT reply that queued it: kept for a moment.
      this.#early.set(id, rest);
      if (this.#early.size > 1_000) this.#early.delete(this.#early.keys().next().value as string);
      return;
    }
    this.#grant(id, rest);
  }

  #grant(id: string, fields: string[]): void {
    const waiter = this.#waiters.get(id);
    if (waiter === undefined) return;
    if (fields[0] === "-1") waiter.reject(tooLarge(fields[1], fields[2], fields[3]));
    else waiter.resolve(Math.max(0, Number(fields[0]) || 0));
  }

  /**
   * Sleeps until `at`, and past any shared cooldown heard meanwhile; resolves with how late it
   * got there, ms (0 if on time).
   */
  async #sleepUntil(at: number, signal: AbortSignal): Promise<number> {
    for (;;) {
      const target = Math.max(at, this.#cooldownUntil);
      const now = this.#clock.now();
      if (now >= target) return now - target;
      if (!(await sleepOn(this.#clock, target - now, signal))) throw signal.reason;
    }
  }
}

function tooLarge(
  dimension: string | undefined,
  limit: string | undefined,
  cost: string | undefined,
) {
  const names: Record<string, RateDimension> = {
    r: "requests",
    t: "tokens",
    i: "inputTokens",
    o: "outputTokens",
  };
  return new RequestTooLargeError({
    dimension: names[dimension ?? ""],
    limit: Number(limit),
    cost: Number(cost),
  });
}
