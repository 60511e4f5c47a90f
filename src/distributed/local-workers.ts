// The worker processes a coordinator starts on its own machine (`salvo run --redis URL --workers
// N`): N `salvo worker --batch ID` children, each a full Salvo process sharing the batch's queue
// and admission with any remote workers. A child that dies while the batch runs (a crash, an OOM
// kill, `kill -9`) is started again, so the batch keeps N local workers; its jobs go back to the
// queue when their locks expire. The children hold an IPC channel to the coordinator and stop
// gracefully if it goes away.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The `salvo` command's entry point (bin/salvo.js), beside src/ and dist/ alike. */
export const SALVO_BIN = fileURLToPath(new URL("../../bin/salvo.js", import.meta.url));

export type LocalWorkersOptions = {
  /** How many worker processes to keep running. */
  count: number;
  /** The arguments after `salvo`, e.g. ["worker", "--redis", URL, "--batch", ID]. */
  args: string[];
  /** Their environment (the API key variable included). */
  env: Record<string, string | undefined>;
  /** The command that runs `salvo`. @default [process.execPath, SALVO_BIN] */
  command?: string[] | undefined;
  /** Most restarts over the run, after which a dead worker stays dead. @default 20 * count */
  maxRestarts?: number | undefined;
  /** Told about a line a worker wrote to stderr, a death and a restart. */
  onMessage?: ((message: string) => void) | undefined;
};

export class LocalWorkers {
  readonly #options: LocalWorkersOptions;
  readonly #children = new Set<ChildProcess>();
  #restarts = 0;
  #deaths = 0;
  #stopping = false;
  #started = 0;

  constructor(options: LocalWorkersOptions) {
    this.#options = options;
  }

  /** Worker processes started in all, restarts included. */
  get started(): number {
    return this.#started;
  }

  /** Workers that died while the batch ran (each was restarted while restarts were left). */
  get deaths(): number {
    return this.#deaths;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** The pids of the workers running now. */
  get pids(): number[] {
    return [...this.#children].map((child) => child.pid ?? -1);
  }

  start(): void {
    for (let k = 0; k < this.#options.count; k++) this.#spawn(k);
  }

  #spawn(slot: number): void {
    const [command, ...prefix] = this.#options.command ?? [process.execPath, SALVO_BIN];
    const child = spawn(command!, [...prefix, ...this.#options.args], {
      env: this.#options.env,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    this.#started++;
    this.#children.add(child);
    let tail = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      tail += chunk;
      const lines = tail.split("\n");
      tail = lines.pop() ?? "";
      for (const line of lines)
        if (line.trim() !== "") this.#options.onMessage?.(`worker ${child.pid}: ${line}`);
    });
    child.on("exit", (code, signal) => {
      this.#children.delete(child);
      if (this.#stopping) return;
      this.#deaths++;
      const how = signal ?? `exit code ${code}`;
      const maxRestarts = this.#options.maxRestarts ?? 20 * this.#options.count;
      if (this.#restarts >= maxRestarts) {
        this.#options.onMessage?.(
          `worker ${child.pid} died (${how}); ${maxRestarts} restarts used, it is not started again`,
        );
        return;
      }
      this.#restarts++;
      this.#options.onMessage?.(`worker ${child.pid} died (${how}); starting another`);
      setTimeout(() => {
        if (!this.#stopping) this.#spawn(slot);
      }, 250).unref();
    });
    // The coordinator's side of the IPC channel must not keep it alive.
    child.channel?.unref();
  }

  /** From now on a worker that exits is not started again (the batch is ending). */
  finishing(): void {
    this.#stopping = true;
  }

  /**
   * Waits for the workers to leave on their own (they do once the batch is finished), then asks
   * the rest to stop (SIGTERM: they finish their calls in flight), and kills what is left after
   * `timeoutMs`.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    const children = [...this.#children];
    const exits = children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once("exit", () => resolve());
        }),
    );
    const all = Promise.all(exits);
    const wait = (ms: number) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        void all.then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    if (await wait(Math.min(2_000, timeoutMs))) return;
    for (const child of this.#children) child.kill("SIGTERM");
    if (await wait(timeoutMs)) return;
    for (const child of this.#children) child.kill("SIGKILL");
    await all;
  }
}
