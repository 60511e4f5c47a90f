// A subcommand with the program's settings. commander's addCommand does not pass exitOverride or
// configureOutput down, so without this a subcommand's --help would call process.exit and write
// to the real stdout.
import { Command, type ParseOptionsResult } from "commander";
import type { CliIo } from "./io.ts";

/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two flags. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * A command that names an unknown option before anything else. commander checks required options
 * first, so a mistyped `--outptu` was reported as "required option '-o' not specified"; here the
 * unknown option is the error, with the closest known one suggested.
 */
class CliCommand extends Command {
  override parseOptions(argv: string[]): ParseOptionsResult {
    const parsed = super.parseOptions(argv);
    const unknown = parsed.unknown[0];
    // A command with subcommands passes unknown options on to them; --help wins over any error.
    const help = parsed.unknown.some((arg) => arg === "-h" || arg === "--help");
    if (this.commands.length === 0 && unknown?.startsWith("-") && unknown.length > 1 && !help) {
      const flag = unknown.split("=")[0]!;
      const known = this.options.flatMap((o) => (o.long === undefined ? [] : [o.long]));
      const close = flag.startsWith("--")
        ? known
            .map((long) => ({ long, d: distance(flag, long) }))
            .filter(({ long, d }) => d <= Math.max(1, Math.floor(long.length * 0.4)))
            .sort((a, b) => a.d - b.d)[0]
        : undefined;
      const suggestion = close === undefined ? "" : `\n(Did you mean ${close.long}?)`;
      this.error(`error: unknown option '${flag}'${suggestion}`, {
        code: "commander.unknownOption",
        exitCode: 1,
      });
    }
    return parsed;
  }
}

/** A new command that throws instead of exiting and writes through `io`. */
export function cliCommand(name: string, io: CliIo): Command {
  return new CliCommand(name)
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
}
