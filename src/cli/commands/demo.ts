// `salvo demo` (`npm start`): the whole of `salvo run`, offline. Starts the simulator in-process
// (scenarios/claims-demo.yaml: rate limits, limited server slots, a few faults), writes a sample
// batch of insurance claim line items (seed 000's workload), runs it with the live progress bar,
// and prints the summary beside what one call at a time would have taken. No API key, no network.
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { RunSettings } from "../../config/run-settings.ts";
import { SCENARIO_DIR } from "../../sim/scenario-dir.ts";
import { RUN_DEFAULTS } from "../call-options.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";
import { runJob } from "./run.ts";

const PARTS = [
  "front brake pads",
  "rear bumper cover",
  "windscreen",
  "left headlamp unit",
  "radiator",
  "alternator",
  "wing mirror glass",
  "timing belt kit",
  "exhaust back box",
  "bonnet hinge",
];
const LABOUR = ["remove and refit", "replace", "paint and blend", "diagnose", "align"];

/** A claim's line item as an OpenAI Batch line: one coverage question per item. */
function lineItem(i: number): string {
  const claim = 1000 + Math.floor(i / 12);
  const part = PARTS[(i * 7) % PARTS.length];
  const labour = LABOUR[(i * 3) % LABOUR.length];
  const content = `Claim ${claim}, line ${(i % 12) + 1}: ${labour} ${part}, ${1 + (i % 3)} unit(s), ${40 + ((i * 37) % 400)} EUR. Is this covered by a standard comprehensive motor policy? Answer COVERED, NOT_COVERED or REVIEW_NEEDED with one sentence of reason.`;
  return JSON.stringify({
    custom_id: `claim-${claim}-line-${(i % 12) + 1}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: {
      model: "gpt-4o-mini",
      max_tokens: 60,
      messages: [
        { role: "system", content: "You assess motor insurance claim line items for coverage." },
        { role: "user", content },
      ],
    },
  });
}

// The options' defaults are applied in the action, not given to commander: its help would print
// each one a second time after the description's own "(default: ...)".
export function demoCommand(io: CliIo): Command {
  return cliCommand("demo", io)
    .description(
      "run a sample batch of insurance claim line items against the built-in simulated provider, with live progress and a summary (no network, no API key)",
    )
    .option("--items <n>", "how many line items (default: 300)")
    .option("--dir <dir>", "where the input, results and report go (default: ./salvo-demo)")
    .option("--progress <mode>", "auto, bar, plain, json or none (default: auto)")
    .action(async (options: { items?: string; dir?: string; progress?: string }) => {
      const { ConfigError } = await import("../../errors.ts");
      const items = Number(options.items ?? 300);
      if (!Number.isInteger(items) || items < 1 || items > 100_000) {
        throw new ConfigError({
          field: "--items",
          expected: "a whole number from 1 to 100000",
          got: options.items,
          where: "command line",
        });
      }
      const { PROGRESS_MODES } = await import("../../progress/progress-renderer.ts");
      const progress = (options.progress ?? "auto") as RunSettings["progress"];
      if (!PROGRESS_MODES.includes(progress))
        throw new ConfigError({
          field: "--progress",
          expected: PROGRESS_MODES.join(", "),
          got: options.progress,
          where: "command line",
        });
      const dir = resolve(options.dir ?? "salvo-demo");
      await mkdir(dir, { recursive: true });
      const input = join(dir, "claims.jsonl");
      const output = join(dir, "results.jsonl");
      await writeFile(
        input,
        `${Array.from({ length: items }, (_, i) => lineItem(i)).join("\n")}\n`,
      );
      const { loadScenario, startSimulator } = await import("../../sim/index.ts");
      const scenario = await loadScenario(`${SCENARIO_DIR}claims-demo.yaml`);
      const sim = await startSimulator(scenario);
      io.stdout.write(
        `Salvo demo: ${items} claim line items against a simulated provider at ${sim.baseUrl}\n` +
          "  (scenarios/claims-demo.yaml: 1,200 requests/min, 8 in service at once, ~0.3 s per answer, 3% transient faults)\n" +
          `  input ${input}\n\n`,
      );
      const settings: RunSettings = {
        ...RUN_DEFAULTS,
        provider: "openai",
        concurrency: "auto",
        baseUrl: undefined,
        apiKeyEnv: undefined,
        model: undefined,
        rpm: 1200,
        tpm: 200_000,
        itpm: undefined,
        otpm: undefined,
        report: join(dir, "report.json"),
        audit: undefined,
        fresh: true,
        sim: "claims-demo",
        progress,
      };
      try {
        io.exitCode = await runJob({ input, output, settings, io, simulator: sim });
      } finally {
        await sim.close();
      }
      io.stdout.write(
        `\nNext: look at ${output}, then run a batch of your own:\n` +
          "  npx salvo run your-requests.jsonl --output results.jsonl --rpm 500 --tpm 200000\n" +
          "  (OPENAI_API_KEY in the environment; --sim to try it against the simulator first)\n",
      );
    });
}
