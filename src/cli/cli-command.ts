// A subcommand with the program's settings. commander's addCommand does not pass exitOverride or
// configureOutput down, so without this a subcommand's --help would call process.exit and write
// to the real stdout.
import { Command } from "commander";
import type { CliIo } from "./io.ts";

/** A new command that throws instead of exiting and writes through `io`. */
export function cliCommand(name: string, io: CliIo): Command {
  return new Command(name)
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
}
