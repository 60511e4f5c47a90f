// `salvo sim`: runs the simulated provider until interrupted. Flags override a scenario file;
// every value is validated once, and a bad one is a ConfigError naming the flag or the field.

import { readdir } from "node:fs/promises";
import type { Command } from "commander";
import { ConfigError } from "../../errors.ts";
import type { SimConfigInput, SimHandle, SimStats } from "../../sim/index.ts";
import { SCENARIO_DIR } from "../../sim/scenario-dir.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

export { SCENARIO_DIR };

type Flag = {
  /** Commander's flag spelling. */
  flags: string;
  /** The dotted config field it sets. */
  field: string;
  description: string;
  /** How the text becomes a value; numbers by default. */
  kind?: "number" | "string" | "boolean" | "range";
};

// One table drives the options, their help, their conversion and their error names.
const FLAGS: readonly Flag[] = [
  {
    flags: "--port <n>",
    field: "port",
    description: "port to listen on; 0 picks a free one (default: 0)",
  },
  {
    flags: "--host <host>",
    field: "host",
    kind: "string",
    description: "interface to listen on (default: 127.0.0.1)",
  },
  {
    flags: "--seed <n>",
    field: "seed",
    description: "seed for jitter, faults and answer lengths (default: 1)",
  },
  {
    flags: "--slots <n>",
    field: "capacity.slots",
    description: "requests in service at once (default: unlimited)",
  },
  {
    flags: "--queue <n>",
    field: "capacity.queue",
    description: "requests waiting for a slot before 503/529 (default: unlimited)",
  },
  { flags: "--rpm <n>", field: "limits.rpm", description: "requests per minute (default: none)" },
  {
    flags: "--tpm <n>",
    field: "limits.tpm",
    description: "tokens per minute, prompt + max_tokens charged up front (default: none)",
  },
  {
    flags: "--itpm <n>",
    field: "limits.itpm",
    description: "input tokens per minute, Anthropic-style (default: none)",
  },
  {
    flags: "--otpm <n>",
    field: "limits.otpm",
    description: "output tokens per minute, charged by actual output (default: none)",
  },
  {
    flags: "--burst-seconds <s>",
    field: "limits.burstSeconds",
    description: "bucket capacity in seconds of each limit (default: 1)",
  },
  {
    flags: "--ttft-ms <ms>",
    field: "latency.ttftMs",
    description: "time to first token in ms (default: 0)",
  },
  {
    flags: "--ms-per-token <ms>",
    field: "latency.msPerToken",
    description: "time per output token in ms (default: 0)",
  },
  {
    flags: "--jitter <f>",
    field: "latency.jitter",
    description: "relative latency jitter, 0..1 (default: 0)",
  },
  {
    flags: "--load-factor <f>",
    field: "latency.loadFactor",
    description: "latency growth per other request in service (default: 0)",
  },
  {
    flags: "--output-tokens <n|min-max>",
    field: "output.tokens",
    kind: "range",
    description: "answer length in tokens, capped by max_tokens (default: 16)",
  },
  {
    flags: "--echo-chars <n>",
    field: "output.echoChars",
    description: "characters of the last user message echoed after the marker (default: 32)",
  },
  { flags: "--p500 <p>", field: "faults.p500", description: "probability of a 500 (default: 0)" },
  {
    flags: "--p503 <p>",
    field: "faults.p503",
    description: "probability of a 503 (OpenAI) / 529 (Anthropic) (default: 0)",
  },
  {
    flags: "--p-reset <p>",
    field: "faults.pReset",
    description: "probability of a connection reset (default: 0)",
  },
  {
    flags: "--p-malformed <p>",
    field: "faults.pMalformed",
    description: "probability of a 200 with invalid JSON (default: 0)",
  },
  {
    flags: "--p-truncated <p>",
    field: "faults.pTruncated",
    description: "probability of a 200 with a cut body (default: 0)",
  },
  {
    flags: "--p-hang <p>",
    field: "faults.pHang",
    description: "probability of never answering (default: 0)",
  },
  {
    flags: "--p-slow <p>",
    field: "faults.pSlow",
    description: "probability of a slow first byte (default: 0)",
  },
  {
    flags: "--slow-ms <ms>",
    field: "faults.slowMs",
    description: "delay of a slow first byte in ms (default: 2000)",
  },
  {
    flags: "--should-retry",
    field: "faults.shouldRetry",
    kind: "boolean",
    description: "send x-should-retry: true on injected 5xx (default: off)",
  },
  {
    flags: "--quota",
    field: "quota",
    kind: "boolean",
    description: "answer every request with a quota error, never retryable (default: off)",
  },
  {
    flags: "--timeline-limit <n>",
    field: "timelineLimit",
    description: "requests kept in the stats timeline (default: 100000)",
  },
];

const WHERE = "command line";

function flagName(flag: Flag): string {
  return flag.flags.split(" ")[0]!;
}

function optionKey(flag: Flag): string {
  return flagName(flag)
    .slice(2)
    .replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function convert(flag: Flag, text: unknown): unknown {
  if (flag.kind === "boolean" || flag.kind === "string") return text;
  const raw = String(text).trim();
  if (flag.kind === "range") {
    const m = /^(\d+)\s*-\s*(\d+)$/.exec(raw);
    if (m) return { min: Number(m[1]), max: Number(m[2]) };
  }
  const value = raw === "" ? Number.NaN : Number(raw);
  if (Number.isNaN(value)) {
    throw new ConfigError({
      field: flagName(flag),
      expected: flag.kind === "range" ? "a number or MIN-MAX" : "a number",
      got: text,
      where: WHERE,
    });
  }
  return value;
}

/** The config the flags describe (only the flags that were given). */
export async function configFromFlags(options: Record<string, unknown>): Promise<SimConfigInput> {
  const config: Record<string, unknown> = {};
  for (const flag of FLAGS) {
    const text = options[optionKey(flag)];
    if (text === undefined) continue;
    const path = flag.field.split(".");
    let node = config;
    for (const key of path.slice(0, -1)) {
      node[key] ??= {};
      node = node[key] as Record<string, unknown>;
    }
    node[path.at(-1)!] = convert(flag, text);
  }
  const byField = new Map(FLAGS.map((f) => [f.field, flagName(f)]));
  try {
    return await validate(config, byField);
  } catch (error) {
    // `--output-tokens 9-3` failed as `output.tokens.max`: show the flag's text as given.
    const flag =
      error instanceof ConfigError ? FLAGS.find((f) => flagName(f) === error.field) : undefined;
    if (flag?.kind !== "range" || !(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      { field: error.field, expected: error.expected, got: options[optionKey(flag)], where: WHERE },
      { cause: error },
    );
  }
}

async function validate(
  config: Record<string, unknown>,
  byField: Map<string, string>,
): Promise<SimConfigInput> {
  const { validateSimConfig } = await import("../../sim/index.ts");
  return validateSimConfig(config, {
    where: WHERE,
    fieldName: (dotted) => {
      // `output.tokens.max` was set by `--output-tokens`.
      for (let parts = dotted.split("."); parts.length > 0; parts = parts.slice(0, -1)) {
        const name = byField.get(parts.join("."));
        if (name) return name;
      }
      return dotted;
    },
  });
}

async function presetPath(name: string): Promise<string> {
  const known = (await readdir(SCENARIO_DIR))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => f.slice(0, -5));
  if (!known.includes(name)) {
    throw new ConfigError({
      field: "--preset",
      expected: `one of ${known.sort().join(", ")}`,
      got: name,
      where: WHERE,
    });
  }
  return `${SCENARIO_DIR}${name}.yaml`;
}

/** One line about what the simulator ended with. */
export function statsSummary(stats: SimStats): string {
  const statuses = Object.entries(stats.byStatus)
    .map(([status, n]) => `${status}x${n}`)
    .join(" ");
  const faults = Object.values(stats.byFault).reduce((a, b) => a + b, 0);
  return (
    `${stats.arrivals} requests, ${stats.completions} answered, ${stats.refusals.rateLimited} rate-limited, ` +
    `${faults} faults; status ${statuses || "none"}; peak ${stats.maxInService} in service, ` +
    `${stats.maxInServer} in server`
  );
}

function describe(sim: SimHandle): string {
  const pool = sim.config.pools.openai;
  const limit = (n: number) => (n === Infinity ? "unlimited" : String(n));
  const limits = (["rpm", "tpm", "itpm", "otpm"] as const)
    .filter((k) => pool[k] !== undefined)
    .map((k) => `${k} ${pool[k]}`);
  return `seed ${sim.config.seed}; slots ${limit(pool.slots)}, queue ${limit(pool.queue)}; ${limits.join(", ") || "no rate limits"}`;
}

/**
 * A subcommand that writes through `io` and throws instead of exiting. `program.addCommand` does
 * not pass the program's settings down, so each command sets them.
 */

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true }),
  );
}

export function simCommand(io: CliIo): Command {
  const command = cliCommand("sim", io)
    .description(
      "start the simulated LLM provider (OpenAI- and Anthropic-compatible) on loopback; runs until Ctrl-C",
    )
    .option("--scenario <file>", "YAML or JSON scenario file; flags override it")
    .option(
      "--preset <name>",
      "a checked-in scenario by name (see scenarios/), e.g. demo, fault-storm",
    );
  for (const flag of FLAGS) command.option(flag.flags, flag.description);
  command.addHelpText(
    "after",
    "\nPoint the OpenAI SDK at the printed OPENAI_BASE_URL and the Anthropic SDK at ANTHROPIC_BASE_URL;\n" +
      "GET /_sim/stats shows what the simulator saw, POST /_sim/reset clears it.",
  );
  return command.action(async (options: Record<string, unknown>) => {
    if (options.scenario !== undefined && options.preset !== undefined) {
      throw new ConfigError({
        field: "--preset",
        expected: "either --scenario or --preset, not both",
        got: options.preset,
        where: WHERE,
      });
    }
    const flags = await configFromFlags(options);
    const { loadScenario, mergeSimConfig, startSimulator } = await import("../../sim/index.ts");
    const file =
      typeof options.preset === "string"
        ? await presetPath(options.preset)
        : (options.scenario as string | undefined);
    const base = file === undefined ? {} : await loadScenario(file);
    const sim = await startSimulator(mergeSimConfig(base, flags));
    io.stdout.write(
      `salvo sim: listening on ${sim.origin} (${describe(sim)})\n` +
        `OPENAI_BASE_URL=${sim.baseUrl}\n` +
        `ANTHROPIC_BASE_URL=${sim.origin}\n` +
        `stats: ${sim.origin}/_sim/stats (Ctrl-C to stop)\n`,
    );
    await untilAborted(io.signal);
    const stats = sim.stats({ timeline: false });
    await sim.close();
    io.stdout.write(`salvo sim: stopped. ${statsSummary(stats)}\n`);
  });
}
