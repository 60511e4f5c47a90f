import { Command } from "commander";
import type { CliIo } from "../io.ts";

// Placeholder until the simulator lands.
export function demoCommand(io: CliIo): Command {
  return new Command("demo").description("run the offline demo").action(() => {
    io.stderr.write("not yet\n");
    io.exitCode = 1;
  });
}
