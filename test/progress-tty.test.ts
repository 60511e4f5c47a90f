// The live bar's real ANSI output on a real pseudo-terminal: `salvo demo --progress bar` runs
// under util-linux `script` (a pty of 80 columns), and what it wrote is replayed on the fake
// terminal. The bar redraws in place, never wider than the terminal, leaves its last state above
// the summary and nothing after it; after Ctrl-C (sent through the pty) the bar and the summary
// agree: items not run are stopped, not failed.
import { spawn, spawnSync } from "node:child_process";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FakeTerminal } from "./support/fake-terminal.ts";

const BIN = new URL("../bin/salvo.js", import.meta.url).pathname;
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/**
 * Runs `salvo demo` on a pty 80 columns wide; `interruptWhen` sees the output so far and, once
 * it returns true, Ctrl-C is typed into the pty. Resolves with the exit code and the output.
 */
function demoOnPty(
  items: number,
  interruptWhen?: (output: string) => boolean,
): Promise<{ code: number | null; output: string }> {
  const dir = join(tmpdir(), `salvo-tty-${process.pid}-${dirs.length}`);
  dirs.push(dir);
  const command = `stty cols 80 rows 30; exec ${process.execPath} ${BIN} demo --items ${items} --dir ${dir} --progress bar`;
  const child = spawn("script", ["-qfec", command, "/dev/null"], { stdio: "pipe" });
  let output = "";
  let sent = false;
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    output += chunk;
    if (!sent && interruptWhen?.(output)) {
      sent = true;
      child.stdin.write("\u0003");
    }
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}

const isBar = (line: string) => /^[█░]* ?\d+\/\d+ \| \d+ failed/.test(line);

describe("the live bar on a real terminal", () => {
  it("needs util-linux script for a pseudo-terminal", () => {
    expect(spawnSync("script", ["--version"]).status).toBe(0);
  });

  it("redraws in place within 80 columns and leaves its last state above the summary", async () => {
    const { code, output } = await demoOnPty(40);
    expect(code).toBe(0);
    const term = new FakeTerminal(80);
    term.write(output);
    expect(term.unknown).toEqual([]);
    // Many frames (the demo's rate limit makes the run last seconds), all on one line.
    expect(output.split("\u001b[1A").length - 1).toBeGreaterThan(3);
    for (const text of term.writes
      .join("")
      .split(/\r?\n|\r/)
      .filter(isBar))
      expect(text.length).toBeLessThan(80);
    const bars = term.screen.filter(isBar);
    expect(bars).toHaveLength(1);
    const at = term.screen.indexOf(bars[0]!);
    expect(term.screen[at + 1]).toMatch(/^salvo run: 40 items in /);
    expect(bars[0]).toMatch(/ 40\/40 \| \d+ failed \| in flight 0\/\d+ /);
    expect(output).not.toMatch(/[{}]/);
  }, 60_000);

  it("after Ctrl-C the bar and the summary agree: the rest is stopped, not failed, and nothing is drawn after the summary", async () => {
    const { code, output } = await demoOnPty(300, (out) => /\b([2-9]\d|\d{3})\/300 \|/.test(out));
    expect(code).toBe(130);
    const term = new FakeTerminal(80);
    term.write(output);
    expect(term.unknown).toEqual([]);
    const screen = term.screen;
    const bars = screen.filter(isBar);
    expect(bars).toHaveLength(1);
    const at = screen.indexOf(bars[0]!);
    // The interrupt's message above the bar, the summary right below it.
    expect(screen.slice(0, at).join("\n")).toContain("salvo: interrupted: finishing");
    expect(screen[at + 1]).toMatch(/^salvo run: 300 items in /);
    const [, done, stopped] = /(\d+)\/300 \| 0 failed \| (\d+) stopped/.exec(bars[0]!) ?? [];
    expect(Number(done) + Number(stopped)).toBe(300);
    const summary = screen.slice(at + 1).join("");
    expect(summary).toContain(`${done} succeeded, 0 failed, 0 invalid input lines; ${stopped} not`);
  }, 60_000);
});
