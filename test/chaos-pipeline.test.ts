// The chaos test for pipelines, short form (the long one: `node bench/chaos.ts`): `salvo pipeline`
// as a real process, killed with SIGKILL mid-run and during its final writes, rerun at once each
// time, then run to completion: every task journaled once and its output file the answer to its
// prompt; no kept task asked for again; paid calls <= tasks + the calls in flight at the kills;
// no lock or temporary file left.
import { expect, it } from "vitest";
import { chaosPipeline } from "../bench/chaos.ts";

it("salvo pipeline killed with SIGKILL at random moments, the final write included, loses nothing and pays only for what was in flight", async () => {
  const seed = Number(process.env.SALVO_CHAOS_SEED ?? Date.now() % 1_000_000);
  const result = await chaosPipeline({
    items: 12,
    kills: 2,
    moments: ["mid-run", "final write"],
    concurrency: 4,
    seed,
  });
  console.log(
    `chaos (salvo pipeline, seed ${seed}): ${result.kills} kills, ${result.calls} calls for ${result.items} tasks, bound ${result.bound} (in flight at the kills: ${result.inFlightAtKills.join(" ")})`,
  );
  expect(result.violations, `seed ${seed}`).toEqual([]);
  expect(result.calls).toBeLessThanOrEqual(result.bound);
  expect(result.kills).toBeGreaterThanOrEqual(1);
}, 120_000);
