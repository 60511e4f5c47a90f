// Usage errors a careful user meets: a mistyped option is named (not reported as a missing
// required one), and help prints each default once.
import { describe, expect, it } from "vitest";
import { memoryIo } from "../../test/support/memory-io.ts";
import { runCli } from "./main.ts";

describe("the command line's usage errors", () => {
  it("a mistyped --outptu is named as the unknown option, with the closest one, before any missing required option", async () => {
    const io = memoryIo();
    expect(await runCli(["run", "in.jsonl", "--outptu", "out.jsonl"], io)).toBe(2);
    expect(io.err).toContain("unknown option '--outptu'");
    expect(io.err).toContain("Did you mean --output?");
    expect(io.err).not.toContain("required option");
  });

  it("an unknown option after the required ones, or with a value (--x=1), is named too", async () => {
    const io = memoryIo();
    expect(await runCli(["run", "in.jsonl", "-o", "o.jsonl", "--concurency=4"], io)).toBe(2);
    expect(io.err).toContain("unknown option '--concurency'");
    expect(io.err).toContain("Did you mean --concurrency?");
    const far = memoryIo();
    expect(await runCli(["pipeline", "p.yaml", "--zzzzzz"], far)).toBe(2);
    expect(far.err).toContain("unknown option '--zzzzzz'");
    expect(far.err).not.toContain("Did you mean");
  });

  it("--help still wins over a mistyped option", async () => {
    const io = memoryIo();
    expect(await runCli(["run", "--outptu", "x", "--help"], io)).toBe(0);
    expect(io.out).toContain("Usage: salvo run");
  });

  it("salvo demo --help prints each default once", async () => {
    const io = memoryIo();
    expect(await runCli(["demo", "--help"], io)).toBe(0);
    const help = io.out.replace(/\s+/g, " ");
    expect(help).toContain("how many line items (default: 300)");
    expect(help.match(/\(default:/g)).toHaveLength(3);
    expect(help).not.toContain('(default: "');
  });

  it("salvo demo refuses a progress mode it does not know", async () => {
    const io = memoryIo();
    expect(await runCli(["demo", "--progress", "fancy", "--dir", "/nonexistent/x"], io)).toBe(2);
    expect(io.err).toContain("--progress: expected auto, bar, plain, json, none");
  });
});
