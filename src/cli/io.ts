// What a command may use of the outside world; tests pass their own.

export type CliIo = {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  /** Whether stderr, where progress goes, is an interactive terminal (live progress bars). */
  isTTY: boolean;
  /** The terminal's width in columns, when stderr is a terminal. */
  columns?: number | undefined;
  /** Aborted on SIGINT / SIGTERM: long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
  /** Set by a command that wants a non-zero exit code without throwing. */
  exitCode: number | undefined;
};

/** Every item succeeded. */
export const EXIT_OK = 0;
/** The run completed but some items failed; the output is still complete. */
export const EXIT_SOME_FAILED = 1;
/** Bad usage or bad input: nothing was run. */
export const EXIT_USAGE = 2;
/** Interrupted (Ctrl-C); the run can be resumed. */
export const EXIT_INTERRUPTED = 130;
/** An internal error: a bug (sysexits' EX_SOFTWARE). */
export const EXIT_INTERNAL = 70;
/** The reader of the output went away (a closed pipe): what a shell gives a process SIGPIPE killed. */
export const EXIT_BROKEN_PIPE = 141;
