// `salvo worker --redis URL`: works on the distributed batches of every coordinator sharing that
// Redis (`salvo run ... --redis URL`), within the limits they set, which every worker and
// coordinator hold together. Parses its options, hands them to the library's `runWorker`, prints
// what it does. ioredis and BullMQ load only when the command runs, so `--help` stays fast.
import type { Command } from "commander";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

export function workerCommand(io: CliIo): Command {
  return cliCommand("worker", io)
    .description(
      "work on the distributed batches of `salvo run --redis URL` (every coordinator sharing that Redis): take their lines from the queue and call them within the limits they set, shared with every other worker; stops gracefully on Ctrl-C or SIGTERM",
    )
    .option(
      "--redis <url>",
      "the Redis the coordinators use, e.g. redis://10.0.0.5:6379 (default: $SALVO_REDIS)",
    )
    .option(
      "--batch <id>",
      "work on this batch only and exit when it is finished (default: every batch)",
    )
    .option(
      "--grace <duration>",
      "when stopped, how long calls in flight may finish before their lines go back to the queue (default: 30s)",
    )
    .addHelpText(
      "after",
      "\nThe API key is read from this machine's environment: OPENAI_API_KEY / ANTHROPIC_API_KEY, or the variable\n" +
        "the coordinator names with --api-key-env. Nothing secret goes through Redis.\n",
    )
    .action(async (options: { redis?: string; batch?: string; grace?: string }) => {
      const { ConfigError } = await import("../../errors.ts");
      const { parseDurationMs } = await import("../../providers/rate-limit-headers.ts");
      const { runWorker } = await import("../../distributed/run-worker.ts");
      const { checkRedisUrl, redactRedisUrl } = await import(
        "../../distributed/redis-connection.ts"
      );
      const { formatDuration } = await import("../../progress/format.ts");
      const redis = options.redis ?? io.env.SALVO_REDIS;
      if (redis === undefined || redis === "")
        throw new ConfigError({
          field: "--redis",
          expected: "the Redis URL the coordinators use (or SALVO_REDIS)",
          got: undefined,
          where: "command line",
        });
      checkRedisUrl(redis);
      const graceMs = options.grace === undefined ? undefined : parseDurationMs(options.grace);
      if (options.grace !== undefined && graceMs === undefined)
        throw new ConfigError({
          field: "--grace",
          expected: "a duration such as 30s, 500ms, 2m",
          got: options.grace,
          where: "command line",
        });
      const say = (text: string) => io.stderr.write(`salvo worker: ${text}\n`);
      say(`connecting to ${redactRedisUrl(redis)}`);
      const summary = await runWorker({
        redis,
        batch: options.batch,
        graceMs,
        env: io.env,
        signal: io.signal,
        onEvent: (event) => {
          if (event.type === "joined")
            say(
              `working on batch ${event.batch} (upstream ${event.upstream}, concurrency ${event.concurrency} shared)`,
            );
          else if (event.type === "left")
            say(`batch ${event.batch} done here: ${event.lines} line(s) answered by this worker`);
          else say(`warning: ${event.message}`);
        },
      });
      const outage =
        summary.redisUnavailableMs > 0
          ? `; Redis was unreachable for ${formatDuration(summary.redisUnavailableMs)}`
          : "";
      io.stdout.write(
        `salvo worker: ${summary.lines} line(s) of ${summary.batches} batch(es) answered${summary.journaled > 0 ? `, ${summary.journaled} found already journaled` : ""}${outage}\n`,
      );
    });
}
