// Adaptive concurrency (`concurrency: "auto"`): finds the limit where the provider gets the most
// done, measured as the user pays for it (throughput, and each call's latency), and follows it.
// What `salvo probe` learns offline, this learns while the work runs:
//
// - Throughput at a limit. Each epoch holds the limit at one value with the pipe full and reads
//   the effective parallelism P (see epoch.ts): by Little's law, calls in flight over latency per
//   unit of work, in units of one call alone. P = c on a server that keeps up, S on a server with
//   S slots once the limit passes them (the rest only queue), and it peaks and falls on a server
//   whose calls contend (seed 004: "5 workers were 54% slower").
// - The knee. The best limit is not where P peaks but where one more call in flight stops adding
//   at least `efficiency` (10%) of an unloaded call's throughput: it maximises J(c) = P(c) - e*c.
//   Past a FIFO server's slots an extra call adds nothing and costs its latency; on a contention
//   server the top of the curve is flat and its low side is as fast with less load.
// - The unloaded latency. Nothing known, the first call goes alone: its latency is the baseline
//   every later level is compared with, and the cheapest check for contention is one step to 2.
//
// Phases (Vegas measures a queue against the unloaded RTT, Gradient2 compares a short latency
// average with a long one, BBR alternates probing for more bandwidth with draining to re-measure
// the RTT; this takes from each what throughput needs):
//
// 1. Startup, in waves (every call of a wave starts together; its P is read at the back of the
//    wave, where the calls met the load the limit brings): 1, then 2, then x8 per wave while P
//    grows in proportion to the limit (the payoff P'/P / (c'/c) >= 0.9; x2 while >= 0.55, and
//    from 1 to 2 anything under 0.7 stops). A job of a few round trips is not taxed by a slow
//    doubling (15 calls take 3 waves: 1, 2, 12), and the one step to 2 costs a contention
//    server at most a call's worth. The call alone is measured by the fastest call yet (the
//    first may have paid for the connection); if two at once were each faster than it, it was
//    cold, and it is measured again. When P stops growing, the knee lies between the last two
//    levels: Little's law at the unloaded latency places it at ceil(P), exactly the slot count
//    of a FIFO server and the low side of a contention peak. A wave's 429s say how many calls
//    the server took: it holds there.
// 2. Hold at the knee, an epoch (a cohort of one round trip's starts) at a time. A P that falls
//    by 30% twice in a row means the server changed (fewer slots, other clients): go towards
//    ceil(P), halving at most; one that rises by 40% calls a probe up.
// 3. Probe, BBR-style but on the limit: one epoch at knee +- delta, a round of starts skipped
//    first (the queue the old limit left), compared with the knee's own P measured just before
//    (time drift cancels). Up is taken when J rises by more than half the noise (and then the
//    step doubles: a server that grew is climbed in a few probes), down when J rises by a
//    quarter of it (a tie keeps the knee where it is). A rejected probe doubles the epochs until
//    the next (at most 8); what a recent epoch measured is not probed again; a probe up that is
//    clearly worse on half its cohort stops there.
// 4. Congestion: a 429 ends a probe up and blocks that level for a while (doubling), and
//    otherwise multiplies the limit by 0.7; when most recent outcomes are 529/503 overloads or
//    timeouts, it halves. At most once per round trip: a burst from one overshoot is one event.
//    500s, resets and bad bodies, and faults that hit every limit alike (a flaky provider),
//    lower P everywhere and move nothing: they are retried, not obeyed.
// 5. Known rate limits cap the limit at Little's law, ceil(h * X* * L_p50) plus twice the slots
//    failures hold (a hung call keeps its slot until its timeout), X* the requests/s the quota
//    allows: more cannot be fed; and below what the quota needs in flight the search does not
//    go. Known before the start, the first wave is 16 (the buckets pace it; more could reach the
//    provider all at once if the network holds it back); learned from headers during startup,
//    the limit jumps to the ceiling (what is known needs no search).
//
// A caller that knows a good start (a previous run's learned limit kept by the limit memory,
// `salvo probe`'s recommendation) passes it as `initial` or `startFrom`: the controller holds
// there from the first call and probes around it. Core code: no I/O, no provider knowledge; time
// comes from the samples.

import { ConfigError } from "../../errors.ts";
import type {
  AttemptResult,
  AttemptSample,
  AttemptStart,
  ConcurrencyController,
} from "./concurrency-controller.ts";
import { Ema, WindowedMin } from "./ema.ts";
import { Epoch, type EpochKind } from "./epoch.ts";
import { RegressionSums, WorkModel } from "./work-model.ts";

/** Where the starting limit came from, for the run summary. */
export type StartSource =
  /** Nothing was known: one call alone (the unloaded latency), then a search. */
  | "search"
  /** The caller's `initial`. */
  | "option"
  /** Known rate limits: the buckets pace the start, Little's law caps it. */
  | "rate-limits"
  /** A previous run's learned limit. */
  | "previous-run"
  /** `salvo probe`'s recommendation. */
  | "probe";

export type AdaptiveConcurrencyOptions = {
  /**
   * A limit known to be good (a previous run's, a probe's), in [min, max]: the controller starts
   * there and probes around it. Without it, the first call goes alone and the limit is searched.
   * @default undefined
   */
  initial?: number | undefined;
  /** Where `initial` came from, reported in `state.start`. @default "option" */
  initialSource?: StartSource | undefined;
  /** The lowest limit, an integer >= 1. @default 1 */
  min?: number | undefined;
  /** The highest limit, an integer >= min. @default 256 */
  max?: number | undefined;
  /** Multiplier on a 429 rate limit, in (0, 1). @default 0.7 */
  rateLimitBackoff?: number | undefined;
  /** Multiplier when most of a round trip's outcomes are 529/503 overloads, in (0, 1). @default 0.5 */
  overloadBackoff?: number | undefined;
  /** Multiplier when most of a round trip's outcomes are timeouts, in (0, 1). @default 0.5 */
  timeoutBackoff?: number | undefined;
  /**
   * The knee: the least throughput one more call in flight must add, as a fraction of what one
   * call alone gets done, in [0, 1). Higher keeps latency lower at some throughput. @default 0.1
   */
  efficiency?: number | undefined;
  /** Startup's multiplier per epoch while throughput grows in proportion, >= 2. @default 8 */
  growth?: number | undefined;
  /** Headroom h of the Little's-law ceiling ceil(h * X* * L), >= 1. @default 1.2 */
  headroom?: number | undefined;
  /** Known requests per minute (also learnable with `setRateLimits`). @default undefined */
  requestsPerMinute?: number | undefined;
  /** Known input + output tokens per minute (OpenAI TPM). @default undefined */
  tokensPerMinute?: number | undefined;
  /** Known input tokens per minute (Anthropic ITPM). @default undefined */
  inputTokensPerMinute?: number | undefined;
  /** Known output tokens per minute (Anthropic OTPM). @default undefined */
  outputTokensPerMinute?: number | undefined;
  /**
   * Tokens charged per request (k), for the TPM ceiling. @default learned from the samples'
   * `tokens`; without either, TPM gives no ceiling
   */
  tokensPerRequest?: number | undefined;
};

/** Per-minute limits the controller may learn after construction; undefined leaves one as is. */
export type KnownRateLimits = {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
  inputTokensPerMinute?: number | undefined;
  outputTokensPerMinute?: number | undefined;
};

/**
 * An attempt's sample, optionally with what the provider charged it (the scheduler knows it from
 * the reconcile): the token ceiling learns the tokens per request from these.
 */
export type AdaptiveSample = AttemptSample & {
  /** Input + output tokens charged. */
  tokens?: number | undefined;
  /** Input tokens charged. */
  inputTokens?: number | undefined;
};

/** Why the limit last went down. */
export type CongestionKind = "rate_limit" | "overload" | "timeout" | "latency";

export type AdaptivePhase = "startup" | "hold" | "probe";

/** The controller's state, for reports, tests and debugging. */
export type AdaptiveState = {
  /** The integer limit the scheduler uses. */
  limit: number;
  phase: AdaptivePhase;
  /** The starting limit and where it came from. */
  start: { limit: number; source: StartSource };
  /** The limit held between probes (undefined during startup). */
  knee: number | undefined;
  /** The last measured effective parallelism at the knee, in unloaded calls. */
  parallelism: number | undefined;
  /** Smoothed round-trip time of successes, ms. */
  rttMs: number | undefined;
  /** The unloaded latency of a usual answer, ms (the lowest epoch's, lately). */
  unloadedMs: number | undefined;
  /** The Little's-law ceiling, when the limits are known. */
  ceiling: number | undefined;
  /** Decreases so far, by cause. */
  decreases: Record<CongestionKind, number>;
  /** Probes so far, and how many moved the knee. */
  probes: { up: number; down: number; accepted: number };
};

/**
 * A level's measurement: `r` is its parallelism per unit of the unloaded latency (P = r * u0),
 * kept so that readings taken before a better baseline was known compare with later ones.
 */
type Reading = { r: number; err: number; epoch: number };

/**
 * The first wave when the rate limits are known but no latency yet: the buckets pace it, and the
 * ceiling applies from the first answer. Not more: calls the provider has not seen yet (a slow
 * network, a stalled server) can reach it all at once, and more than its burst would be 429s.
 */
const KNOWN_LIMITS_START = 16;
/** Successes whose latency median feeds the Little's-law ceiling. */
const P50_SAMPLES = 64;
/** Epochs after which a reading no longer says whether lower limits pay (see #linearBelow). */
const FRESH_EPOCHS = 16;
/** Epochs within which a reading stands in for a probe, and is pooled with the next one. */
const KNOWN_EPOCHS = 4;
/** The most hold epochs between probes. */
const MAX_INTERVAL = 8;
/** The most epochs a level that drew a 429 stays blocked. */
const MAX_BLOCK = 256;

export class AdaptiveConcurrency implements ConcurrencyController {
  readonly #min: number;
  readonly #max: number;
  readonly #backoff: Record<"rate_limit" | "overload" | "timeout", number>;
  readonly #efficiency: number;
  readonly #growth: number;
  readonly #headroom: number;
  readonly #limits: Record<keyof KnownRateLimits, number | undefined>;
  readonly #tokensPerRequestOption: number | undefined;
  readonly #listeners = new Set<(limit: number) => void>();
  #start: { limit: number; source: StartSource };

  #limit: number;
  #phase: AdaptivePhase;
  #now = 0;
  #epoch: Epoch;
  #epochs = 0;
  readonly #regression = new RegressionSums();
  readonly #work = new WorkModel();
  /** The lowest mean latency per unit of work of recent epochs: the unloaded one. */
  #unloaded = new WindowedMin(32);
  /** A level-2 wave kept while the first call alone is measured again (see #startupStep). */
  #pendingTwo: { level: number; r: number } | undefined;
  /** The knee's reading before one epoch that measured it 30% slower (see #holdStep). */
  #suspect: Reading | undefined;
  readonly #readings = new Map<number, Reading>();
  /** Startup's levels and their parallelism, in order. */
  #startup: Array<{ level: number; r: number }> = [];
  /** Hold: the knee, epochs since the last probe, epochs to wait, next direction, up-step. */
  #knee: number | undefined;
  #held = 0;
  #interval = 1;
  #nextProbe: "up" | "down" = "up";
  #climb = 1;
  #probe: { direction: "up" | "down"; from: number; base: Reading } | undefined;
  /** Up-probes stay below this level until epoch `#blockedUntil` (a 429 came from it). */
  #blocked = Number.POSITIVE_INFINITY;
  #blockedUntil = 0;
  #blockFor = 4;
  #lastDecreaseAt = Number.NEGATIVE_INFINITY;
  /** The share of overloads and timeouts among recent outcomes, and outcomes since a decrease. */
  #congested = 0;
  #outcomesSinceDecrease = 0;
  readonly #rtt = new Ema(16);
  /** Recent successes' latencies, for their median (Little's law). */
  readonly #latencies: number[] = [];
  #latencyNext = 0;
  #p50: number | undefined;
  /** The slot time of transient failures per attempt (0 for a success): hangs hold slots too. */
  readonly #failureTime = new Ema(64);
  readonly #tokens = new Ema(100);
  readonly #inputTokens = new Ema(100);
  readonly #outputTokens = new Ema(100);
  #ceiling: number | undefined;
  /** The least the known quota needs in flight (see #updateCeiling). */
  #floor = 1;
  readonly #decreases: Record<CongestionKind, number> = {
    rate_limit: 0,
    overload: 0,
    timeout: 0,
    latency: 0,
  };
  readonly #probes = { up: 0, down: 0, accepted: 0 };

  constructor(options: AdaptiveConcurrencyOptions = {}) {
    this.#min = integer("min", options.min ?? 1, 1);
    this.#max = integer("max", options.max ?? 256, this.#min);
    const initial = options.initial;
    if (
      initial !== undefined &&
      !(typeof initial === "number" && initial >= this.#min && initial <= this.#max)
    ) {
      throw new ConfigError({
        field: "concurrency.initial",
        expected: `a number in [${this.#min}, ${this.#max}]`,
        got: initial,
      });
    }
    this.#backoff = {
      rate_limit: ratio("rateLimitBackoff", options.rateLimitBackoff ?? 0.7),
      overload: ratio("overloadBackoff", options.overloadBackoff ?? 0.5),
      timeout: ratio("timeoutBackoff", options.timeoutBackoff ?? 0.5),
    };
    const efficiency = options.efficiency ?? 0.1;
    if (typeof efficiency !== "number" || !(efficiency >= 0 && efficiency < 1)) {
      throw new ConfigError({
        field: "concurrency.efficiency",
        expected: "a number in [0, 1)",
        got: efficiency,
      });
    }
    this.#efficiency = efficiency;
    this.#growth = above("growth", options.growth ?? 8, 2, true);
    this.#headroom = above("headroom", options.headroom ?? 1.2, 1, true);
    this.#tokensPerRequestOption = optionalPositive("tokensPerRequest", options.tokensPerRequest);
    this.#limits = {
      requestsPerMinute: optionalPositive("requestsPerMinute", options.requestsPerMinute),
      tokensPerMinute: optionalPositive("tokensPerMinute", options.tokensPerMinute),
      inputTokensPerMinute: optionalPositive("inputTokensPerMinute", options.inputTokensPerMinute),
      outputTokensPerMinute: optionalPositive(
        "outputTokensPerMinute",
        options.outputTokensPerMinute,
      ),
    };
    let start: number;
    let source: StartSource;
    if (initial !== undefined) {
      start = Math.floor(initial);
      source = options.initialSource ?? "option";
    } else if (this.#known()) {
      start = Math.min(this.#max, Math.max(this.#min, KNOWN_LIMITS_START));
      source = "rate-limits";
    } else {
      start = this.#min;
      source = "search";
    }
    this.#start = { limit: start, source };
    this.#limit = start;
    if (source === "search") {
      this.#phase = "startup";
      this.#epoch = this.#newEpoch("startup", Number.NEGATIVE_INFINITY);
    } else {
      this.#phase = "hold";
      this.#knee = start;
      this.#epoch = this.#newEpoch("hold", Number.NEGATIVE_INFINITY);
    }
  }

  /** The integer limit, in [min, max] and under the ceiling. */
  get limit(): number {
    return this.#limit;
  }

  get state(): AdaptiveState {
    const u0 = this.#unloaded.value;
    return {
      limit: this.#limit,
      phase: this.#phase,
      start: { ...this.#start },
      knee: this.#knee,
      parallelism: this.#parallelismAt(this.#knee),
      rttMs: this.#rtt.value,
      unloadedMs: u0 === undefined ? undefined : u0 * this.#work.work(undefined),
      ceiling: this.#ceiling,
      decreases: { ...this.#decreases },
      probes: { ...this.#probes },
    };
  }

  /**
   * The limit this run found, worth starting the next run at: the knee once it has held for a
   * few epochs; undefined while still searching (a startup transient is not worth keeping).
   */
  get learnedLimit(): number | undefined {
    if (this.#knee === undefined || this.#epochs < 3 || this.#phase === "startup") return undefined;
    return this.#knee;
  }

  subscribe(listener: (limit: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * A known start given after construction (a previous run's limit read from a file, a probe's
   * recommendation): the controller holds there from the first call and probes around it, as
   * with `initial`. Only before the first answer; returns whether it took it.
   */
  startFrom(limit: number, source: StartSource): boolean {
    if (this.#epochs > 0 || this.#rtt.value !== undefined) return false;
    if (!(Number.isInteger(limit) && limit >= 1)) {
      throw new ConfigError({
        field: "concurrency.initial",
        expected: "an integer >= 1",
        got: limit,
      });
    }
    const start = Math.max(this.#min, Math.min(this.#max, limit));
    this.#start = { limit: start, source };
    this.#startup = [];
    this.#toHold(start, this.#now);
    return true;
  }

  /**
   * Tells the controller the provider's per-minute limits (e.g. learned from rate-limit headers);
   * the Little's-law ceiling applies from the next sample, and at once if it lowers the limit.
   */
  setRateLimits(limits: KnownRateLimits): void {
    for (const key of Object.keys(this.#limits) as Array<keyof KnownRateLimits>) {
      const value = limits[key];
      if (value !== undefined) this.#limits[key] = optionalPositive(key, value);
    }
    this.#updateCeiling();
  }

  onStart(start: AttemptStart): void {
    this.#now = start.now;
    this.#epoch.started(start.now, this.#rtt.value ?? 0, start.inFlight);
  }

  onOutcome(sample: AdaptiveSample): void {
    this.#now = sample.now;
    const epoch = this.#epoch;
    const member = epoch.member(sample.now - sample.latencyMs);
    this.#measure(sample);
    // Every answer of the cohort counts towards the epoch's end, measured or not, unless the
    // sample moved the controller to another epoch already.
    if (member && this.#epoch === epoch) {
      epoch.returned();
      if (epoch.done) this.#endEpoch(epoch);
    }
  }

  #measure(sample: AdaptiveSample): void {
    switch (sample.result) {
      case "success":
        this.#success(sample);
        return;
      case "rate_limit":
        this.#rateLimited(sample);
        return;
      case "overload":
      case "timeout":
      case "server":
      case "network":
      case "invalid_response":
        this.#failed(sample.result, sample);
        return;
      default:
        // quota, client, task errors, cancellations: nothing about the provider's capacity.
        return;
    }
  }

  // --- samples ---

  #success(sample: AdaptiveSample): void {
    const { latencyMs } = sample;
    this.#rtt.add(latencyMs);
    this.#failureTime.add(0);
    this.#recordLatency(latencyMs);
    if (sample.tokens !== undefined) this.#tokens.add(sample.tokens);
    if (sample.inputTokens !== undefined) this.#inputTokens.add(sample.inputTokens);
    if (sample.outputTokens !== undefined) this.#outputTokens.add(sample.outputTokens);
    this.#work.observe(sample.outputTokens);
    this.#countOutcome(false);
    const epoch = this.#epoch;
    const load = loadOf(sample);
    if (this.#clean(sample, load)) {
      epoch.regression.add(sample.outputTokens ?? 0, latencyMs);
      epoch.success(latencyMs / this.#work.work(sample.outputTokens), load);
      // The very first call of a search is the unloaded baseline.
      if (this.#unloaded.value === undefined) this.#unloaded.add(epoch.meanQ);
      this.#earlyReject(epoch);
    }
    this.#updateCeiling();
  }

  /** Overloads, timeouts, server and network errors: they held a slot and brought no answer. */
  #failed(kind: AttemptResult, sample: AdaptiveSample): void {
    const { latencyMs, now } = sample;
    this.#failureTime.add(latencyMs);
    const load = loadOf(sample);
    if (this.#clean(sample, load)) {
      this.#epoch.failure(latencyMs / this.#work.work(undefined), load);
    }
    const congestion = kind === "overload" || kind === "timeout";
    this.#countOutcome(congestion);
    // Most recent outcomes overloads or timeouts: the provider is going under, not unlucky. Back
    // off. (500s, resets and bad bodies are faults, retried, not a signal to slow down.)
    if (congestion && this.#congested >= 0.5 && this.#outcomesSinceDecrease >= 8) {
      const started = now - latencyMs;
      if (started > this.#lastDecreaseAt && this.#roundTripSince(now)) {
        const cause = kind === "overload" ? "overload" : "timeout";
        this.#decreases[cause]++;
        this.#outcomesSinceDecrease = 0;
        const from = this.#probe?.from ?? this.#limit;
        this.#lastDecreaseAt = now;
        this.#toHold(Math.floor(from * this.#backoff[cause]), now);
        this.#readings.clear();
      }
    }
  }

  #rateLimited(sample: AdaptiveSample): void {
    const now = sample.now;
    const started = now - sample.latencyMs;
    if (this.#phase === "startup" && this.#epoch.member(started)) {
      // A wave's 429s are counted and answered when the wave is back (see #endEpoch): how many
      // the server refused says how many it takes.
      this.#epoch.rateLimited++;
      return;
    }
    if (started <= this.#lastDecreaseAt || !this.#roundTripSince(now)) return;
    this.#lastDecreaseAt = now;
    this.#decreases.rate_limit++;
    const probe = this.#probe;
    if (probe?.direction === "up") {
      // The level above the knee is refused: keep the knee, and stay below that level for a
      // while, longer each time it is refused again.
      this.#block(this.#limit);
      this.#interval = Math.max(this.#interval, 2);
      this.#toHold(probe.from, now);
      return;
    }
    const level = this.#limit;
    this.#block(level);
    this.#blockFor = 4;
    // Startup overshoots by up to its growth factor: halve. Otherwise the usual decrease.
    const factor = this.#phase === "startup" ? 0.5 : this.#backoff.rate_limit;
    this.#readings.clear();
    this.#toHold(Math.floor((probe?.from ?? level) * factor), now);
  }

  /** Whether a sample measures the current epoch: one of its cohort, at about its level. */
  #clean(sample: AttemptSample, load: number): boolean {
    // An instant answer (a cache, a stub, fake time) measures nothing about a server.
    if (!(sample.latencyMs > 0)) return false;
    const epoch = this.#epoch;
    if (!epoch.member(sample.now - sample.latencyMs)) return false;
    // A wave's calls started together, whatever ran beside them.
    if (epoch.kind === "startup") return true;
    // Fewer in flight than the limit: app-limited (or paced by the buckets, or a cooldown):
    // nothing to say about this limit. More: attempts from a higher limit were still running.
    return load >= 0.8 * epoch.level - 0.25 && load <= 1.25 * epoch.level + 0.25;
  }

  /** Updates the share of congestion among the last ~limit (at least 8) outcomes. */
  #countOutcome(congestion: boolean): void {
    this.#outcomesSinceDecrease++;
    const alpha = 1 / Math.max(8, this.#limit);
    this.#congested += alpha * ((congestion ? 1 : 0) - this.#congested);
  }

  #roundTripSince(now: number): boolean {
    return now - this.#lastDecreaseAt >= (this.#rtt.value ?? 0);
  }

  // --- epochs ---

  /**
   * A new epoch at `level`. Startup waits for its whole wave; hold and probe epochs take a round
   * trip's worth of starts (at least 4) after `skip` (a raised limit's burst).
   */
  #newEpoch(kind: EpochKind, cleanFrom: number, level = this.#limit, skip = 0): Epoch {
    const target = kind === "startup" ? 0 : Math.max(4, level);
    return new Epoch(level, kind, cleanFrom, { skip, target }, this.#regression);
  }

  /** A probe up that is clearly worse stops early (on a contention server each call of it is slow). */
  #earlyReject(epoch: Epoch): void {
    const probe = this.#probe;
    const enough = Math.max(3, Math.ceil(epoch.level / 2));
    if (epoch.kind !== "probe" || probe?.direction !== "up" || epoch.successes < enough) return;
    const p = epoch.parallelism(this.#u0());
    const upper =
      p * (1 + 2 * Math.max(0.05, epoch.relativeError())) - this.#efficiency * epoch.level;
    if (upper < this.#p(probe.base) - this.#efficiency * probe.from) this.#endEpoch(epoch, true);
  }

  /** A reading's effective parallelism, with the unloaded latency known now. */
  #p(reading: Reading): number {
    return reading.r * this.#u0();
  }

  #parallelismAt(level: number | undefined): number | undefined {
    const reading = level === undefined ? undefined : this.#readings.get(level);
    return reading === undefined ? undefined : this.#p(reading);
  }

  #u0(): number {
    return this.#unloaded.value ?? this.#epoch.meanQ;
  }

  /** An epoch is over (`early`: a probe up already clearly worse, before its cohort is back). */
  #endEpoch(epoch: Epoch, early = false): void {
    const now = this.#now;
    if (epoch.kind === "startup" && epoch.rateLimited > 0) {
      // The wave overshot a limit the server enforces with 429s: it took the calls it did not
      // refuse. Hold there, and keep probes below the level that drew them for a while.
      const took = Math.max(this.#min, epoch.inFlight - epoch.rateLimited);
      this.#decreases.rate_limit++;
      this.#lastDecreaseAt = now;
      this.#block(took + 1);
      this.#readings.clear();
      this.#toHold(took, now);
      return;
    }
    const measured = epoch.kind === "startup" || early || epoch.samples * 2 >= epoch.size;
    if (epoch.successes === 0 || !measured) {
      // Too little measured (every call failed, or most ran app-limited): no reading. A probe
      // goes back to the knee as if it had not happened; other epochs start again.
      if (epoch.kind === "probe") this.#toHold(this.#probe!.from, now);
      else this.#epoch = this.#newEpoch(epoch.kind, Number.NEGATIVE_INFINITY);
      return;
    }
    this.#epochs++;
    this.#work.learn(epoch.regression);
    if (epoch.successes > 0) this.#unloaded.add(epoch.meanQ);
    const reading: Reading = {
      r: epoch.parallelism(1),
      err: epoch.relativeError(),
      epoch: this.#epochs,
    };
    switch (epoch.kind) {
      case "startup":
        this.#startupStep(epoch, reading, now);
        return;
      case "hold":
        this.#holdStep(epoch, reading, now);
        return;
      case "probe":
        this.#probeStep(epoch, reading, now, early);
        return;
    }
  }

  #startupStep(epoch: Epoch, reading: Reading, now: number): void {
    this.#record(epoch.level, reading);
    const levels = this.#startup;
    levels.push({ level: epoch.level, r: reading.r });
    const upper = this.#upper();
    let next: number | undefined;
    if (levels.length === 1 && this.#pendingTwo !== undefined) {
      // The call alone again, warm this time: compare it with the wave of 2 kept aside.
      levels.push(this.#pendingTwo);
      this.#pendingTwo = undefined;
    }
    if (levels.length === 2 && levels[1]!.r / levels[0]!.r / 2 > 1.15) {
      // Two calls at once each answered faster than the first alone: no server does that; the
      // first call paid for the connection and the client's warm-up. Its latency is no baseline:
      // one call alone again, then the search goes on from the wave of 2.
      this.#pendingTwo = levels[1];
      this.#startup = [];
      this.#unloaded = new WindowedMin(32);
      const level = this.#min;
      this.#epoch = this.#newEpoch("startup", Number.NEGATIVE_INFINITY, level);
      this.#setLimit(level);
      return;
    }
    if (levels.length === 1) {
      next = epoch.level * 2;
    } else {
      // How much of the added concurrency paid off: 1 where throughput grew in proportion, 0
      // where it did not grow. A ratio, so the unloaded latency's own noise cancels out.
      const prev = levels.at(-2)!;
      // From one call to two, the one alone is measured by the fastest call yet: the first call
      // may have paid for the connection and the client's warm-up, and the first of two that
      // start together into a server that slows with load met no one else yet.
      const first =
        levels.length === 2 && prev.level === 1 ? Math.max(prev.r, 1 / epoch.fastest) : prev.r;
      const payoff = reading.r / first / (epoch.level / prev.level);
      // From one call alone to two, the cheapest look at contention: anything short of a clear
      // gain stops here (seed 004's server gains 33% at best, then loses).
      const stop = levels.length === 2 ? 0.7 : 0.55;
      if (payoff >= 0.9) next = epoch.level * this.#growth;
      else if (payoff >= stop) next = epoch.level * 2;
    }
    if (next === undefined) {
      // The knee is between the last two levels; Little's law at the unloaded latency says
      // where: ceil(P) calls keep the best throughput seen without a queue.
      const prev = levels.at(-2)!;
      const best = Math.max(...levels.map((l) => l.r)) * this.#u0();
      const lo = Math.min(prev.level, epoch.level);
      const hi = Math.max(prev.level, epoch.level);
      const knee = Math.min(hi, Math.max(lo, Math.ceil(0.97 * best)));
      this.#nextProbe = knee < hi ? "up" : "down";
      this.#toHold(knee, now);
      this.#interval = 1;
      return;
    }
    if (epoch.level >= upper) {
      this.#toHold(upper, now);
      return;
    }
    // The new wave's epoch first: raising the limit starts its attempts at once.
    const level = Math.max(this.#min, Math.min(upper, Math.floor(next)));
    this.#epoch = this.#newEpoch("startup", Number.NEGATIVE_INFINITY, level);
    this.#setLimit(level);
  }

  #holdStep(epoch: Epoch, reading: Reading, now: number): void {
    const level = epoch.level;
    const previous = this.#suspect ?? this.#fresh(level);
    if (previous !== undefined && this.#p(reading) < this.#p(previous) * 0.7) {
      // Throughput at this limit fell by 30%. Once is noise (a stalled client, a slow answer or
      // two); twice in a row, the server changed (fewer slots, other clients) and what is known
      // is stale: Little's law at the unloaded latency gives the limit it serves now, and the
      // limit goes there, halving at most per step.
      if (this.#suspect === undefined) {
        this.#suspect = previous;
        this.#epoch = this.#newEpoch("hold", now);
        return;
      }
      this.#suspect = undefined;
      this.#readings.clear();
      this.#readings.set(level, reading);
      const vegas = Math.ceil(0.97 * this.#p(reading));
      const target = Math.max(
        this.#min,
        Math.min(level - 1, Math.max(vegas, Math.floor(level / 2))),
      );
      if (target < level) {
        this.#decreases.latency++;
        this.#nextProbe = "up";
        this.#climb = 1;
        this.#toHold(target, now);
        this.#interval = 1;
        return;
      }
    }
    this.#suspect = undefined;
    this.#record(level, reading);
    if (previous !== undefined && this.#p(reading) > this.#p(previous) * 1.4) {
      // Faster: something freed up. Look up soon.
      this.#readings.clear();
      this.#readings.set(level, reading);
      this.#interval = 0;
      this.#nextProbe = "up";
    }
    this.#held++;
    if (this.#held >= this.#interval) this.#startProbe(now);
    else this.#epoch = this.#newEpoch("hold", now);
  }

  #startProbe(now: number): void {
    const knee = this.#limit;
    const base = this.#fresh(knee, KNOWN_EPOCHS);
    this.#held = 0;
    if (base === undefined) {
      this.#epoch = this.#newEpoch("hold", now);
      return;
    }
    for (let tries = 0; tries < 2; tries++) {
      const direction = this.#nextProbe;
      this.#nextProbe = direction === "up" ? "down" : "up";
      const step = Math.max(1, Math.round(knee / 8));
      let level: number;
      if (direction === "up") {
        const blocked = this.#epochs < this.#blockedUntil ? this.#blocked : Infinity;
        level = Math.min(knee + step * this.#climb, this.#upper(), blocked - 1);
        if (level <= knee) continue;
      } else {
        level = Math.max(this.#lower(), knee - step);
        if (level >= knee || this.#linearBelow(knee, base)) continue;
      }
      const known = this.#fresh(level, KNOWN_EPOCHS);
      if (known !== undefined) {
        // Measured lately: decide from that reading instead of paying for a probe.
        if (this.#better(direction, level, known, knee, base)) {
          this.#accept(direction, level, now);
        } else {
          this.#reject(direction);
          this.#epoch = this.#newEpoch("hold", now);
        }
        return;
      }
      this.#probes[direction]++;
      this.#probe = { direction, from: knee, base };
      this.#phase = "probe";
      // The epoch first, skipping a round of starts: after a raise they found a shorter queue
      // than it will be (a FIFO server's builds for a round trip), after a cut the longer one.
      this.#epoch = this.#newEpoch("probe", now, level, level);
      this.#setLimit(level);
      return;
    }
    this.#epoch = this.#newEpoch("hold", now);
  }

  #probeStep(epoch: Epoch, reading: Reading, now: number, early = false): void {
    const probe = this.#probe!;
    // A probe stopped early measured part of its cohort: enough to reject it, not to be kept.
    if (!early) this.#record(epoch.level, reading);
    if (this.#better(probe.direction, epoch.level, reading, probe.from, probe.base)) {
      this.#accept(probe.direction, epoch.level, now);
      return;
    }
    this.#reject(probe.direction);
    this.#toHold(probe.from, now);
  }

  /**
   * Whether `level` beats the knee on J = P - e * c, by more than the noise: half a standard
   * error of the difference up, a quarter down (a near tie goes to the lower limit: less
   * queueing, the same work), so noise alone does not walk the knee either way.
   */
  #better(
    direction: "up" | "down",
    level: number,
    reading: Reading,
    knee: number,
    base: Reading,
  ): boolean {
    const e = this.#efficiency;
    const gain = this.#p(reading) - e * level - (this.#p(base) - e * knee);
    const noise = Math.hypot(this.#p(reading) * reading.err, this.#p(base) * base.err);
    return direction === "down" ? gain > 0.25 * noise : gain > 0.5 * noise;
  }

  /** Moves the knee to `level` and probes on in the same direction at once (its reading is fresh). */
  #accept(direction: "up" | "down", level: number, now: number): void {
    this.#probes.accepted++;
    this.#climb = direction === "up" ? Math.min(8, this.#climb * 2) : 1;
    this.#nextProbe = direction;
    this.#toHold(level, now);
    this.#interval = 0;
    if (this.#readings.has(this.#limit)) this.#startProbe(now);
  }

  #reject(direction: "up" | "down"): void {
    if (direction === "up") this.#climb = 1;
    this.#interval = Math.min(MAX_INTERVAL, Math.max(1, this.#interval * 2));
  }

  /**
   * Whether the nearest recent reading below the knee shows the calls between still pay (at
   * least half an unloaded call's throughput each): then a probe down has nothing to find.
   */
  #linearBelow(knee: number, base: Reading): boolean {
    let nearest: number | undefined;
    for (const [level, reading] of this.#readings) {
      if (level >= knee || this.#epochs - reading.epoch > FRESH_EPOCHS) continue;
      if (nearest === undefined || level > nearest) nearest = level;
    }
    if (nearest === undefined) return false;
    return (this.#p(base) - this.#p(this.#readings.get(nearest)!)) / (knee - nearest) >= 0.5;
  }

  /**
   * Keeps a level's reading, pooled with a recent one of the same level (inverse-variance
   * weights, the older halved): the noise of one epoch does not decide alone.
   */
  #record(level: number, reading: Reading): void {
    const old = this.#fresh(level, KNOWN_EPOCHS);
    if (old === undefined) {
      this.#readings.set(level, reading);
      return;
    }
    const wOld = 0.5 / (old.r * old.err) ** 2;
    const wNew = 1 / (reading.r * reading.err) ** 2;
    const r = (old.r * wOld + reading.r * wNew) / (wOld + wNew);
    this.#readings.set(level, { r, err: 1 / Math.sqrt(wOld + wNew) / r, epoch: reading.epoch });
  }

  #fresh(level: number, within = FRESH_EPOCHS): Reading | undefined {
    const reading = this.#readings.get(level);
    return reading !== undefined && this.#epochs - reading.epoch <= within ? reading : undefined;
  }

  #block(level: number): void {
    this.#blocked = level;
    this.#blockedUntil = this.#epochs + this.#blockFor;
    this.#blockFor = Math.min(MAX_BLOCK, this.#blockFor * 2);
  }

  /**
   * Holds at `level` (clamped) from now on, with a fresh hold epoch; after a decrease, it skips a
   * round of starts (they still found the higher limit's queue).
   */
  #toHold(level: number, now: number): void {
    this.#probe = undefined;
    this.#suspect = undefined;
    this.#phase = "hold";
    this.#startup = [];
    const clamped = Math.max(this.#lower(), Math.min(this.#upper(), level));
    const lower = clamped < this.#limit;
    this.#knee = clamped;
    this.#held = 0;
    this.#epoch = this.#newEpoch("hold", now, clamped, lower ? clamped : 0);
    this.#setLimit(clamped);
  }

  // --- the ceiling ---

  #known(): boolean {
    return Object.values(this.#limits).some((limit) => limit !== undefined);
  }

  /** The lowest the search may go: `min`, or what the known quota needs in flight. */
  #lower(): number {
    return this.#ceiling === undefined ? this.#min : Math.max(this.#min, this.#floor);
  }

  #upper(): number {
    return Math.min(this.#max, this.#ceiling ?? Number.POSITIVE_INFINITY);
  }

  #recordLatency(latencyMs: number): void {
    const ring = this.#latencies;
    if (ring.length < P50_SAMPLES) ring.push(latencyMs);
    else ring[this.#latencyNext] = latencyMs;
    this.#latencyNext = (this.#latencyNext + 1) % P50_SAMPLES;
    // The median is re-read every 8 samples: the ceiling moves slowly and sorting is not free.
    if (this.#latencyNext % 8 === 0 || this.#p50 === undefined) {
      const sorted = ring.slice().sort((a, b) => a - b);
      this.#p50 = sorted[Math.floor(sorted.length / 2)];
    }
  }

  /**
   * ceil(h * X* * L_p50) + ceil(X* * F): the concurrency the quota can keep busy, with headroom
   * h, plus the slots that failures hold (F: their mean slot time per attempt; a hung call holds
   * its slot until its timeout).
   */
  #updateCeiling(): void {
    const occupancy = this.#p50;
    const rates: number[] = [];
    const limits = this.#limits;
    const perRequest = this.#tokensPerRequestOption ?? this.#tokens.value;
    if (limits.requestsPerMinute !== undefined) rates.push(limits.requestsPerMinute / 60);
    if (limits.tokensPerMinute !== undefined && perRequest !== undefined && perRequest > 0) {
      rates.push(limits.tokensPerMinute / 60 / perRequest);
    }
    const input = this.#inputTokens.value;
    if (limits.inputTokensPerMinute !== undefined && input !== undefined && input > 0) {
      rates.push(limits.inputTokensPerMinute / 60 / input);
    }
    const output = this.#outputTokens.value;
    if (limits.outputTokensPerMinute !== undefined && output !== undefined && output > 0) {
      rates.push(limits.outputTokensPerMinute / 60 / output);
    }
    if (occupancy === undefined || rates.length === 0) {
      this.#ceiling = undefined;
      if (this.#known() && this.#phase === "startup" && this.#epochs === 0) {
        // Limits known before the first answer (the scheduler tells them at once): the buckets
        // pace the first wave, and the ceiling applies from the first answer.
        const start = Math.min(this.#max, Math.max(this.#min, KNOWN_LIMITS_START));
        this.#start = { limit: start, source: "rate-limits" };
        this.#toHold(start, this.#now);
      }
      return;
    }
    const rate = Math.min(...rates);
    const fed = rate * (occupancy / 1000);
    const held = rate * ((this.#failureTime.value ?? 0) / 1000);
    this.#ceiling = Math.max(this.#min, Math.ceil(this.#headroom * fed) + Math.ceil(2 * held));
    // Below what the quota needs in flight (the same without headroom) it cannot be fed: a
    // search that reads a hung call's slot as a slow server does not go there.
    this.#floor = Math.min(this.#ceiling, Math.max(this.#min, Math.ceil(fed + held)));
    if (this.#phase === "startup") {
      // The quota's capacity is known: no need to search for it.
      this.#toHold(this.#ceiling, this.#now);
      return;
    }
    if (this.#limit > this.#ceiling) {
      if (this.#probe !== undefined) this.#toHold(this.#probe.from, this.#now);
      if (this.#knee !== undefined && this.#knee > this.#ceiling) this.#knee = this.#ceiling;
      this.#setLimit(this.#ceiling);
    }
  }

  #setLimit(limit: number): void {
    if (Number.isNaN(limit)) return;
    const next = Math.max(this.#min, Math.min(this.#upper(), Math.floor(limit)));
    if (next === this.#limit) return;
    this.#limit = next;
    for (const listener of this.#listeners) listener(next);
  }
}

/** The mean number of attempts in flight while the sample's attempt ran (itself included). */
function loadOf(sample: AttemptSample): number {
  return sample.meanInFlight ?? sample.inFlight;
}

function integer(field: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: `an integer >= ${min}`,
      got: value,
    });
  }
  return value;
}

function ratio(field: string, value: number): number {
  if (typeof value !== "number" || !(value > 0 && value < 1)) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: "a number in (0, 1)",
      got: value,
    });
  }
  return value;
}

function above(field: string, value: number, min: number, inclusive: boolean): number {
  const ok =
    typeof value === "number" && Number.isFinite(value) && (inclusive ? value >= min : value > min);
  if (!ok) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: `a finite number ${inclusive ? ">=" : ">"} ${min}`,
      got: value,
    });
  }
  return value;
}

function optionalPositive(field: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new ConfigError({
      field: `concurrency.${field}`,
      expected: "a finite number > 0",
      got: value,
    });
  }
  return value;
}
