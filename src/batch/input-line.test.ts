import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../providers/json-depth.ts";
import {
  type BatchItem,
  type InputShape,
  type InvalidLine,
  isInvalid,
  type LineContext,
  parseInputLine,
} from "./input-line.ts";

const base: LineContext = {
  file: "in.jsonl",
  line: 7,
  index: 3,
  shape: undefined,
  shapeLine: undefined,
  defaultModel: undefined,
};

function ok(value: unknown, context: Partial<LineContext> = {}): BatchItem {
  const { entry } = parseInputLine(JSON.stringify(value), { ...base, ...context });
  if (isInvalid(entry)) throw new Error(`unexpected: ${entry.error.message}`);
  return entry;
}

function bad(text: unknown, context: Partial<LineContext> = {}): InvalidLine {
  const raw = typeof text === "string" ? text : JSON.stringify(text);
  const { entry, shape } = parseInputLine(raw, { ...base, ...context });
  if (!isInvalid(entry)) throw new Error("expected an invalid line");
  expect(shape).toBeUndefined();
  return entry;
}

const messages = [{ role: "user", content: "hi" }];

describe("parseInputLine: the OpenAI Batch envelope", () => {
  it("maps every url to a path without /v1 and keeps the body", () => {
    for (const [url, path] of [
      ["/v1/chat/completions", "/chat/completions"],
      ["/v1/embeddings", "/embeddings"],
      ["/v1/responses", "/responses"],
      ["/v1/completions", "/completions"],
    ] as const) {
      const body = { model: "m", messages, input: "x" };
      const item = ok({ custom_id: "a", method: "POST", url, body });
      expect(item).toEqual({
        index: 3,
        line: 7,
        customId: "a",
        provider: "openai",
        request: { path, body },
      });
    }
    const { shape } = parseInputLine(
      JSON.stringify({
        custom_id: "a",
        method: "POST",
        url: "/v1/embeddings",
        body: { model: "m", input: "x" },
      }),
      base,
    );
    expect(shape).toBe<InputShape>("openai-batch");
  });

  it("names the field, what was expected and what was found, at file:line", () => {
    const env = {
      custom_id: "a",
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages },
    };
    expect(bad({ ...env, custom_id: 5 }).error.message).toBe(
      "in.jsonl:7: custom_id: expected a non-empty string, got 5",
    );
    expect(bad({ ...env, method: "GET" }).error.message).toBe(
      'in.jsonl:7: method: expected "POST", got "GET"',
    );
    expect(bad({ ...env, url: "/v1/images" }).error.message).toMatch(
      /^in\.jsonl:7: url: expected one of \/v1\/chat\/completions, .*, got "\/v1\/images"$/,
    );
    expect(bad({ ...env, body: [1] }).error.message).toBe(
      "in.jsonl:7: body: expected a JSON object, got [1]",
    );
    expect(bad({ ...env, body: { model: "m", messages: [] } }).error.message).toBe(
      "in.jsonl:7: body.messages: expected a non-empty array of messages, got []",
    );
    expect(bad({ ...env, body: { model: "m" } }).error.message).toBe(
      "in.jsonl:7: body.messages: expected a non-empty array of messages, got nothing",
    );
    const emb = { ...env, url: "/v1/embeddings", body: { model: "m" } };
    expect(bad(emb).error.message).toBe(
      "in.jsonl:7: body.input: expected the text(s) to embed: a non-empty string, a token array, or a non-empty list of either, got nothing",
    );
    const error = bad({ ...env, body: { messages } }).error;
    expect(error.message).toBe(
      "in.jsonl:7: body.model: expected a model name (or a default model, --model), got nothing",
    );
    expect(error).toMatchObject({
      code: "SALVO_INPUT_INVALID",
      file: "in.jsonl",
      line: 7,
      field: "body.model",
    });
    expect(bad({ ...env, body: { model: 4, messages } }).error.field).toBe("body.model");
    expect(bad({ ...env, custom_id: "keep", method: "GET" }).customId).toBe("keep");
  });

  it("fills a missing model from defaultModel, without changing the line's object", () => {
    const item = ok(
      { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { messages } },
      { defaultModel: "gpt-x" },
    );
    expect(item.request.body).toEqual({ model: "gpt-x", messages });
    const own = ok(
      {
        custom_id: "a",
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "mine", messages },
      },
      { defaultModel: "gpt-x" },
    );
    expect(own.request.body.model).toBe("mine");
  });
});

describe("parseInputLine: a bare body with metadata (cookbook)", () => {
  it("removes metadata from the body, carries it, and takes custom_id from it", () => {
    const item = ok({
      model: "m",
      messages,
      temperature: 0,
      metadata: { custom_id: "row-9", row: 9 },
    });
    expect(item).toEqual({
      index: 3,
      line: 7,
      customId: "row-9",
      provider: "openai",
      request: { path: "/chat/completions", body: { model: "m", messages, temperature: 0 } },
      metadata: { custom_id: "row-9", row: 9 },
    });
    expect(parseInputLine(JSON.stringify({ model: "m", messages }), base).shape).toBe(
      "openai-body",
    );
  });

  it("without metadata.custom_id the id is line-<file line>", () => {
    expect(ok({ model: "m", messages }).customId).toBe("line-7");
    expect(ok({ model: "m", messages, metadata: { row: 1 } }).customId).toBe("line-7");
  });

  it("input without messages goes to /embeddings", () => {
    expect(ok({ model: "e", input: ["a", "b"] }).request.path).toBe("/embeddings");
    expect(ok({ model: "e", input: "a", messages }).request.path).toBe("/chat/completions");
  });

  it("reports bad metadata and bad messages", () => {
    expect(bad({ model: "m", messages, metadata: "x" }).error.message).toBe(
      'in.jsonl:7: metadata: expected a JSON object, got "x"',
    );
    expect(bad({ model: "m", messages, metadata: { custom_id: 3 } }).error.message).toBe(
      "in.jsonl:7: metadata.custom_id: expected a non-empty string, got 3",
    );
    expect(bad({ model: "m", messages: "hi" }).error.field).toBe("body.messages");
  });
});

describe("parseInputLine: the Anthropic batch line", () => {
  it("maps params to /messages", () => {
    const params = { model: "claude", max_tokens: 100, messages, system: "be brief" };
    expect(ok({ custom_id: "x", params })).toEqual({
      index: 3,
      line: 7,
      customId: "x",
      provider: "anthropic",
      request: { path: "/messages", body: params },
    });
  });

  it("needs params, max_tokens > 0, messages, and a model", () => {
    expect(bad({ custom_id: "x", params: null }).error.message).toBe(
      "in.jsonl:7: params: expected a JSON object, got null",
    );
    for (const maxTokens of [undefined, 0, -1, 1.5, "10"])
      expect(
        bad({ custom_id: "x", params: { model: "c", max_tokens: maxTokens, messages } }).error
          .field,
      ).toBe("params.max_tokens");
    expect(
      bad({ custom_id: "x", params: { model: "c", max_tokens: 0, messages } }).error.message,
    ).toBe("in.jsonl:7: params.max_tokens: expected an integer > 0, got 0");
    expect(bad({ custom_id: "x", params: { model: "c", max_tokens: 5 } }).error.message).toBe(
      "in.jsonl:7: params.messages: expected a non-empty array of messages, got nothing",
    );
    expect(bad({ custom_id: "x", params: { max_tokens: 5, messages } }).error.field).toBe(
      "params.model",
    );
    expect(
      ok({ custom_id: "x", params: { max_tokens: 5, messages } }, { defaultModel: "c" }).request
        .body.model,
    ).toBe("c");
  });
});

describe("parseInputLine: JSON and shape errors", () => {
  it("gives the parser's message and position for unparsable JSON", () => {
    const error = bad('{"custom_id": "a",').error;
    expect(error.field).toBe("JSON");
    expect(error.message).toMatch(
      /^in\.jsonl:7: JSON: expected a JSON object, got invalid JSON \(.*position \d+/,
    );
  });

  it("refuses non-objects", () => {
    expect(bad("[1,2]").error.message).toBe("in.jsonl:7: line: expected a JSON object, got [1,2]");
    expect(bad("42").error.message).toBe("in.jsonl:7: line: expected a JSON object, got 42");
  });

  it("refuses a line of another shape than the file's", () => {
    const error = bad(
      { custom_id: "x", params: { model: "c", max_tokens: 5, messages } },
      { shape: "openai-batch", shapeLine: 1 },
    ).error;
    expect(error.message).toBe(
      "in.jsonl:7: line: expected a openai-batch line like line 1 (one shape per file), got a anthropic-batch line",
    );
  });
});

describe("parseInputLine: values that broke the run later are input errors at file:line", () => {
  const chat = (body: Record<string, unknown>) => ({
    custom_id: "c",
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", messages, ...body },
  });

  it('refuses "stream": true, as the providers\' batch APIs do (it was called and billed five times)', () => {
    expect(bad(chat({ stream: true })).error.message).toBe(
      "in.jsonl:7: body.stream: expected false or absent (batch lines are not streamed), got true",
    );
    expect(bad({ model: "m", messages, stream: true }).error.field).toBe("body.stream");
    expect(
      bad({ custom_id: "x", params: { model: "c", max_tokens: 5, messages, stream: true } }).error
        .field,
    ).toBe("params.stream");
    expect(bad(chat({ stream: "yes" })).error.field).toBe("body.stream");
    expect(ok(chat({ stream: false })).request.body.stream).toBe(false);
  });

  it("refuses token caps and n that are not whole numbers >= 1 (max_tokens: -1 failed without file:line)", () => {
    for (const field of ["max_tokens", "max_completion_tokens", "max_output_tokens"])
      for (const value of [-1, 0, 1.5, "10", 1e300, Number.MAX_SAFE_INTEGER + 2])
        expect(bad(chat({ [field]: value })).error.message).toMatch(
          new RegExp(
            `^in\\.jsonl:7: body\\.${field}: expected a whole number of tokens >= 1, got `,
          ),
        );
    expect(ok(chat({ max_tokens: null })).request.body.max_tokens).toBeNull();
    expect(ok(chat({ max_tokens: 1 })).request.body.max_tokens).toBe(1);
    for (const n of [0, -2, 1.5, 129, "2"]) expect(bad(chat({ n })).error.field).toBe("body.n");
    expect(ok(chat({ n: 3 })).request.body.n).toBe(3);
  });

  it("refuses messages that are not message objects (messages: [null] crashed the estimate)", () => {
    expect(bad(chat({ messages: [null] })).error.message).toBe(
      "in.jsonl:7: body.messages[0]: expected a message object {role, content}, got null",
    );
    expect(bad(chat({ messages: [...messages, 3] })).error.field).toBe("body.messages[1]");
    expect(bad(chat({ messages: [{ content: "hi" }] })).error.field).toBe("body.messages[0].role");
    expect(bad(chat({ messages: [{ role: "user", content: 5 }] })).error.field).toBe(
      "body.messages[0].content",
    );
    expect(
      bad({ custom_id: "x", params: { model: "c", max_tokens: 5, messages: [null] } }).error.field,
    ).toBe("params.messages[0]");
    expect(ok(chat({ messages: [{ role: "assistant", content: null }] }))).toBeDefined();
  });

  it("refuses embedding inputs that are not texts or token arrays", () => {
    const emb = (input: unknown) => ({
      custom_id: "e",
      method: "POST",
      url: "/v1/embeddings",
      body: { model: "e", input },
    });
    for (const input of ["", [], [null], [""], { text: "a" }, 5, [[1, -1]], [[]]])
      expect(bad(emb(input)).error.field, JSON.stringify(input)).toBe("body.input");
    for (const input of ["a", ["a", "b"], [1, 2], [[1], [2, 3]]])
      expect(ok(emb(input)).request.path).toBe("/embeddings");
  });

  it("refuses JSON nested deeper than MAX_JSON_DEPTH before parsing it (100k deep crashed the run)", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const error = bad(deep).error;
    expect(error.message).toBe(
      `in.jsonl:7: JSON: expected JSON nested at most ${MAX_JSON_DEPTH} levels deep, got deeper nesting at column ${MAX_JSON_DEPTH + 1}`,
    );
    const body = (depth: number) =>
      JSON.stringify(chat({ tools: "TOOLS" })).replace(
        '"TOOLS"',
        `${"[".repeat(depth)}${"]".repeat(depth)}`,
      );
    expect(bad(body(50_000)).error.field).toBe("JSON");
    expect(bad(body(MAX_JSON_DEPTH)).error.field).toBe("JSON"); // the envelope adds 2 levels
    const { entry } = parseInputLine(body(MAX_JSON_DEPTH - 2), base);
    expect(isInvalid(entry)).toBe(false);
    // Brackets inside strings are text, not nesting.
    expect(ok(chat({ messages: [{ role: "user", content: "[".repeat(10_000) }] }))).toBeDefined();
  });
});
