// `salvo cache stats --cache DIR` and `salvo cache clear --cache DIR [--expired]`: what the
// response cache of `salvo run --cache DIR` holds, and emptying it.
import type { Command } from "commander";
import { ConfigError } from "../../errors.ts";
import { cliCommand } from "../cli-command.ts";
import type { CliIo } from "../io.ts";

/** The directory from `--cache`, else SALVO_CACHE (as `salvo run` reads it). */
function cacheDir(io: CliIo, flag: string | undefined): string {
  const dir = flag ?? io.env.SALVO_CACHE;
  if (dir === undefined || dir.trim() === "")
    throw new ConfigError({
      field: "--cache",
      expected: "the response cache directory (--cache DIR, or SALVO_CACHE)",
      got: dir,
      where: "command line",
    });
  return dir;
}

const day = (ms: number | undefined) =>
  ms === undefined ? "-" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);

export function cacheCommand(io: CliIo): Command {
  const command = cliCommand("cache", io).description(
    "inspect or empty the response cache of `salvo run --cache DIR`",
  );
  command.addCommand(
    cliCommand("stats", io)
      .description("how many answers the cache holds, their size and age")
      .option("--cache <dir>", "the cache directory (default: $SALVO_CACHE)")
      .option("--json", "print the statistics as one JSON object (default: off)")
      .action(async (options: { cache?: string; json?: boolean }) => {
        const { ResponseCache } = await import("../../cache/response-cache.ts");
        const { formatUsd } = await import("../../cost/pricing.ts");
        const { formatCount } = await import("../../progress/format.ts");
        const cache = await ResponseCache.open(cacheDir(io, options.cache));
        const stats = await cache.stats();
        if (options.json) {
          io.stdout.write(`${JSON.stringify(stats)}\n`);
          return;
        }
        io.stdout.write(
          `${stats.dir}: ${stats.entries} answers (${stats.expired} expired), ${formatCount(stats.bytes)} bytes\n` +
            `  stored from ${day(stats.oldest)} to ${day(stats.newest)} UTC\n` +
            `  the calls that produced them cost ${formatUsd(stats.storedCostUsd)} (at known prices)\n`,
        );
      }),
  );
  command.addCommand(
    cliCommand("clear", io)
      .description("remove every stored answer (or, with --expired, the expired ones)")
      .option("--cache <dir>", "the cache directory (default: $SALVO_CACHE)")
      .option("--expired", "remove only expired answers (default: all)")
      .action(async (options: { cache?: string; expired?: boolean }) => {
        const { ResponseCache } = await import("../../cache/response-cache.ts");
        const cache = await ResponseCache.open(cacheDir(io, options.cache));
        const removed = await cache.clear({ expiredOnly: options.expired });
        io.stdout.write(
          `${cache.dir}: removed ${removed} ${options.expired ? "expired " : ""}answers\n`,
        );
      }),
  );
  return command;
}
