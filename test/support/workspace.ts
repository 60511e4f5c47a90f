// A fresh temporary directory for each test and the simulators it starts, all closed and removed
// after it: the set-up every end-to-end test of a command shares.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { type SimConfigInput, type SimHandle, startSimulator } from "../../src/sim/index.ts";

export type Workspace = {
  /** This test's directory (0700, under the system's temp directory). */
  readonly dir: string;
  /** Starts a simulator with `defaults` under `config` (shallow); it is closed after the test. */
  simulator(config?: SimConfigInput): Promise<SimHandle>;
};

/** Call at the top of a test file (or a describe): registers its own beforeEach and afterEach. */
export function useWorkspace(prefix: string, defaults: SimConfigInput = {}): Workspace {
  let dir = "";
  const sims: SimHandle[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await Promise.all(sims.splice(0).map((sim) => sim.close()));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    async simulator(config: SimConfigInput = {}) {
      const sim = await startSimulator({ ...defaults, ...config });
      sims.push(sim);
      return sim;
    },
  };
}
