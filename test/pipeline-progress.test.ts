// `salvo pipeline` on a terminal draws one line per stage under the overall bar, all by one owner:
// the stages' calls in flight while they run, each stage's counts, and at the end the last state
// above the pipeline's summary. Over HTTP to the simulator, on the fake terminal.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { FakeTerminal } from "./support/fake-terminal.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const PIPELINE = new URL("../examples/claim-coverage.yaml", import.meta.url).pathname;
const INPUT = new URL("../examples/claim-coverage.input.json", import.meta.url).pathname;
const ws = useWorkspace("salvo-pipeline-progress-");

describe("salvo pipeline's progress", () => {
  it("shows one line per stage under the overall bar, in flight while they run, and the last state above the summary", async () => {
    // Every answer takes at least 300 ms: each stage is in flight across several redraws.
    const sim = await ws.simulator({
      latency: { ttftMs: 300, msPerToken: 0 },
      output: { tokens: { min: 5, max: 10 } },
    });
    const term = new FakeTerminal(100);
    const io = {
      ...memoryIo({ OPENAI_API_KEY: "sk-test-pipeline-progress-not-a-key" }),
      stderr: term,
      isTTY: true,
      columns: 100,
    };
    const code = await runCli(
      [
        "pipeline",
        PIPELINE,
        "--input",
        INPUT,
        "--run-dir",
        join(ws.dir, "run"),
        "--base-url",
        sim.baseUrl,
        "--progress",
        "bar",
      ],
      io,
    );
    expect(code, term.text).toBe(0);
    expect(term.unknown).toEqual([]);
    // Every frame is in sync: the overall count is the sum of the stages' counts.
    const replay = new FakeTerminal(100);
    let frames = 0;
    for (const write of term.writes) {
      replay.write(write);
      const screen = replay.screen;
      const bar = screen.findLastIndex((l) => /^[█░]+ \d+\/10 \|/.test(l));
      if (bar < 0) continue;
      const under = screen.slice(bar + 1).filter((l) => /^ {2}\S.* \d+\/\d+ \|/.test(l));
      const done = (l: string) => Number(/ (\d+)\/\d+ \|/.exec(l)![1]);
      expect(
        under.reduce((n, l) => n + done(l), 0),
        screen.join("\n"),
      ).toBe(done(` ${screen[bar]!.replace(/^[█░]+ /, "")}`));
      frames++;
    }
    expect(frames).toBeGreaterThan(2);
    // While it ran, some frame showed a stage's own calls in flight on its line.
    expect(
      term.writes.some((w) =>
        /\n {2}(parts|labour|summary) +[█░]+ \d+\/\d+ \| 0 failed \| in flight [1-9]/.test(w),
      ),
    ).toBe(true);
    const screen = term.screen;
    const at = screen.findIndex((l) => /^[█░]+ 10\/10 \| 0 failed/.test(l));
    expect(at).toBeGreaterThanOrEqual(0);
    // Under the bar: each stage on its line (5 parts, 4 labour lines, 1 summary), or, once
    // collapsed, in the "done" line; then the pipeline's summary.
    const stageLines = screen.slice(
      at + 1,
      screen.findIndex((l) => l.startsWith("salvo pipeline ")),
    );
    const shown = stageLines.join("\n");
    for (const [stage, n] of [
      ["parts", 5],
      ["labour", 4],
      ["summary", 1],
    ] as const) {
      const own = stageLines.find((l) => l.startsWith(`  ${stage} `));
      if (own !== undefined) expect(own).toMatch(new RegExp(` ${n}/${n} \\| 0 failed \\| done$`));
      else expect(shown).toMatch(new RegExp(`^ {2}done: .*\\b${stage}\\b`, "m"));
    }
    expect(stageLines.length).toBeGreaterThanOrEqual(1);
    expect(screen.at(-1)).toMatch(/run directory: /);
  }, 60_000);
});
