// Token estimates made before a call, so that admission can reserve TPM. Prompt tokens are
// counted with a real tokenizer (o200k, the GPT-4o family's encoding; for other models it is an
// estimate within a few percent, reconciled with the real `usage` after the call).
//
// Bounded work, whatever the text: gpt-tokenizer's byte-pair merge is quadratic in the length of
// one pre-tokenized piece (a run of one character is one piece: 80k `A`s took 2 s, 300 KB about
// 30 s), so pieces longer than MAX_PIECE_CHARS are counted in slices (linear in the text); and a
// request with more than EXACT_CHARS of text is estimated from evenly spread windows instead of
// counted whole, so one estimate never holds the event loop for more than a few tens of ms.
import { countTokens, isHighSurrogate, safeEnd } from "../tokens/o200k.ts";

export { countSliced, countTokens, MAX_PIECE_CHARS } from "../tokens/o200k.ts";

/** Tokens a chat format adds per message and per reply (OpenAI's documented overhead). */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;

/**
 * Up to this many characters of text in one request are counted exactly (a few tens of ms at the
 * tokenizer's speed on natural text); beyond it, the count is extrapolated from SAMPLE_WINDOWS
 * windows of SAMPLE_WINDOW_CHARS spread evenly over the text (within 1-2% on natural text). Many
 * small windows rather than a few large ones, for the same work: a text whose density varies
 * by section (prose, code, tables) is then sampled in every section; 32 windows of 8K were 3.2%
 * off on this repository's own sources.
 */
export const EXACT_CHARS = 262_144;
const SAMPLE_WINDOWS = 128;
const SAMPLE_WINDOW_CHARS = EXACT_CHARS / SAMPLE_WINDOWS;

/**
 * The tokens of several texts together: their exact sum up to EXACT_CHARS characters in all,
 * beyond it an estimate from windows spread evenly over them (by character position), scaled to
 * their total length. Bounded time whatever their size. `count` counts one text (for tests).
 */
export function estimateTextTokens(
  texts: readonly string[],
  count: (text: string) => number = countTokens,
): number {
  let total = 0;
  for (const text of texts) total += text.length;
  if (total <= EXACT_CHARS) {
    let tokens = 0;
    for (const text of texts) tokens += count(text);
    return tokens;
  }
  // Window k starts at global position k * stride; it is read from the text that holds that
  // position (cut at the text's end, so it may be shorter).
  const stride = (total - SAMPLE_WINDOW_CHARS) / (SAMPLE_WINDOWS - 1);
  let sampledChars = 0;
  let sampledTokens = 0;
  let textIndex = 0;
  let textStart = 0; // global position of texts[textIndex]
  for (let k = 0; k < SAMPLE_WINDOWS; k++) {
    const position = Math.floor(k * stride);
    while (textStart + texts[textIndex]!.length <= position) {
      textStart += texts[textIndex]!.length;
      textIndex += 1;
    }
    const text = texts[textIndex]!;
    let start = position - textStart;
    if (start > 0 && isHighSurrogate(text.charCodeAt(start - 1))) start -= 1;
    const end = safeEnd(text, Math.min(text.length, start + SAMPLE_WINDOW_CHARS));
    sampledChars += end - start;
    sampledTokens += count(text.slice(start, end));
  }
  return Math.round((sampledTokens / sampledChars) * total);
}

type ContentPart = { type?: string; text?: unknown };

/** A JSON value's text for the estimate; "" for one that cannot be serialised (a cycle, too deep). */
function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return "";
  }
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    let text = "";
    for (const part of content as ContentPart[]) {
      if (part && typeof part.text === "string") text += part.text;
    }
    return text;
  }
  return content === undefined || content === null ? "" : jsonText(content);
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
  const texts: string[] = [];
  const system = request.system === undefined ? "" : textOf(request.system);
  // Anthropic's separate system prompt is framed like a message with a role.
  if (system !== "") {
    tokens += TOKENS_PER_MESSAGE + 1;
    texts.push(system);
  }
  const messages = Array.isArray(request.messages) ? request.messages : [];
  for (const message of messages) {
    tokens += TOKENS_PER_MESSAGE;
    // A library caller's request is not validated: a message that is not an object is skipped.
    if (message === null || typeof message !== "object") continue;
    texts.push(textOf(message.content));
    if (message.role) tokens += 1;
    if (typeof message.name === "string" && message.name !== "") {
      tokens += 1;
      texts.push(message.name);
    }
  }
  if (request.tools !== undefined) texts.push(jsonText(request.tools));
  return tokens + estimateTextTokens(texts);
}
