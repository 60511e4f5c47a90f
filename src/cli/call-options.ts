// The options every command that calls a provider shares (`salvo run`, `pipeline`, `serve`...),
// and their defaults. Only commander is imported here: a command's --help must not load the
// SDKs, the tokenizer or the simulator.
import type { Command } from "commander";
import { RUN_DEFAULTS } from "../config/run-defaults.ts";

export { RUN_DEFAULTS };

/**
 * Adds the options of a command that calls a provider: where (`--base-url`, `--api-key-env`,
 * `--sim`), how fast (`--concurrency`, `--rpm`, ...), how patiently (`--max-attempts`,
 * `--timeout`, ...), progress, audit and `--config`. `--provider` and `--model` stay with each
 * command (their defaults differ).
 */
export function addCallOptions(command: Command): Command {
  return command
    .option(
      "--base-url <url>",
      "API base URL (default: $OPENAI_BASE_URL / $ANTHROPIC_BASE_URL, else the provider's)",
    )
    .option(
      "--api-key-env <name>",
      "environment variable holding the API key (default: OPENAI_API_KEY / ANTHROPIC_API_KEY)",
    )
    .option(
      "--concurrency <n|auto>",
      `calls in flight at once, or auto: adaptive, climbs while throughput grows and holds at the knee where more calls would only queue or slow each other, backs off on 429s and overload, starts from known limits (salvo run: or the last run's learned limit, kept beside the output) (default: ${RUN_DEFAULTS.concurrency})`,
    )
    .option("--max-concurrency <n>", "the most calls auto may have in flight (default: 256)")
    .option("--rpm <n>", "requests per minute (default: none; learned from rate-limit headers)")
    .option(
      "--tpm <n>",
      "tokens per minute, prompt + max_tokens (default: none; learned from headers)",
    )
    .option("--itpm <n>", "Anthropic input tokens per minute (default: none)")
    .option("--otpm <n>", "Anthropic output tokens per minute (default: none)")
    .option(
      "--burst-seconds <s>",
      `seconds of each per-minute limit that may go at once (default: ${RUN_DEFAULTS.burstSeconds})`,
    )
    .option(
      "--max-attempts <n>",
      `attempts per call, the first included (default: ${RUN_DEFAULTS.maxAttempts})`,
    )
    .option("--timeout <duration>", "per-attempt timeout, e.g. 30s, 2m (default: 2m)")
    .option("--deadline <duration>", "per-call deadline across all attempts (default: none)")
    .option(
      "--max-retry-after <duration>",
      "the longest Retry-After a provider may ask for: a longer one fails the call at once with SALVO_RETRY_AFTER_TOO_LONG instead of waiting (one past --deadline fails it with SALVO_DEADLINE_EXCEEDED) (default: 2m)",
    )
    .option(
      "--grace <duration>",
      "after Ctrl-C, how long calls in flight may finish (default: 30s)",
    )
    .option(
      "--progress <mode>",
      "auto, bar, plain, json or none (default: auto: a bar on a terminal, plain lines otherwise)",
    )
    .option(
      "--sim [scenario]",
      "run against the built-in simulator: a scenario name in scenarios/ or a file (default scenario: demo)",
    )
    .option(
      "--audit <file>",
      "call log: one hash-chained record per attempt, checked by `salvo verify` (default: none)",
    )
    .option(
      "--audit-content <mode>",
      "what the call log keeps of requests and answers: full, hash or none (default: hash)",
    )
    .option(
      "--config <file>",
      "read settings from a JSON or YAML file (flags and SALVO_* variables override it)",
    );
}
