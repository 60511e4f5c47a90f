// How deeply JSON nests, measured without recursion, so that nothing recursive on the call path
// (canonical JSON for fingerprints and audit hashes, JSON.stringify in the SDKs, the output
// writer) ever meets a value deep enough to overflow the stack: V8's JSON.stringify fails near
// 5,000 levels, a recursive canonicaliser sooner on a deep call stack.

/**
 * The deepest nesting of arrays and objects Salvo accepts in a request (input lines, request
 * bodies at the provider boundary) and in an answer. Real requests nest a few levels (messages,
 * content parts, a JSON schema for structured output, which OpenAI caps at 10 levels); 128 is
 * serde_json's default recursion limit, and far below any limit of the serialisers on the path.
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Where the JSON text first nests deeper than `limit`: the 0-based index of the opening bracket
 * that goes one level too deep, or -1 when it never does. Brackets inside strings do not count.
 * Linear, no allocation; meant to run before `JSON.parse` on untrusted text.
 */
export function jsonTextTooDeep(text: string, limit: number = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/**
 * Whether a value nests arrays and objects deeper than `limit` (a scalar is depth 0, `[]` and
 * `{}` depth 1). Iterative; stops at the first container past the limit. An object reached
 * twice is walked again only from a deeper place, so shared parts cost little and a cycle ends
 * as too deep.
 */
export function valueTooDeep(value: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  if (value === null || typeof value !== "object") return false;
  const stack: Array<{ value: object; depth: number }> = [{ value, depth: 1 }];
  const deepest = new Map<object, number>();
  while (stack.length > 0) {
    const { value: container, depth } = stack.pop()!;
    if (depth > limit) return true;
    if ((deepest.get(container) ?? 0) >= depth) continue;
    deepest.set(container, depth);
    const children = Array.isArray(container) ? container : Object.values(container);
    for (const child of children)
      if (child !== null && typeof child === "object")
        stack.push({ value: child, depth: depth + 1 });
  }
  return false;
}
