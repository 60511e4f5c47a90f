// `salvo` as a real child process (bin/salvo.js), for tests that kill it or run two at once:
// its exit, what it printed, and small helpers to wait on files it writes.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const BIN = new URL("../../bin/salvo.js", import.meta.url).pathname;

export type SalvoProcess = {
  readonly pid: number;
  /** Resolves when the process has exited (and been reaped). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  kill(signal?: NodeJS.Signals): void;
};

/** Starts `salvo ...args` with `env` over the test's environment. */
export function startSalvo(args: string[], env: Record<string, string> = {}): SalvoProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d;
  });
  child.stderr.on("data", (d: Buffer) => {
    err += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    pid: child.pid ?? -1,
    exited,
    stdout: () => out,
    stderr: () => err,
    kill: (signal = "SIGKILL") => {
      child.kill(signal);
    },
  };
}

/** Polls `condition` every 5 ms until it holds; rejects after `timeoutMs`. */
export async function until(
  condition: () => boolean,
  timeoutMs: number,
  what = "a condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The complete lines of a file (a torn last line is left out); [] if it does not exist. */
export function completeLines(path: string): string[] {
  if (!existsSync(path)) return [];
  const parts = readFileSync(path, "utf8").split("\n");
  parts.pop();
  return parts;
}
