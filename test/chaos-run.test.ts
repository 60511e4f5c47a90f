// The chaos test, short form (the long one: `node bench/chaos.ts`): `salvo run` as a real process,
// killed with SIGKILL during start-up, mid-run and during the final write, rerun at once each
// time, then run to completion: every line exactly once, in order, each its own answer; no kept
// answer asked for again; paid calls <= lines + the calls in flight at the kills (from the
// simulator's record of every request); no lock or temporary file left.
import { expect, it } from "vitest";
import { chaosRun } from "../bench/chaos.ts";

it("salvo run killed with SIGKILL at random moments, the final write included, loses nothing and pays only for what was in flight", async () => {
  const seed = Number(process.env.SALVO_CHAOS_SEED ?? Date.now() % 1_000_000);
  const result = await chaosRun({
    items: 150,
    kills: 3,
    moments: ["start-up", "mid-run", "final write"],
    concurrency: 8,
    seed,
  });
  console.log(
    `chaos (salvo run, seed ${seed}): ${result.kills} kills, ${result.calls} calls for ${result.items} lines, bound ${result.bound} (in flight at the kills: ${result.inFlightAtKills.join(" ")})`,
  );
  expect(result.violations, `seed ${seed}`).toEqual([]);
  expect(result.calls).toBeLessThanOrEqual(result.bound);
  expect(result.kills).toBeGreaterThanOrEqual(1);
}, 120_000);
