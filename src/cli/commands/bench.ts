// `salvo bench <scenario files...>`: runs the users' own scenarios (the simulator's format, with an
// optional `bench:` section describing the work) against Salvo and its peers, on a fresh simulated
// server per run, and writes results.json and results.md. The harness lives in bench/ (it is the
// same one `npm run bench` uses); peers that are not installed are reported as unavailable.

import type { Command } from "commander";
import { ConfigError } from "../../errors.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigError({
      field: flag,
      expected: "an integer >= 1",
      got: text,
      where: "command line",
    });
  }
  return value;
}

export function benchCommand(io: CliIo): Command {
  return cliCommand("bench", io)
    .description(
      "benchmark Salvo against p-limit, p-queue, Bottleneck, LangChain and sequential calls on simulated servers, against the physical bound M*",
    )
    .argument(
      "<scenarios...>",
      "scenario files: the simulator's YAML/JSON format plus an optional `bench:` section (calls, stages, concurrency, maxTokens, promptTokens, timeoutMs, knownLimits, skip, stream, targets, quick)",
    )
    .option("--quick", "use each scenario's `bench.quick` overrides and 1 repetition")
    .option("--reps <n>", "repetitions per contender and scenario (default: 3, or 1 with --quick)")
    .option(
      "--contenders <names>",
      "comma-separated: salvo, salvo-auto, p-limit, p-queue, bottleneck, langchain, sequential (default: all available)",
    )
    .option("--out <dir>", "where results.json and results.md go", "bench-results")
    .addHelpText(
      "after",
      "\nEach contender runs in its own process (its CPU and memory are its own) against a fresh simulator;\n" +
        "makespans are reported as multiples of M* and of Salvo's. See scenarios/bench/ for examples.",
    )
    .action(async (files: string[], options: Record<string, string | boolean | undefined>) => {
      const { runBench } = await import("../../../bench/harness.ts");
      const { summaryTable, writeResults } = await import("../../../bench/report.ts");
      const reps =
        typeof options.reps === "string" ? positiveInteger("--reps", options.reps) : undefined;
      const results = await runBench({
        files,
        quick: options.quick === true,
        repetitions: reps,
        contenders:
          typeof options.contenders === "string" ? options.contenders.split(",") : undefined,
        onProgress: (line) => io.stdout.write(`${line}\n`),
        signal: io.signal,
      });
      const written = await writeResults(results, String(options.out));
      io.stdout.write(`\n${summaryTable(results)}\n`);
      for (const s of results.scenarios) {
        for (const v of s.verdicts) {
          io.stdout.write(`${v.met ? "met    " : "NOT MET"}  ${s.id}: ${v.target} (${v.detail})\n`);
        }
      }
      io.stdout.write(`\nwrote ${written.json} and ${written.markdown}\n`);
    });
}
