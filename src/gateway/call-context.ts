// What a request carries for the gateway besides its body: the audit context that travels with
// the call (a header, `x-salvo-context: claim_id=C1,call_purpose=coverage`, or the body's
// `metadata`), and the caller's own deadline (the SDKs send their timeout as
// `x-stainless-timeout`; any client may send `x-salvo-deadline-ms`).

/** Most fields one call's context may carry, and the longest name and value. */
const MAX_FIELDS = 32;
const MAX_NAME = 64;
const MAX_VALUE = 512;
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Context field names the gateway sets itself; a caller cannot override them. */
export const RESERVED_CONTEXT = new Set(["tenant", "gateway_request_id"]);

export type ContextResult =
  | { ok: true; fields: Record<string, string> }
  | { ok: false; problem: string };

/**
 * The context of one call: the body's `metadata` (string values), then the header's fields over
 * it. The header is `name=value` pairs separated by commas; values may be percent-encoded.
 */
export function callContext(header: string | null, metadata: unknown): ContextResult {
  const fields: Record<string, string> = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== "object" || Array.isArray(metadata))
      return { ok: false, problem: "metadata: expected an object of string values" };
    for (const [name, value] of Object.entries(metadata as Record<string, unknown>)) {
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean")
        continue;
      const problem = checkField(name, String(value), "metadata");
      if (problem) return { ok: false, problem };
      fields[name] = String(value);
    }
  }
  if (header !== null && header.trim() !== "") {
    for (const part of header.split(",")) {
      if (part.trim() === "") continue;
      const eq = part.indexOf("=");
      if (eq <= 0)
        return {
          ok: false,
          problem: `x-salvo-context: expected name=value pairs separated by commas, got ${JSON.stringify(part.trim().slice(0, 40))}`,
        };
      const name = part.slice(0, eq).trim();
      let value: string;
      try {
        value = decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return {
          ok: false,
          problem: `x-salvo-context: ${name}: the value is not valid percent-encoding`,
        };
      }
      const problem = checkField(name, value, "x-salvo-context");
      if (problem) return { ok: false, problem };
      fields[name] = value;
    }
  }
  if (Object.keys(fields).length > MAX_FIELDS)
    return { ok: false, problem: `x-salvo-context: at most ${MAX_FIELDS} fields` };
  return { ok: true, fields };
}

function checkField(name: string, value: string, where: string): string | undefined {
  if (!NAME.test(name) || name.length > MAX_NAME)
    return `${where}: field name ${JSON.stringify(name.slice(0, 40))}: expected letters, digits, _ . - (at most ${MAX_NAME})`;
  if (RESERVED_CONTEXT.has(name)) return `${where}: ${name} is set by the gateway`;
  if (value.length > MAX_VALUE) return `${where}: ${name}: at most ${MAX_VALUE} characters`;
  return undefined;
}

/**
 * The caller's deadline for this request, ms from now: `x-salvo-deadline-ms`, else the SDK's
 * own timeout (`x-stainless-timeout`, in seconds); undefined when neither is a positive number.
 */
export function callerDeadlineMs(headers: Headers): number | undefined {
  const explicit = Number(headers.get("x-salvo-deadline-ms") ?? Number.NaN);
  if (explicit > 0 && Number.isFinite(explicit)) return explicit;
  const sdk = Number(headers.get("x-stainless-timeout") ?? Number.NaN);
  if (sdk > 0 && Number.isFinite(sdk)) return sdk * 1000;
  return undefined;
}
