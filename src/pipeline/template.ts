// A tiny, strict template language for pipeline files: `{{ path }}` inserts the value at a dotted
// path (`input.transcript`, `item.parts.0.name`, `steps.stageA.ach.output`); everything else is
// literal text. No expressions, filters, loops or escapes, so a template cannot run code or reach
// anything but the values it is given, and every reference can be checked before a call is made.
// Strings are inserted as they are, numbers and booleans as text, objects and arrays as JSON.

/** A `{{ ... }}` reference in a template. */
export type TemplateRef = {
  /** The path's segments, e.g. `["input", "items", "0"]`. */
  path: string[];
  /** The reference as written, braces included. */
  raw: string;
  /** Its offset in the template's source. */
  offset: number;
};

export type Template = {
  source: string;
  /** Literal text and references, in order. */
  parts: Array<string | TemplateRef>;
};

const PATH = /^[A-Za-z_][\w-]*(?:\.[\w-]+)*$/;

/** Why a template could not be parsed, and where in its source. */
export type TemplateSyntaxError = { message: string; offset: number };

/** Parses a template; returns the syntax error instead when it has one. */
export function parseTemplate(source: string): Template | TemplateSyntaxError {
  const parts: Template["parts"] = [];
  let at = 0;
  for (;;) {
    const open = source.indexOf("{{", at);
    if (open < 0) break;
    const close = source.indexOf("}}", open + 2);
    if (close < 0) return { message: "a {{ without its closing }}", offset: open };
    const inner = source.slice(open + 2, close).trim();
    if (!PATH.test(inner))
      return {
        message: `{{${source.slice(open + 2, close)}}} is not a reference: expected a dotted path such as {{input.text}}`,
        offset: open,
      };
    if (open > at) parts.push(source.slice(at, open));
    parts.push({ path: inner.split("."), raw: source.slice(open, close + 2), offset: open });
    at = close + 2;
  }
  if (at < source.length) parts.push(source.slice(at));
  return { source, parts };
}

export function isSyntaxError(value: Template | TemplateSyntaxError): value is TemplateSyntaxError {
  return "message" in value;
}

/** The template's references. */
export function templateRefs(template: Template): TemplateRef[] {
  return template.parts.filter((part): part is TemplateRef => typeof part !== "string");
}

/** A value as template text. */
export function templateText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || value === null)
    return String(value);
  return JSON.stringify(value, null, 2) ?? "";
}

/** The value at `path` under `value` (object keys, array indices), or `undefined` if there is none. */
export function lookup(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const segment of path) {
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return undefined;
      current = current[Number(segment)];
    } else if (typeof current === "object" && current !== null && Object.hasOwn(current, segment)) {
      current = (current as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return current;
}

/**
 * Renders a template; `resolve` gives each reference's value (it throws for one it cannot give,
 * naming the place).
 */
export function renderTemplate(template: Template, resolve: (ref: TemplateRef) => unknown): string {
  let out = "";
  for (const part of template.parts)
    out += typeof part === "string" ? part : templateText(resolve(part));
  return out;
}
