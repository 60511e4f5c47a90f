// The text of an LLM answer and whether `max_tokens` cut it short, from an OpenAI chat completion
// (`choices[0].message.content`, `finish_reason: "length"`), an OpenAI Responses answer
// (`output_text`) or an Anthropic message (`content[].text`, `stop_reason: "max_tokens"`).

export type AnswerText = {
  text: string;
  /** The answer stopped at `max_tokens`. */
  truncated: boolean;
};

type Part = { type?: unknown; text?: unknown };

export function answerText(body: unknown): AnswerText {
  const b = (body ?? {}) as Record<string, unknown>;
  const choices = b.choices as
    | Array<{ message?: { content?: unknown }; text?: unknown; finish_reason?: unknown }>
    | undefined;
  if (Array.isArray(choices)) {
    const first = choices[0];
    const content = first?.message?.content ?? first?.text;
    return {
      text: typeof content === "string" ? content : joinParts(content),
      truncated: first?.finish_reason === "length",
    };
  }
  if (Array.isArray(b.content)) {
    return { text: joinParts(b.content), truncated: b.stop_reason === "max_tokens" };
  }
  if (typeof b.output_text === "string") {
    const details = b.incomplete_details as { reason?: unknown } | undefined | null;
    return { text: b.output_text, truncated: details?.reason === "max_output_tokens" };
  }
  return { text: typeof body === "string" ? body : JSON.stringify(body ?? null), truncated: false };
}

function joinParts(parts: unknown): string {
  if (!Array.isArray(parts)) return "";
  let text = "";
  for (const part of parts as Part[])
    if (part && (part.type === undefined || part.type === "text") && typeof part.text === "string")
      text += part.text;
  return text;
}
