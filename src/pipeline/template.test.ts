import { describe, expect, it } from "vitest";
import {
  isSyntaxError,
  lookup,
  parseTemplate,
  renderTemplate,
  type Template,
  templateRefs,
} from "./template.ts";

function parsed(source: string): Template {
  const template = parseTemplate(source);
  if (isSyntaxError(template)) throw new Error(template.message);
  return template;
}

describe("templates", () => {
  it("splits literal text and references, with their offsets", () => {
    const template = parsed("Part {{ item.name }} of {{input.claim_id}}.");
    expect(templateRefs(template).map((r) => [r.path, r.raw, r.offset])).toEqual([
      [["item", "name"], "{{ item.name }}", 5],
      [["input", "claim_id"], "{{input.claim_id}}", 24],
    ]);
  });

  it("renders strings as they are, numbers as text and objects as JSON", () => {
    const template = parsed("{{a}} / {{b}} / {{c}}");
    const values: Record<string, unknown> = { a: "text", b: 4.5, c: { x: [1] } };
    expect(renderTemplate(template, (ref) => values[ref.path[0]!])).toBe(
      'text / 4.5 / {\n  "x": [\n    1\n  ]\n}',
    );
  });

  it("reports an unclosed reference and one that is not a path, with the offset", () => {
    expect(parseTemplate("ok {{input.x")).toEqual({
      message: "a {{ without its closing }}",
      offset: 3,
    });
    const bad = parseTemplate("x {{ input.x + 1 }}");
    expect(isSyntaxError(bad) && bad.offset).toBe(2);
    expect(isSyntaxError(parseTemplate("{{ }}"))).toBe(true);
    expect(isSyntaxError(parseTemplate("single { braces } and }} are text"))).toBe(false);
  });

  it("looks up object keys and array indices, and nothing else", () => {
    const value = { items: [{ name: "bumper" }], n: 0 };
    expect(lookup(value, ["items", "0", "name"])).toBe("bumper");
    expect(lookup(value, ["n"])).toBe(0);
    expect(lookup(value, ["items", "x"])).toBeUndefined();
    expect(lookup(value, ["constructor"])).toBeUndefined();
    expect(lookup(value, ["items", "length"])).toBeUndefined();
    expect(lookup("text", ["length"])).toBeUndefined();
  });
});
