// Ordinary mistakes with paths end as one line naming the path and the problem, exit 2, before any
// call and before any file is touched; no file Salvo did not write is ever deleted or overwritten.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, link, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli/main.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

const exec = promisify(execFile);
const BIN = fileURLToPath(new URL("../bin/salvo.js", import.meta.url));
const ws = useWorkspace("salvo-run-paths-", {
  latency: { ttftMs: 5, msPerToken: 0 },
  output: { tokens: 4 },
});
const KEY = "sk-paths-test-not-a-key";

const LINES = Array.from({ length: 3 }, (_, i) =>
  JSON.stringify({
    custom_id: `c-${i}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "gpt-4o-mini", max_tokens: 8, messages: [{ role: "user", content: `q${i}` }] },
  }),
).join("\n");

const sha = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");

/** Runs `salvo run` in process against a fresh simulator; resolves to what it printed and did. */
async function run(args: string[]) {
  const sim = await ws.simulator();
  const io = memoryIo({ OPENAI_API_KEY: KEY, OPENAI_BASE_URL: sim.baseUrl });
  const code = await runCli(["run", ...args, "--progress", "none"], io);
  return { code, out: io.out, err: io.err, calls: sim.stats({ timeline: false }).arrivals };
}

async function input(): Promise<string> {
  const path = join(ws.dir, "in.jsonl");
  await writeFile(path, `${LINES}\n`);
  return path;
}

describe("salvo run refuses colliding paths before touching a file", () => {
  it("an output that is the input: refused, with and without --fresh; the input survives", async () => {
    const path = await input();
    const before = await sha(path);
    for (const extra of [[], ["--fresh"]]) {
      const result = await run([path, "-o", path, ...extra]);
      expect(result.code, result.err).toBe(2);
      expect(result.err).toMatch(
        /--output: expected a path of its own: it is the same file as input/,
      );
      expect(result.err).not.toMatch(/at .*\.ts:\d+/); // no stack trace
      expect(result.calls).toBe(0);
      expect(await sha(path)).toBe(before);
    }
  });

  it("through a symbolic link or a hard link, the same file is still the same file", async () => {
    const path = await input();
    await symlink(path, join(ws.dir, "soft.jsonl"));
    await link(path, join(ws.dir, "hard.jsonl"));
    for (const alias of ["soft.jsonl", "hard.jsonl"]) {
      const result = await run([path, "-o", join(ws.dir, alias), "--fresh"]);
      expect(result.code, result.err).toBe(2);
      expect(result.err).toMatch(/same file as input/);
    }
    expect((await readFile(path, "utf8")).trim()).toBe(LINES);
  });

  it("--report, --audit and --output may not name the input or each other", async () => {
    const path = await input();
    const out = join(ws.dir, "out.jsonl");
    const cases: Array<[string[], RegExp]> = [
      [["--report", path], /--report: .*same file as input/],
      [["--audit", path], /--audit: .*same file as input/],
      [["--audit", out], /--audit: .*same file as --output/],
      [
        ["--report", join(ws.dir, "calls.log"), "--audit", join(ws.dir, "calls.log")],
        /--audit: .*same file as --report/,
      ],
      [["--report", `${out}.journal`], /--report: .*same file as --output's journal/],
      [["--cache", ws.dir], /inside --cache|--cache: .*inside/],
    ];
    for (const [extra, message] of cases) {
      const result = await run([path, "-o", out, ...extra]);
      expect(result.code, `${extra.join(" ")}: ${result.err}`).toBe(2);
      expect(result.err).toMatch(message);
      expect(result.calls).toBe(0);
    }
    expect((await readFile(path, "utf8")).trim()).toBe(LINES);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
  });

  it("--fresh never deletes a file Salvo did not write", async () => {
    const path = await input();
    const notOurs = join(ws.dir, "notes.jsonl");
    await writeFile(notOurs, '{"my": "own notes"}\n');
    const result = await run([path, "-o", notOurs, "--fresh"]);
    expect(result.code, result.err).toBe(2);
    expect(result.err).toMatch(/--fresh: .*not Salvo's/);
    expect(await readFile(notOurs, "utf8")).toBe('{"my": "own notes"}\n');
    // A real output of an earlier run is Salvo's: --fresh starts it over.
    const out = join(ws.dir, "out.jsonl");
    expect((await run([path, "-o", out])).code).toBe(0);
    const again = await run([path, "-o", out, "--fresh"]);
    expect(again.code, again.err).toBe(0);
    expect(again.calls).toBe(3);
  });
});

describe("salvo run: mistakes with paths are usage errors, named, before any call", () => {
  it("a missing input, a directory as input, an output in a missing directory, an output that is a device", async () => {
    const path = await input();
    const cases: Array<[string[], RegExp]> = [
      [
        [join(ws.dir, "nope.jsonl"), "-o", join(ws.dir, "o.jsonl")],
        /input: expected an existing JSONL file, got .*nope\.jsonl/,
      ],
      [
        [ws.dir, "-o", join(ws.dir, "o.jsonl")],
        /input: expected a regular JSONL file .*not a directory/,
      ],
      [
        [path, "-o", join(ws.dir, "no", "such", "o.jsonl")],
        /--output: expected a path in an existing directory \(.*no\/such does not exist\)/,
      ],
      [[path, "-o", "/dev/null"], /--output: expected a regular file .*not a device/],
      [[path, "-o", ws.dir], /--output: expected a regular file .*not a directory/],
      [
        [path, "-o", join(ws.dir, "o.jsonl"), "--report", join(ws.dir, "missing", "r.json")],
        /--report: expected a path in an existing directory/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect(result.code, `${args.join(" ")}: ${result.err}`).toBe(2);
      expect(result.err).toMatch(message);
      expect(result.err).not.toMatch(/internal error|at .*\.ts:\d+/);
      expect(result.calls).toBe(0);
    }
    await expect(stat("/dev/null.journal")).rejects.toThrow(/ENOENT/);
  });

  it("an empty input says so and exits 0", async () => {
    const path = join(ws.dir, "empty.jsonl");
    await writeFile(path, "\n\n");
    const result = await run([path, "-o", join(ws.dir, "o.jsonl")]);
    expect(result.code).toBe(0);
    expect(result.err).toMatch(/empty\.jsonl has no requests .*nothing to do/);
  });

  it("--audit where it cannot be written, with --sim, as a process: exit 2 at once, no hang", {
    timeout: 60_000,
  }, async () => {
    const path = await input();
    const started = Date.now();
    const result = await exec(
      process.execPath,
      [
        BIN,
        "run",
        path,
        "-o",
        join(ws.dir, "o.jsonl"),
        "--sim",
        "--audit",
        join(ws.dir, "missing", "calls.log"),
      ],
      { timeout: 20_000 },
    ).catch((error: { code: number; stderr: string; killed: boolean }) => error);
    expect("killed" in result && result.killed).toBe(false);
    expect("code" in result ? result.code : 0).toBe(2);
    expect(result.stderr).toMatch(/--audit: expected a path in an existing directory/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

// Permissions cannot stop root, and CI runs as root: there the CLI runs as root without the
// capabilities that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so the
// files' own modes apply, wherever the repository is (`nobody` could not reach one under /root).
describe("salvo run: permissions, as an unprivileged user", () => {
  async function asUser(args: string[]) {
    const root = process.getuid?.() === 0;
    const command = root ? "setpriv" : process.execPath;
    const argv = root
      ? ["--bounding-set", "-dac_override,-dac_read_search", process.execPath, BIN, ...args]
      : [BIN, ...args];
    return exec(command, argv, { timeout: 20_000 }).then(
      (r) => ({ code: 0, ...r }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
  }

  it("an unreadable input, an output or report in a read-only directory: exit 2, nothing called", {
    timeout: 90_000,
  }, async () => {
    const sim = await ws.simulator();
    await chmod(ws.dir, 0o755);
    const readable = join(ws.dir, "readable.jsonl");
    await writeFile(readable, `${LINES}\n`);
    await chmod(readable, 0o644);
    const secret = join(ws.dir, "secret.jsonl");
    await writeFile(secret, `${LINES}\n`);
    await chmod(secret, 0o000);
    const locked = join(ws.dir, "locked");
    await mkdir(locked, { mode: 0o555 });
    const writable = join(ws.dir, "writable");
    await mkdir(writable, { mode: 0o777 });
    await chmod(writable, 0o777);
    const common = ["--base-url", sim.baseUrl, "--progress", "none"];
    const cases: Array<[string[], RegExp]> = [
      [
        ["run", secret, "-o", join(writable, "o.jsonl"), ...common],
        /input: expected a file Salvo may read \(permission denied\)/,
      ],
      [
        ["run", readable, "-o", join(locked, "o.jsonl"), ...common],
        /--output: expected a path in a directory Salvo may write to \(.*locked is read-only\)/,
      ],
      [
        [
          "run",
          readable,
          "-o",
          join(writable, "o.jsonl"),
          "--report",
          join(locked, "r.json"),
          ...common,
        ],
        /--report: expected a path in a directory Salvo may write to/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await asUser([...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(sim.stats({ timeline: false }).arrivals).toBe(0);
  });
});
