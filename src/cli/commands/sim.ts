import { Command } from "commander";
import type { CliIo } from "../io.ts";

// Placeholder until the simulator lands.
export function simCommand(io: CliIo): Command {
  return new Command("sim").description("start the simulated LLM provider").action(() => {
    io.stderr.write("not yet\n");
    io.exitCode = 1;
  });
}
