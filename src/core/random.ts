// The random source for jitter, injected so tests are deterministic.

// One generator serves the scheduler's jitter and the simulator's latencies and faults; the
// simulator sits below every other layer, so it holds the code.
export { type Random, seededRandom } from "../sim/seeded-random.ts";
