// `npm run bench`: Salvo against its peers and against the physical bound M*, on the same
// simulated server, in one run. Every scenario in scenarios/bench/ (or the files given), every
// contender, fresh simulator per run; writes bench/results/results.json and results.md.
//
//   npm run bench                    full mode: Salvo's rows 3 repetitions, the peers 1
//   npm run bench -- --quick         quick mode: smaller scenarios, 1 repetition, Salvo's rows and
//                                    p-limit only (about 5 minutes on 2 quiet cores)
//   npm run bench -- --only b,c      scenarios whose file name starts with b or c
//   npm run bench -- --contenders salvo,p-limit --reps 2
//   npm run bench -- --update-readme also refresh README.md's table (between its bench markers)

import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBench } from "./harness.ts";
import { markdownReport, summaryTable, writeResults } from "./report.ts";
import { updateReadme } from "./update-readme.ts";

const root = new URL("../", import.meta.url);
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    "peer-reps": { type: "string" },
    only: { type: "string" },
    contenders: { type: "string" },
    out: { type: "string" },
    "update-readme": { type: "boolean", default: false },
  },
});

const dir = fileURLToPath(new URL("scenarios/bench/", root));
let files =
  positionals.length > 0
    ? positionals
    : readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => `${dir}${f}`);
if (values.only) {
  const prefixes = values.only.split(",");
  files = files.filter((f) => prefixes.some((p) => (f.split("/").at(-1) ?? f).startsWith(p)));
}

const results = await runBench({
  files,
  quick: values.quick,
  repetitions: values.reps === undefined ? undefined : Number(values.reps),
  peerRepetitions: values["peer-reps"] === undefined ? undefined : Number(values["peer-reps"]),
  contenders: values.contenders?.split(","),
  onProgress: (line) => console.log(line),
});
const out = values.out ?? fileURLToPath(new URL("bench/results/", root));
const written = await writeResults(results, out);
console.log(`\n${markdownReport(results).split("\n")[2]}\n`);
console.log(summaryTable(results));
for (const s of results.scenarios)
  for (const v of s.verdicts)
    console.log(`${v.met ? "met    " : "NOT MET"}  ${s.id}: ${v.target} (${v.detail})`);
console.log(`\nwrote ${written.json} and ${written.markdown}`);
if (values["update-readme"]) {
  console.log(await updateReadme(written.json, fileURLToPath(new URL("README.md", root))));
}
