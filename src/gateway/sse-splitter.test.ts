import { describe, expect, it } from "vitest";
import { parseEvent, SseSplitter } from "./sse-splitter.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("SseSplitter", () => {
  it("yields whole events however the bytes are cut", () => {
    const text = 'event: a\ndata: {"x":1}\n\ndata: [DONE]\n\n';
    for (let cut = 1; cut < text.length; cut++) {
      const splitter = new SseSplitter();
      const events = [
        ...splitter.push(bytes(text.slice(0, cut))),
        ...splitter.push(bytes(text.slice(cut))),
        ...splitter.end(),
      ];
      expect(events.map((e) => [e.event, e.data])).toEqual([
        ["a", '{"x":1}'],
        [undefined, "[DONE]"],
      ]);
    }
  });

  it("keeps a multi-byte character split across chunks whole", () => {
    const all = bytes('data: {"t":"é€😀"}\n\n');
    const splitter = new SseSplitter();
    const events = [...splitter.push(all.slice(0, 12)), ...splitter.push(all.slice(12))];
    expect(JSON.parse(events[0]!.data)).toEqual({ t: "é€😀" });
  });

  it("reads CRLF boundaries and multi-line data, and keeps a comment (a keep-alive) to pass on", () => {
    const splitter = new SseSplitter();
    const events = splitter.push(
      bytes(": keep-alive\r\n\r\nevent: e\r\ndata: one\r\ndata: two\r\n\r\n"),
    );
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({ raw: ": keep-alive", event: undefined, data: "" });
    expect(events[1]).toMatchObject({ event: "e", data: "one\ntwo" });
  });

  it("a last event without its blank line counts at the end", () => {
    const splitter = new SseSplitter();
    expect(splitter.push(bytes("data: tail"))).toEqual([]);
    expect(splitter.end().map((e) => e.data)).toEqual(["tail"]);
  });

  it("parseEvent strips one leading space only", () => {
    expect(parseEvent("data:  two spaces").data).toBe(" two spaces");
  });
});
