// What a call's latency would be on an idle server, given how many tokens it produced. An LLM
// call takes about a + b * outputTokens (time to first token, then a rate per token), and a batch
// mixes short and long answers: comparing raw latencies, or latency per token (which overweights
// the fixed a for short answers), reads the mix as queueing. The envelope groups calls by output
// length in quarter-octave bins and keeps each bin's windowed minimum: the fastest the server
// answered that length lately. A call's expected latency is its bin's minimum, or a line between
// the nearest bins on either side that have one.
import { WindowedMin } from "./ema.ts";

/** Samples a bin needs before its minimum is trusted: one lucky call is not the server's speed. */
const TRUSTED = 3;
/**
 * Samples after which a bin's minimum has nearly stopped falling: a minimum of few noisy samples
 * sits above the server's real speed, and inflation read against it then creeps up as the
 * minimum falls, which a baseline taken too early would read as queueing.
 */
const SETTLED = 8;
/** Bins per doubling of the output length. */
const BINS_PER_OCTAVE = 4;

type Bin = { min: WindowedMin; count: number };

export class LatencyEnvelope {
  readonly #window: number;
  readonly #bins = new Map<number, Bin>();

  /** @param window samples over which each bin keeps its minimum (see WindowedMin). */
  constructor(window: number) {
    this.#window = window;
  }

  /** The expected unloaded latency of a call with this many output tokens, ms, if known yet. */
  expected(outputTokens: number): number | undefined {
    const key = binOf(outputTokens);
    const own = this.#trusted(key);
    if (own !== undefined) return own;
    let below: number | undefined;
    let above: number | undefined;
    for (const [k, bin] of this.#bins) {
      if (bin.count < TRUSTED) continue;
      if (k < key && (below === undefined || k > below)) below = k;
      if (k > key && (above === undefined || k < above)) above = k;
    }
    if (below === undefined || above === undefined) return undefined;
    const low = this.#trusted(below) as number;
    const high = this.#trusted(above) as number;
    const x0 = centreOf(below);
    const x1 = centreOf(above);
    return low + ((high - low) * (outputTokens - x0)) / (x1 - x0);
  }

  /** Whether the bin of this length has seen enough calls for its minimum to hold still. */
  settled(outputTokens: number): boolean {
    return (this.#bins.get(binOf(outputTokens))?.count ?? 0) >= SETTLED;
  }

  add(outputTokens: number, latencyMs: number): void {
    const key = binOf(outputTokens);
    let bin = this.#bins.get(key);
    if (bin === undefined) {
      bin = { min: new WindowedMin(this.#window), count: 0 };
      this.#bins.set(key, bin);
    }
    bin.count++;
    bin.min.add(latencyMs);
  }

  #trusted(key: number): number | undefined {
    const bin = this.#bins.get(key);
    return bin !== undefined && bin.count >= TRUSTED ? bin.min.value : undefined;
  }
}

function binOf(outputTokens: number): number {
  return Math.round(Math.log2(1 + Math.max(0, outputTokens)) * BINS_PER_OCTAVE);
}

/** The output length at the centre of a bin. */
function centreOf(key: number): number {
  return 2 ** (key / BINS_PER_OCTAVE) - 1;
}
