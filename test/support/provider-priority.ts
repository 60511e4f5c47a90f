// The simulator stands in for a provider: a server on other machines, whose clock and CPU the
// client's load never touches. In a test it shares this machine's cores with the client, and on
// a machine kept busy (CI, or `npm test` beside other work) its event loop can wait hundreds of
// milliseconds to run: it then reads arrivals the client sent apart as if they came together,
// and its rate limiter refuses them. Tests that judge the client's pacing from the simulator's
// own clock run the simulator's thread ahead of the machine's other work while they measure.
import { getPriority, setPriority } from "node:os";

/**
 * Runs `measure` with this process's main thread (where the in-process simulator serves) at
 * nice -10, then puts it back. Processes started before the call (the client under test) keep
 * their own priority; ones started during it inherit this one. Where the priority cannot be
 * raised (not root, no CAP_SYS_NICE), runs `measure` as it is.
 */
export async function asTheProvider<T>(measure: () => Promise<T>): Promise<T> {
  const before = getPriority();
  let raised = false;
  try {
    setPriority(Math.min(before, -10));
    raised = true;
  } catch {
    // Not permitted here: the measurement runs at the machine's mercy, as it did before.
  }
  try {
    return await measure();
  } finally {
    if (raised) setPriority(before);
  }
}
