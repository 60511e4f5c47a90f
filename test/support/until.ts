// Waits for a condition the test expects to become true (a server noticing a closed socket, a
// counter reaching its total), checking it after every turn of the event loop's timers. It has
// no timeout of its own: if the condition never holds, the test's timeout fails the test.
export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}
