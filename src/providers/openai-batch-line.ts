// One line of an OpenAI Batch API input file, checked as the Batch API checks it: JSON, a unique
// `custom_id`, `POST`, the batch's endpoint, a `body` object. Shared by the simulator's batch API
// and the gateway's, so that both refuse exactly what OpenAI refuses, with its codes and words.

/** An error of one line, in the Batch API's `errors.data[]` shape. */
export type OpenAIBatchLineError = {
  code: string;
  message: string;
  param: string | null;
  line: number;
};

/** A request a line holds, or why the Batch API would refuse it. */
export type OpenAIBatchLine =
  | { ok: true; customId: string; body: Record<string, unknown> }
  | { ok: false; error: OpenAIBatchLineError };

/**
 * Checks line `line` (1-based) of a batch for `endpoint` (e.g. `/v1/chat/completions`); `seen`
 * holds the custom_ids of the lines before it and gets this one.
 */
export function checkOpenAIBatchLine(
  source: string,
  line: number,
  endpoint: string,
  seen: Set<string>,
): OpenAIBatchLine {
  const refuse = (code: string, message: string, param: string | null): OpenAIBatchLine => ({
    ok: false,
    error: { code, message, param, line },
  });
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch {
    value = undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return refuse("invalid_json_line", "This line is not parseable as valid JSON.", null);
  const { custom_id: customId, method, url, body } = value as Record<string, unknown>;
  if (typeof customId !== "string" || customId === "")
    return refuse(
      "missing_required_parameter",
      "Missing required parameter: 'custom_id'.",
      "custom_id",
    );
  if (seen.has(customId))
    return refuse(
      "duplicate_custom_id",
      "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each individual request in a batch.",
      "custom_id",
    );
  seen.add(customId);
  if (method !== "POST")
    return refuse(
      "invalid_method",
      `Unsupported method ${JSON.stringify(method)}: only POST is supported.`,
      "method",
    );
  if (url !== endpoint)
    return refuse(
      "url_mismatch",
      `The URL provided for this request does not match the batch endpoint ${endpoint}.`,
      "url",
    );
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return refuse("missing_required_parameter", "Missing required parameter: 'body'.", "body");
  return { ok: true, customId, body: body as Record<string, unknown> };
}
