// Flushes audit files when the process ends, registered once for the whole process.
//
// - `exit` (any normal end, `process.exit()` included) and `beforeExit`: every registered flush
//   runs synchronously (writeSync + fdatasyncSync of what is still queued).
// - SIGINT / SIGTERM: the flushes run; then, if no one else listens for that signal, the
//   listener removes itself and re-raises the signal, so the program still dies of it as it
//   would without Salvo. A program with its own handler (the CLI's `main`) keeps control.
// A process killed by SIGKILL or a power loss flushes nothing: the writer then leaves at worst
// a torn last line, which the next open heals (see torn-tail.ts).

type Flush = () => void;

const flushes = new Set<Flush>();
let installed = false;

function flushAll(): void {
  for (const flush of flushes) {
    try {
      flush();
    } catch {
      // A failed file must not stop the others from being flushed; its own error was reported.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  flushAll();
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

/** Registers `flush` to run synchronously at exit and on SIGINT/SIGTERM; returns its removal. */
export function onExitFlush(flush: Flush): () => void {
  if (!installed) {
    installed = true;
    process.on("exit", flushAll);
    process.on("beforeExit", flushAll);
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  flushes.add(flush);
  return () => {
    flushes.delete(flush);
  };
}
