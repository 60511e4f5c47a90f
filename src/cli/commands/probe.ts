// `salvo probe`: measures an endpoint's latency and throughput at increasing concurrency in a
// short, bounded sweep, finds the knee, reads the rate-limit headers, and recommends the
// concurrency and limits to run with. The thin edge: flags are validated and the result printed
// here; the library's `probeEndpoint` does the work (loaded only when the command runs).

import { type Command, Option } from "commander";
import { ConfigError } from "../../errors.ts";
import { probeRequest as requestFor } from "../../probe/probe-endpoint.ts";
import { DEFAULT_LEVELS } from "../../probe/sweep.ts";
import type { Provider, ProviderRequest } from "../../providers/provider.ts";
import { BASE_URL_ENV, KEY_ENV, type ProviderName } from "../../providers/provider-names.ts";
import type { SimHandle } from "../../sim/index.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

const WHERE = "command line";

/** The probe's settings, validated. */
export type ProbeSettings = {
  provider: ProviderName;
  baseUrl: string | undefined;
  model: string;
  apiKeyEnv: string;
  maxRequests: number;
  levels: number[];
  maxTokens: number;
  json: boolean;
  /** A scenario name or file, to probe the built-in simulator. */
  sim: string | undefined;
};

type RawOptions = Record<string, unknown>;

function fail(field: string, expected: string, got: unknown): never {
  throw new ConfigError({ field, expected, got, where: WHERE });
}

function wholeNumber(field: string, raw: unknown, min: number, max: number): number {
  const text = String(raw).trim();
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) fail(field, `a whole number from ${min} to ${max}`, raw);
  return value;
}

/** Validates the flags once; every bad value is a ConfigError naming the flag. */
export function probeSettings(options: RawOptions, env: CliIo["env"]): ProbeSettings {
  const provider = options.provider ?? "openai";
  if (provider !== "openai" && provider !== "anthropic") {
    fail("--provider", "openai or anthropic", provider);
  }
  const sim =
    options.sim === undefined ? undefined : options.sim === true ? "slots-4" : String(options.sim);
  const model = options.model ?? (sim !== undefined ? "gpt-4o-mini" : undefined);
  if (typeof model !== "string" || model.trim() === "") {
    fail("--model", "a model name (required unless --sim)", options.model);
  }
  let baseUrl = options.baseUrl as string | undefined;
  if (baseUrl !== undefined) {
    try {
      const url = new URL(baseUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme");
    } catch {
      fail("--base-url", "an http:// or https:// URL", baseUrl);
    }
  }
  if (sim !== undefined && baseUrl !== undefined) {
    fail("--base-url", "either --base-url or --sim, not both", baseUrl);
  }
  baseUrl ??= sim === undefined ? env[BASE_URL_ENV[provider]] : undefined;
  const apiKeyEnv = (options.apiKeyEnv as string | undefined) ?? KEY_ENV[provider];
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(apiKeyEnv)) {
    // Not echoed: what lands here by mistake is most often the key itself.
    fail(
      "--api-key-env",
      "the name of an environment variable, not the key itself",
      `${apiKeyEnv.length} characters, not shown (it may be a key)`,
    );
  }
  const maxRequests =
    options.maxRequests === undefined
      ? 200
      : wholeNumber("--max-requests", options.maxRequests, 1, 10_000);
  const maxTokens =
    options.maxTokens === undefined
      ? 16
      : wholeNumber("--max-tokens", options.maxTokens, 1, 100_000);
  let levels = [...DEFAULT_LEVELS];
  if (options.levels !== undefined) {
    const parts = String(options.levels).split(",");
    levels = parts.map((p) => {
      const text = p.trim();
      const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
      if (!(value >= 1 && value <= 1024)) {
        fail(
          "--levels",
          "increasing whole numbers from 1 to 1024, comma-separated",
          options.levels,
        );
      }
      return value;
    });
    if (levels.some((l, i) => i > 0 && l <= levels[i - 1]!)) {
      fail("--levels", "increasing whole numbers from 1 to 1024, comma-separated", options.levels);
    }
  }
  return {
    provider,
    baseUrl,
    model,
    apiKeyEnv,
    maxRequests,
    levels,
    maxTokens,
    json: options.json === true,
    sim,
  };
}

/** The provider to probe, and the base URL it is shown as. */
async function providerFor(
  settings: ProbeSettings,
  env: CliIo["env"],
  sim: SimHandle | undefined,
): Promise<{ provider: Provider; baseUrl: string }> {
  const { providerFromSettings } = await import("../../config/run-settings.ts");
  const anthropic = settings.provider === "anthropic";
  const provider = providerFromSettings(settings.provider, settings, env, sim);
  if (sim) return { provider, baseUrl: anthropic ? sim.origin : sim.baseUrl };
  const shown =
    settings.baseUrl ?? (anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1");
  return { provider, baseUrl: shown };
}

/** The probe request: a short prompt and a small answer, the same at every level. */
export function probeRequest(settings: ProbeSettings): ProviderRequest {
  return requestFor(settings.provider, settings.model, settings.maxTokens);
}

export function probeCommand(io: CliIo): Command {
  return cliCommand("probe", io)
    .description(
      "measure an endpoint's latency and throughput at increasing concurrency (a short sweep with a request budget), find the knee, read the rate-limit headers, and recommend --concurrency, --rpm and --tpm",
    )
    .addOption(new Option("--provider <name>", "openai or anthropic (default: openai)"))
    .option(
      "--base-url <url>",
      "API base URL (default: $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL, else the provider's)",
    )
    .option("--model <model>", "the model to probe (required unless --sim)")
    .option(
      "--api-key-env <name>",
      "environment variable holding the API key (default: OPENAI_API_KEY / ANTHROPIC_API_KEY)",
    )
    .option("--max-requests <n>", "the most requests the whole probe sends (default: 200)")
    .option(
      "--levels <list>",
      `concurrency levels to try, increasing (default: ${DEFAULT_LEVELS.join(",")})`,
    )
    .option("--max-tokens <n>", "max_tokens of each probe request (default: 16)")
    .option("--json", "print the result as JSON (default: a table, a chart and a recommendation)")
    .option(
      "--sim [scenario]",
      "probe the built-in simulator: a scenario name in scenarios/ or a file (default scenario: slots-4)",
    )
    .action(async (options: RawOptions) => {
      const settings = probeSettings(options, io.env);
      const { startSimulatorFor } = await import("../../config/run-settings.ts");
      const { probeEndpoint } = await import("../../probe/probe-endpoint.ts");
      const { formatProbe, probeJson } = await import("../../probe/format-probe.ts");
      const sim = settings.sim !== undefined ? await startSimulatorFor(settings.sim) : undefined;
      try {
        const { provider, baseUrl } = await providerFor(settings, io.env, sim);
        const request = probeRequest(settings);
        if (!settings.json) {
          io.stderr.write(
            `salvo probe: ${baseUrl} model ${settings.model} (${settings.provider}); levels ${settings.levels.join(",")}, at most ${settings.maxRequests} requests\n`,
          );
        }
        const { sweep: result, recommendation: rec } = await probeEndpoint({
          provider,
          request,
          levels: settings.levels,
          maxRequests: settings.maxRequests,
          signal: io.signal,
          onLevel: settings.json
            ? undefined
            : (l) =>
                io.stderr.write(
                  `  concurrency ${l.concurrency}: ${l.ok}/${l.requests} ok, ${l.throughputRps.toFixed(1)} req/s, p50 ${Math.round(l.p50Ms)} ms\n`,
                ),
        });
        const target = { provider: settings.provider, baseUrl, model: settings.model };
        io.stdout.write(
          settings.json
            ? `${JSON.stringify(probeJson(target, result, rec), null, 2)}\n`
            : formatProbe(result, rec),
        );
      } finally {
        await sim?.close();
      }
    });
}
