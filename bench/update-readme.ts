// Replaces the block between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md with the
// latest results (bench/results/results.json), so the README's table is generated, never typed. Without
// the markers it says so and leaves README.md alone.
// Run: `node bench/update-readme.ts [results.json] [README.md]`, or `npm run bench -- --update-readme`.

import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { BenchResults } from "./harness.ts";
import { readmeBlock } from "./report.ts";

export const START = "<!-- bench:start -->";
export const END = "<!-- bench:end -->";

/** The README text with the block replaced, or undefined when the markers are missing. */
export function replaceBlock(readme: string, block: string): string | undefined {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) return undefined;
  return `${readme.slice(0, start + START.length)}\n${block}\n${readme.slice(end)}`;
}

/** Updates `readmePath` from `resultsPath`; returns a line saying what happened. */
export async function updateReadme(resultsPath: string, readmePath: string): Promise<string> {
  const results = JSON.parse(await readFile(resultsPath, "utf8")) as BenchResults;
  const readme = await readFile(readmePath, "utf8");
  const updated = replaceBlock(readme, readmeBlock(results));
  if (updated === undefined) {
    return `${readmePath} has no ${START} ... ${END} markers: left unchanged (add them where the table belongs).`;
  }
  if (updated === readme) return `${readmePath} already shows these results.`;
  await writeFile(readmePath, updated);
  return `${readmePath}: results table updated (${results.mode} mode, ${results.date}).`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = new URL("../", import.meta.url);
  const resultsPath = process.argv[2] ?? fileURLToPath(new URL("bench/results/results.json", root));
  const readmePath = process.argv[3] ?? fileURLToPath(new URL("README.md", root));
  console.log(await updateReadme(resultsPath, readmePath));
}
