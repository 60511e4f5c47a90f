// Token estimates made before a call, so that admission can reserve TPM. Prompt tokens are
// counted with a real tokenizer (o200k, the GPT-4o family's encoding; for other models it is an
// estimate within a few percent, reconciled with the real `usage` after the call).
import { countTokens as o200kCount } from "gpt-tokenizer/encoding/o200k_base";

/** Tokens a chat format adds per message and per reply (OpenAI's documented overhead). */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;

type ContentPart = { type?: string; text?: unknown };

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    let text = "";
    for (const part of content as ContentPart[]) {
      if (part && typeof part.text === "string") text += part.text;
    }
    return text;
  }
  return content === undefined || content === null ? "" : JSON.stringify(content);
}

/** Counts the tokens of a text with the o200k encoding. */
export function countTokens(text: string): number {
  return text === "" ? 0 : o200kCount(text);
}

export type ChatLike = {
  messages?: ReadonlyArray<{ role?: string; content?: unknown; name?: string }>;
  /** Anthropic puts the system prompt beside the messages. */
  system?: unknown;
  tools?: unknown;
};

/** Estimated prompt (input) tokens of an OpenAI- or Anthropic-shaped chat request. */
export function estimatePromptTokens(request: ChatLike): number {
  let tokens = TOKENS_PER_REPLY;
  const system = request.system === undefined ? "" : textOf(request.system);
  // Anthropic's separate system prompt is framed like a message with a role.
  if (system !== "") tokens += TOKENS_PER_MESSAGE + 1 + countTokens(system);
  for (const message of request.messages ?? []) {
    tokens += TOKENS_PER_MESSAGE + countTokens(textOf(message.content));
    if (message.role) tokens += 1;
    if (message.name) tokens += 1 + countTokens(message.name);
  }
  if (request.tools !== undefined) tokens += countTokens(JSON.stringify(request.tools));
  return tokens;
}
