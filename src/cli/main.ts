// The `salvo` command line. The only module that touches process.argv, process.exit and the
// terminal streams; each command lives in commands/<name>.ts, parses its options and calls the
// library, and resolves to an exit code.
import { Command, CommanderError } from "commander";
import { SalvoError } from "../errors.ts";
import { redactRegistered } from "../providers/secret-scrubber.ts";
import { cacheCommand } from "./commands/cache.ts";
import { demoCommand } from "./commands/demo.ts";
import { pipelineCommand } from "./commands/pipeline.ts";
import { probeCommand } from "./commands/probe.ts";
import { runCommand } from "./commands/run.ts";
import { serveCommand } from "./commands/serve.ts";
import { simCommand } from "./commands/sim.ts";
import { verifyCommand } from "./commands/verify.ts";
import { workerCommand } from "./commands/worker.ts";
import { type CliIo, EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE } from "./io.ts";
import { packageVersion } from "./version.ts";

/** Errors that mean "fix the command or the input": nothing was run. */
const USAGE_CODES = new Set([
  "SALVO_CONFIG_INVALID",
  "SALVO_INPUT_INVALID",
  "SALVO_INPUT_REJECTED",
  "SALVO_RESUME_REFUSED",
  "SALVO_LOCKED",
  "SALVO_CACHE_FAILED",
  "SALVO_REDIS_UNAVAILABLE",
]);

export function buildProgram(io: CliIo): Command {
  const program = new Command("salvo")
    .description(
      "Run large numbers of LLM API calls as fast as the provider allows, and no faster, losing nothing.",
    )
    .version(packageVersion(), "-V, --version", "print the version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();
  for (const make of [
    runCommand,
    demoCommand,
    probeCommand,
    simCommand,
    verifyCommand,
    cacheCommand,
    pipelineCommand,
    serveCommand,
    workerCommand,
  ])
    program.addCommand(make(io));
  return program;
}

/** Runs the CLI with the given arguments; resolves to the process exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return io.exitCode ?? 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with exit code 0.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (error instanceof SalvoError) {
      io.stderr.write(`salvo: ${error.message} [${error.code}]\n`);
      return USAGE_CODES.has(error.code) ? EXIT_USAGE : 1;
    }
    throw error;
  }
}

/** The process entry point (bin/salvo.js). */
export function main(): void {
  const interrupt = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (interrupt.signal.aborted) process.exit(EXIT_INTERRUPTED); // a second Ctrl-C: stop now
    interrupt.abort(new Error(`received ${name}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Started by a parent with an IPC channel (a coordinator's local worker): if the parent goes
  // away, stop as on SIGTERM. The channel itself must not keep the process alive.
  const onParentGone = () => {
    if (!interrupt.signal.aborted) interrupt.abort(new Error("the parent process went away"));
  };
  process.channel?.unref();
  process.on("disconnect", onParentGone);
  // A reader that went away (`salvo sim --help | head`) is not an error of ours: stop quietly,
  // with the exit code a shell gives a process killed by SIGPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") throw error;
      process.exit(EXIT_BROKEN_PIPE);
    });
  }
  const io: CliIo = {
    signal: interrupt.signal,
    // A last line of defence: no key a provider was built with reaches the terminal, whatever
    // echoed it (the providers already scrub their results and errors).
    stdout: { write: (text: string) => process.stdout.write(redactRegistered(text)) },
    stderr: { write: (text: string) => process.stderr.write(redactRegistered(text)) },
    env: process.env,
    isTTY: Boolean(process.stderr.isTTY),
    // Read at every redraw, so that the display follows a resized terminal.
    get columns() {
      return process.stderr.columns;
    },
    exitCode: undefined,
  };
  runCli(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("disconnect", onParentGone);
    },
    (error: unknown) => {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`salvo: internal error: ${text}\n`);
      process.exitCode = EXIT_INTERNAL;
    },
  );
}
