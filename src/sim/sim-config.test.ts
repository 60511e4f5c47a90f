import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.ts";
import { loadScenario, parseScenario } from "./load-scenario.ts";
import { mergeSimConfig, resolveSimConfig, validateSimConfig } from "./sim-config.ts";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("validateSimConfig", () => {
  it.each([
    [{ limits: { rpm: 0 } }, "limits.rpm", "a number > 0", 0],
    [{ limits: { rpm: "fast" } }, "limits.rpm", "a number", "fast"],
    [{ capacity: { slots: 1.5 } }, "capacity.slots", "a whole number", 1.5],
    [{ capacity: { queue: -1 } }, "capacity.queue", "a number >= 0", -1],
    [{ faults: { p500: 2 } }, "faults.p500", "a number <= 1", 2],
    [{ port: 70_000 }, "port", "a number <= 65535", 70_000],
    [{ output: { tokens: "many" } }, "output.tokens", "a whole number >= 1 or {min, max}", "many"],
    [{ output: { tokens: { min: 9, max: 3 } } }, "output.tokens.max", "min <= max", 3],
    [
      { latency: { ttftMS: 5 } },
      "latency.ttftMS",
      "a known field (one of ttftMs, msPerToken",
      "ttftMS",
    ],
    [{ limitz: {} }, "limitz", "a known field (one of seed, host, port", "limitz"],
    [
      { faults: { p500: 0.6, p503: 0.6 } },
      "faults",
      "add up to at most 1",
      { p500: 0.6, p503: 0.6 },
    ],
  ])("%j -> %s", (input, field, expected, got) => {
    const error = configError(() => validateSimConfig(input, { where: "x.yaml" }));
    expect(error.field).toBe(field);
    expect(error.expected).toContain(expected);
    expect(error.got).toEqual(got);
    expect(error.where).toBe("x.yaml");
    expect(error.message).toContain(`x.yaml: ${field}: expected`);
  });

  it("renames fields for the command line", () => {
    const error = configError(() =>
      validateSimConfig(
        { limits: { rpm: -3 } },
        { where: "command line", fieldName: () => "--rpm" },
      ),
    );
    expect(error.message).toBe("command line: --rpm: expected a number > 0, got -3");
  });
});

describe("scenario files", () => {
  it("report the file and line of a bad field", () => {
    const text = "seed: 7\nlimits:\n  rpm: 600\n  tmp: 1000\n";
    const error = configError(() => parseScenario(text, "scenarios/bad.yaml"));
    expect(error.where).toBe("scenarios/bad.yaml:4");
    expect(error.field).toBe("limits.tmp");
    expect(error.message).toMatch(/^scenarios\/bad\.yaml:4: limits\.tmp: expected a known field/);
  });

  it("read JSON too, with lines", () => {
    const error = configError(() =>
      parseScenario('{\n  "capacity": {\n    "slots": 0\n  }\n}\n', "s.json"),
    );
    expect(error.where).toBe("s.json:3");
    expect(error.field).toBe("capacity.slots");
  });

  it("report syntax errors and missing files as ConfigErrors", async () => {
    expect(configError(() => parseScenario("a: [1,\n", "s.yaml")).where).toMatch(/^s\.yaml:\d+$/);
    await expect(loadScenario("/nonexistent/x.yaml")).rejects.toBeInstanceOf(ConfigError);
  });

  it("load a valid file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "salvo-sim-"));
    const path = join(dir, "ok.yaml");
    await writeFile(path, "capacity:\n  slots: 4\noutput:\n  tokens: {min: 2, max: 5}\n");
    expect(await loadScenario(path)).toEqual({
      capacity: { slots: 4 },
      output: { tokens: { min: 2, max: 5 } },
    });
  });
});

describe("bench scenarios", () => {
  it("every checked-in bench scenario also loads as a simulator scenario", async () => {
    const dir = new URL("../../scenarios/bench/", import.meta.url);
    const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml"));
    expect(files.length).toBeGreaterThanOrEqual(9);
    for (const file of files) {
      const config = await loadScenario(fileURLToPath(new URL(file, dir)));
      expect(config.bench, file).toBeDefined();
      expect(() => resolveSimConfig(config), file).not.toThrow();
    }
  });
});

describe("resolveSimConfig", () => {
  it("applies the defaults in one place", () => {
    const config = resolveSimConfig({});
    expect(config.seed).toBe(1);
    expect(config.port).toBe(0);
    expect(config.pools.openai.slots).toBe(Infinity);
    expect(config.pools.openai.burstSeconds).toBe(1);
    expect(config.output).toEqual({
      range: { min: 16, max: 16 },
      echoChars: 32,
      defaultMaxTokens: 4096,
    });
    expect(config.pools.openai).toBe(config.pools.anthropic);
  });

  it("gives a path with its own settings its own pool, inheriting the rest", () => {
    const config = resolveSimConfig({
      capacity: { slots: 8 },
      limits: { rpm: 600 },
      paths: { anthropic: { limits: { itpm: 1000 } } },
    });
    expect(config.pools.openai).not.toBe(config.pools.anthropic);
    expect(config.pools.anthropic).toMatchObject({ slots: 8, rpm: 600, itpm: 1000 });
    expect(config.pools.openai.itpm).toBeUndefined();
  });

  it("merges flags over a scenario", () => {
    const merged = mergeSimConfig(
      { limits: { rpm: 60, tpm: 1000 }, seed: 3 },
      { limits: { rpm: 600 }, port: 9 },
    );
    expect(merged).toEqual({ limits: { rpm: 600, tpm: 1000 }, seed: 3, port: 9 });
  });
});
