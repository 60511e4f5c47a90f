// Property-based fuzzing of `salvo run`, in process (`runCli` with a test io) against the
// simulator: arbitrary input lines, config files (JSON, YAML, or not even that) and option values.
// Whatever the input: no crash with a stack trace ("internal error"), no hang, an exit code from
// the documented table, an output line for every non-blank input line, and every bad line's
// message names file:line.
//
// In `npm test` it runs a fixed seed, a few dozen runs (a few seconds). To explore, set
// SALVO_FUZZ_SEED (a number, or "random") and SALVO_FUZZ_RUNS.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { runCli } from "../src/cli/main.ts";
import type { SimHandle } from "../src/sim/index.ts";
import { memoryIo } from "./support/memory-io.ts";
import { useWorkspace } from "./support/workspace.ts";

/** 0 ok, 1 some failed, 2 usage or input, 3 budget, 130 interrupted, 141 reader gone. */
const EXIT_CODES = [0, 1, 2, 3, 130, 141];
/** A run that takes longer than this is a hang (each takes well under a second). */
const HANG_MS = 30_000;

const seedSetting = process.env.SALVO_FUZZ_SEED;
const FUZZ = {
  seed:
    seedSetting === "random"
      ? Date.now() % 2 ** 31
      : seedSetting
        ? Number(seedSetting)
        : 20_261_214,
  numRuns: Number(process.env.SALVO_FUZZ_RUNS ?? 40),
};

const ws = useWorkspace("salvo-fuzz-", {
  output: { tokens: 3 },
  faults: { p500: 0.05, pMalformed: 0.05 },
});

type Outcome = { code: number; out: string; err: string; dir: string; input: string };

let runs = 0;

/** One `salvo run` in a fresh directory; fails the property on a crash or a hang. */
async function salvoRun(
  sim: SimHandle,
  inputBytes: Buffer,
  extra: (dir: string) => string[] | Promise<string[]>,
  provider: "openai" | "anthropic" = "openai",
): Promise<Outcome> {
  const dir = join(ws.dir, `run-${runs++}`);
  await mkdir(dir);
  const input = join(dir, "in.jsonl");
  await writeFile(input, inputBytes);
  const controller = new AbortController();
  const io = memoryIo(
    { OPENAI_API_KEY: "sk-fuzz-not-a-key", ANTHROPIC_API_KEY: "sk-fuzz-not-a-key" },
    controller.signal,
  );
  const args = [
    "run",
    input,
    "-o",
    join(dir, "out.jsonl"),
    "--base-url",
    provider === "openai" ? sim.baseUrl : sim.origin,
    "--progress",
    "none",
    "--max-attempts",
    "1",
    ...(await extra(dir)),
  ];
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<"hang">((resolve) => {
    timer = setTimeout(() => resolve("hang"), HANG_MS);
  });
  const result = await Promise.race([
    runCli(args, io).then(
      (code) => ({ code }),
      (error: unknown) => ({ crash: error }),
    ),
    hang,
  ]);
  clearTimeout(timer);
  if (result === "hang") {
    controller.abort(new Error("fuzz: hang"));
    throw new Error(`salvo ${args.join(" ")} hung (over ${HANG_MS} ms)`);
  }
  if ("crash" in result) {
    const error = result.crash as Error;
    throw new Error(
      `salvo ${args.join(" ")} crashed (internal error): ${error?.stack ?? String(error)}\nstderr: ${io.err}`,
    );
  }
  return { code: result.code, out: io.out, err: io.err, dir, input };
}

/** What holds for every run, whatever its input. */
function expectOrderly(run: Outcome): void {
  expect(EXIT_CODES, `exit code ${run.code}\n${run.err}`).toContain(run.code);
  expect(run.err).not.toContain("internal error");
  expect(run.err).not.toMatch(/\n\s+at .+:\d+:\d+/); // a stack trace
  expect(run.out).not.toMatch(/\n\s+at .+:\d+:\d+/);
}

/** The input's non-blank lines, as the reader counts them (each gets one output line). */
function itemsIn(bytes: Buffer): number {
  const lines = bytes.toString("utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.filter((l, i) => (i === 0 ? l.replace(/^\ufeff/, "") : l).trim() !== "").length;
}

type OutputLine = { line: number; error: { code: string; message: string } | null };

/** Every output line, when the run wrote them (exit 0, 1 or 3), and bad lines' messages. */
async function expectEveryLineAnswered(run: Outcome, bytes: Buffer): Promise<void> {
  const output = join(run.dir, "out.jsonl");
  if (run.code === 2) {
    // Refused before any call: each line the message lists names file:line.
    if (run.err.includes("was refused"))
      for (const listed of run.err.split("\n").filter((l) => l.startsWith("  /")))
        expect(listed).toMatch(new RegExp(`^  ${escapeRegExp(run.input)}:\\d+: `));
    return;
  }
  if (run.code !== 0 && run.code !== 1 && run.code !== 3) return;
  if (!existsSync(output)) {
    // --dry-run writes nothing.
    expect(run.out).toContain("dry-run");
    return;
  }
  const text = await readFile(output, "utf8");
  const lines =
    text === ""
      ? []
      : text
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l) as OutputLine);
  expect(lines).toHaveLength(itemsIn(bytes));
  for (const line of lines) {
    if (line.error?.code === "SALVO_INPUT_INVALID")
      expect(line.error.message.startsWith(`${run.input}:${line.line}: `), line.error.message).toBe(
        true,
      );
    // A bad line that got past the input check and failed later, without its file:line.
    expect(UNEXPECTED_LINE_ERRORS, line.error?.message).not.toContain(line.error?.code);
  }
}

/**
 * Codes an item should never end with: an exception nobody typed, a setting or request error
 * raised after the input check (the line's own problem, found too late), a network error from a
 * local simulator (a request the SDK could not even serialise).
 */
const UNEXPECTED_LINE_ERRORS = [
  "SALVO_ERROR",
  "SALVO_CONFIG_INVALID",
  "SALVO_REQUEST_INVALID",
  "SALVO_NETWORK_ERROR",
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// --- input lines ---

/** Mostly distinct ids (a duplicate refuses the whole input), sometimes a repeat. */
const ids = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 10 }) },
  { weight: 1, arbitrary: fc.constantFrom("a", "b") },
);
const message = fc.record({ role: fc.constantFrom("user", "system"), content: fc.string() });

const validBody = fc.record({
  model: fc.constantFrom("gpt-4o-mini", "m"),
  max_tokens: fc.integer({ min: 1, max: 8 }),
  messages: fc.array(message, { minLength: 1, maxLength: 2 }),
});

/** A body with one of the fields Salvo reads replaced by anything. */
const mutatedBody = fc
  .tuple(
    validBody,
    fc.constantFrom(
      "model",
      "messages",
      "max_tokens",
      "max_completion_tokens",
      "n",
      "stream",
      "temperature",
      "tools",
      "input",
      "metadata",
      "system",
    ),
    fc.oneof(
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      {
        weight: 3,
        arbitrary: fc.constantFrom<unknown>(
          -1,
          0,
          1.5,
          1e300,
          null,
          true,
          [null],
          [1],
          [[]],
          {},
          "",
          "x",
          "<|endoftext|>",
          [{ role: "user" }],
          [{ role: "user", content: 5 }],
        ),
      },
    ),
  )
  .map(([body, field, value]) => ({ ...body, [field]: value }));

const openAiLine = fc
  .record({
    custom_id: ids,
    method: fc.constant("POST"),
    url: fc.constantFrom("/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings"),
    body: fc.oneof(validBody, validBody, mutatedBody),
  })
  .map((line) => JSON.stringify(line));

const anthropicLine = fc
  .record({
    custom_id: ids,
    params: fc.oneof(
      validBody,
      validBody,
      mutatedBody,
      validBody.map(({ model: _, ...rest }) => rest),
    ),
  })
  .map((line) => JSON.stringify(line));

const envelopeMutation = fc
  .tuple(
    fc.record({
      custom_id: ids,
      method: fc.constant("POST"),
      url: fc.constant("/v1/chat/completions"),
      body: validBody,
    }),
    fc.constantFrom("custom_id", "method", "url", "body"),
    fc.jsonValue({ maxDepth: 2 }),
  )
  .map(([line, field, value]) => JSON.stringify({ ...line, [field]: value }));

const deepLine = fc
  .integer({ min: 100, max: 400 })
  .map((depth) => `${"[".repeat(depth)}${"]".repeat(depth)}`);

/** A line of no particular shape: JSON of any kind, text, deep nesting, odd bits. */
const junkLine = fc.oneof(
  envelopeMutation,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  deepLine,
  fc.constantFrom("", "   ", "\r", "\ufeff{}", '{"custom_id":"a"', "null", "[]", '"x"'),
  fc.integer({ min: 1, max: 3 }).map((k) => JSON.stringify({ model: "m", messages: [] }).repeat(k)),
);

/** Text, or text with bytes that are not UTF-8 spliced in. */
function withBadBytes(text: fc.Arbitrary<string>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 6, arbitrary: text.map((t) => Buffer.from(t)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(text, fc.uint8Array({ minLength: 1, maxLength: 3 }), fc.nat())
        .map(([t, junk, at]) => {
          const bytes = Buffer.from(t);
          const cut = at % (bytes.length + 1);
          return Buffer.concat([bytes.subarray(0, cut), Buffer.from(junk), bytes.subarray(cut)]);
        }),
    },
  );
}

/** A file: mostly lines of one shape (one shape per file), some of another or of none. */
const inputFile = fc
  .constantFrom<"openai" | "anthropic">("openai", "openai", "openai", "anthropic")
  .chain((provider) => {
    const own = provider === "openai" ? openAiLine : anthropicLine;
    const other = provider === "openai" ? anthropicLine : openAiLine;
    const line = withBadBytes(
      fc.oneof(
        { weight: 8, arbitrary: own },
        { weight: 1, arbitrary: other },
        { weight: 2, arbitrary: junkLine },
      ),
    );
    return fc.record({
      provider: fc.constant(provider),
      lines: fc.array(line, { minLength: 0, maxLength: 6 }),
      eol: fc.constantFrom("\n", "\r\n"),
      finalNewline: fc.boolean(),
    });
  })
  .map(({ provider, lines, eol, finalNewline }) => {
    const parts: Buffer[] = [];
    lines.forEach((line, i) => {
      parts.push(line);
      if (i < lines.length - 1 || finalNewline) parts.push(Buffer.from(eol));
    });
    return { provider, bytes: Buffer.concat(parts) };
  });

const runFlags = fc.subarray(["--strict", "--dry-run", "--fresh"], { maxLength: 2 });

// --- option values ---

const junk = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    "",
    " ",
    "-1",
    "0",
    "NaN",
    "Infinity",
    "1e400",
    "0x10",
    "1000h",
    "1e-300",
    "true",
  ),
  fc.double().map(String),
);
/** Values that are invalid or fast: a valid slow setting (rpm 3) is not a hang. */
const rate = fc.oneof(
  junk.filter((v) => !(Number(v) > 0 && Number(v) < 1e5)),
  fc.constantFrom("1e6", "100000"),
);
const duration = fc.oneof(junk, fc.constantFrom("1ms", "30s", "2m", "1h30m", "500ms", "0s", "-5s"));
const OPTION_VALUES: Record<string, fc.Arbitrary<string>> = {
  "--concurrency": fc.oneof(junk, fc.constantFrom("auto", "1", "4", "1.5")),
  "--max-concurrency": fc.oneof(junk, fc.constantFrom("2", "256")),
  "--rpm": rate,
  "--tpm": rate,
  "--itpm": rate,
  "--otpm": rate,
  "--burst-seconds": fc.oneof(junk, fc.constantFrom("1", "0.001", "60")),
  "--max-attempts": fc.oneof(
    junk.filter((v) => !(Number(v) > 2)),
    fc.constantFrom("1", "2"),
  ),
  "--timeout": duration,
  "--deadline": duration,
  "--grace": duration,
  "--cache-ttl": duration,
  "--progress": fc.oneof(junk, fc.constantFrom("none", "plain", "json", "bar", "auto")),
  "--model": junk,
  "--provider": fc.oneof(junk, fc.constantFrom("openai", "anthropic")),
  "--audit-content": fc.oneof(junk, fc.constantFrom("full", "hash", "none")),
  "--max-cost": fc.oneof(junk, fc.constantFrom("0.000001", "100")),
  "--max-tokens-total": fc.oneof(junk, fc.constantFrom("1", "1000000")),
  "--api-key-env": fc.oneof(junk, fc.constantFrom("OPENAI_API_KEY", "NOT_SET_ANYWHERE")),
};
/** Options naming files: only ever inside the run's directory (or a missing one in it). */
const PATH_OPTIONS = ["--report", "--audit", "--cache"] as const;

const optionValues = fc.tuple(
  fc
    .subarray(Object.keys(OPTION_VALUES), { maxLength: 4 })
    .chain((flags) =>
      fc.tuple(...flags.map((flag) => OPTION_VALUES[flag]!.map((value) => [flag, value] as const))),
    ),
  fc.subarray([...PATH_OPTIONS], { maxLength: 2 }),
  fc.constantFrom("file", "missing/dir/file"),
);

// --- config files ---

const CONFIG_KEYS = [
  "provider",
  "baseUrl",
  "apiKeyEnv",
  "model",
  "concurrency",
  "maxConcurrency",
  "rpm",
  "tpm",
  "itpm",
  "otpm",
  "burstSeconds",
  "maxAttempts",
  "timeout",
  "deadline",
  "progress",
  "fresh",
  "strict",
  "sim",
  "grace",
  "auditContent",
  "cacheTtl",
  "cacheForce",
  "maxCost",
  "maxTokensTotal",
  "dryRun",
  "pricing",
  "cache",
  "report",
  "audit",
  "noSuchSetting",
];
/** Stands for the run's directory in a config file's paths (the file is written per run). */
const DIR = "$RUN_DIR";
/** Config values: anything, except a valid setting that is slow on purpose or writes outside the run. */
const configValue = (key: string): fc.Arbitrary<unknown> => {
  const any = fc.jsonValue({ maxDepth: 3 });
  const safe = any.filter((v) => {
    if (["rpm", "tpm", "itpm", "otpm"].includes(key)) return !(typeof v === "number" && v > 0);
    if (key === "sim") return typeof v !== "string"; // a real scenario runs at its own pace
    if (key === "cache")
      return typeof v !== "string" && !(typeof v === "object" && v !== null && "dir" in v);
    if (key === "maxAttempts") return !(typeof v === "number" && v > 2);
    return true;
  });
  if (key === "concurrency") return fc.oneof(safe, fc.constantFrom("auto", 2));
  // Paths only inside the run's directory, or in a directory that does not exist.
  if (key === "audit" || key === "cache" || key === "report")
    return fc.oneof(
      safe.filter((v) => typeof v !== "string"),
      fc.constantFrom(`${DIR}/${key}`, `${DIR}/missing/${key}`),
      ...(key === "cache"
        ? [fc.record({ dir: fc.constant(`${DIR}/cache`), ttl: configValue("cacheTtl") })]
        : []),
    );
  return safe;
};
const configObject = fc
  .subarray(CONFIG_KEYS, { maxLength: 5 })
  .chain((keys) => fc.tuple(...keys.map((k) => configValue(k).map((v) => [k, v] as const))))
  .map((entries) => Object.fromEntries(entries));
const configFile = fc.oneof(
  configObject.map((c) => ({ name: "salvo.json", text: JSON.stringify(c) })),
  configObject.map((c) => ({ name: "salvo.yaml", text: toYaml(c) })),
  fc.string({ maxLength: 60 }).map((text) => ({ name: "salvo.yaml", text })),
  fc.string({ maxLength: 60 }).map((text) => ({ name: "salvo.json", text })),
  deepLine.map((text) => ({ name: "salvo.json", text: `{"rpm": ${text}}` })),
  deepLine.map((text) => ({ name: "salvo.yaml", text: `timeout: ${text}` })),
);

const VALID_INPUT = Buffer.from(
  ["a", "b", "c"]
    .map((id) =>
      JSON.stringify({
        custom_id: id,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "m", max_tokens: 4, messages: [{ role: "user", content: id }] },
      }),
    )
    .join("\n"),
);

describe(`fuzz salvo run (seed ${FUZZ.seed}): no crash, no hang, a documented exit code, file:line for every bad line`, () => {
  it("arbitrary input lines", { timeout: 120_000 }, async () => {
    const sim = await ws.simulator();
    await fc.assert(
      fc.asyncProperty(inputFile, runFlags, async ({ provider, bytes }, flags) => {
        const run = await salvoRun(sim, bytes, () => [...flags, "--concurrency", "4"], provider);
        expectOrderly(run);
        await expectEveryLineAnswered(run, bytes);
      }),
      { ...FUZZ, numRuns: FUZZ.numRuns * 2 },
    );
  });

  it("arbitrary option values", { timeout: 120_000 }, async () => {
    const sim = await ws.simulator();
    await fc.assert(
      fc.asyncProperty(
        inputFile,
        optionValues,
        async ({ provider, bytes }, [pairs, paths, where]) => {
          const run = await salvoRun(
            sim,
            bytes,
            (dir) => [
              ...pairs.flat(),
              ...paths.flatMap((flag) => [flag, join(dir, `${flag.slice(2)}-${where}`)]),
            ],
            provider,
          );
          expectOrderly(run);
          await expectEveryLineAnswered(run, bytes);
        },
      ),
      FUZZ,
    );
  });

  it("arbitrary config files, JSON and YAML", { timeout: 120_000 }, async () => {
    const sim = await ws.simulator();
    await fc.assert(
      fc.asyncProperty(configFile, async (config) => {
        const run = await salvoRun(sim, VALID_INPUT, async (dir) => {
          const path = join(dir, config.name);
          await writeFile(path, config.text.replaceAll(DIR, dir));
          return ["--config", path];
        });
        expectOrderly(run);
        await expectEveryLineAnswered(run, VALID_INPUT);
      }),
      FUZZ,
    );
  });
});
