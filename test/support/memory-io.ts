// An in-memory CliIo for running the CLI inside a test: what it printed, and a signal to abort.
import type { CliIo } from "../../src/cli/io.ts";

export type MemoryIo = CliIo & { out: string; err: string };

export function memoryIo(
  env: Record<string, string | undefined> = {},
  signal?: AbortSignal,
): MemoryIo {
  const io: MemoryIo = {
    out: "",
    err: "",
    env,
    isTTY: false,
    signal: signal ?? new AbortController().signal,
    exitCode: undefined,
    stdout: { write: (text: string) => (io.out += text) },
    stderr: { write: (text: string) => (io.err += text) },
  };
  return io;
}
